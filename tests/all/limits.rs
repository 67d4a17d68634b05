//! Per-job-type limits against a real redis-server: `max_queued` refuses new jobs of a type
//! whose waiting jobs (QUEUED + SCHEDULED) reached it, atomically in Redis; `max_concurrent`
//! caps the type's RUNNING jobs across every node, and its places come back on every way a
//! job stops running, a dead node's lease expiry included. Also the API's cap on the
//! long-lived streams one client keeps open.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::receiver::{http_request, open_stream};
use common::server::{Server, wait_state};
use common::*;
use jobhost_proto::scheduler::{self as proto, CancelJobRequest, ScheduleJobRequest, TimerJob};
use jobhost_store::{
    Event, Finish, JobLimits, JobRecord, JobState, RetryPolicy, Store, StoreError, StoreOptions,
    TypeLimits, TypeLoad,
};

const LEASE: Duration = Duration::from_secs(30);

fn types(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| s.to_string()).collect()
}

/// A store on `url` whose limits are `limits` (type, max_queued, max_concurrent).
async fn store(url: &str, limits: &[(&str, Option<u64>, Option<u64>)]) -> Store {
    let limits = JobLimits {
        types: limits
            .iter()
            .map(|(job_type, max_queued, max_concurrent)| {
                let limits = TypeLimits {
                    max_queued: *max_queued,
                    max_concurrent: *max_concurrent,
                };
                (job_type.to_string(), limits)
            })
            .collect(),
        default_max_queued: None,
    };
    let options = StoreOptions {
        limits,
        ..Default::default()
    };
    Store::connect(url, options).await.unwrap()
}

/// Runs each case against its own single redis-server, and once more against a real
/// 3-shard Redis Cluster (every key a script touches must live in one slot there).
macro_rules! on_redis_and_cluster {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let redis = TestRedis::start().await;
                cases::$case(&redis.url()).await;
            }
        )*
        mod on_cluster {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let cluster = TestCluster::start().await;
                    cases::$case(&cluster.url()).await;
                }
            )*
        }
    };
}

on_redis_and_cluster!(
    the_queue_limit_counts_queued_and_scheduled_jobs_and_names_its_knob,
    many_clients_submitting_at_once_never_overshoot_the_queue_limit,
    the_waiting_count_follows_retries_promotions_and_requeues,
    the_concurrency_limit_caps_claims_and_every_end_of_an_attempt_frees_its_place,
    a_freed_place_of_a_type_held_back_by_its_limit_is_announced,
    an_expired_lease_gives_the_place_back_when_reaped,
);

fn delayed(job_type: &str) -> jobhost_store::NewJob {
    let mut job = new_job(job_type, "");
    job.run_at_ms = Some(jobhost_store::now_ms() + 3_600_000);
    job
}

async fn load(store: &Store, job_type: &str) -> TypeLoad {
    store.type_load(job_type).await.unwrap()
}

fn is_queue_full(result: &Result<(String, bool), StoreError>) -> bool {
    matches!(result, Err(StoreError::QueueFull { .. }))
}

/// The cases run on a single server and on a cluster.
mod cases {
    use super::*;

    pub async fn the_queue_limit_counts_queued_and_scheduled_jobs_and_names_its_knob(url: &str) {
        let store = store(url, &[("noop", Some(3), None)]).await;
        let mut first = new_job("noop", "a");
        first.idempotency_key = Some("key-a".into());
        let (first_id, _) = store.enqueue(&first).await.unwrap();
        store.enqueue(&new_job("noop", "b")).await.unwrap();
        let (delayed_id, _) = store.enqueue(&delayed("noop")).await.unwrap();
        assert_eq!(
            load(&store, "noop").await,
            TypeLoad {
                queued: 2,
                scheduled: 1,
                running: 0
            }
        );

        // Full: a fourth is refused, delayed or not, with the type, the limit and the knob.
        for job in [new_job("noop", "c"), delayed("noop")] {
            let err = store.enqueue(&job).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::QueueFull {
                        waiting: 3,
                        limit: 3,
                        ..
                    }
                ),
                "{err:?}"
            );
            assert_eq!(
                err.to_string(),
                r#"queue for job type "noop" is full: 3 jobs waiting, the limit is 3 (job_types.noop.max_queued)"#
            );
        }
        // A re-submit of a known idempotency key still answers with its job.
        assert_eq!(store.enqueue(&first).await.unwrap(), (first_id, false));
        // Other types have their own queues.
        store.enqueue(&new_job("other", "x")).await.unwrap();

        // A job leaving the queue (claimed) makes room for exactly one.
        let claimed = store.claim("n", &types(&["noop"]), 1, LEASE).await.unwrap();
        assert_eq!(claimed.len(), 1);
        store.enqueue(&new_job("noop", "d")).await.unwrap();
        assert!(is_queue_full(&store.enqueue(&new_job("noop", "e")).await));
        // So does a cancelled scheduled job.
        store.cancel(&delayed_id, "test").await.unwrap();
        assert_eq!(load(&store, "noop").await.scheduled, 0);
        store.enqueue(&new_job("noop", "f")).await.unwrap();
        assert!(is_queue_full(&store.enqueue(&new_job("noop", "g")).await));
    }

    pub async fn many_clients_submitting_at_once_never_overshoot_the_queue_limit(url: &str) {
        // Four nodes' stores (four connections), 200 submissions in flight together.
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(store(url, &[("noop", Some(25), None)]).await);
        }
        let submissions = (0..200).map(|i| {
            let store = stores[i % stores.len()].clone();
            tokio::spawn(async move {
                let job = if i % 3 == 0 {
                    delayed("noop")
                } else {
                    new_job("noop", "")
                };
                store.enqueue(&job).await
            })
        });
        let results = futures::future::join_all(submissions).await;
        let accepted = results
            .iter()
            .filter(|r| r.as_ref().unwrap().is_ok())
            .count();
        let refused = results
            .iter()
            .filter(|r| is_queue_full(r.as_ref().unwrap()))
            .count();
        assert_eq!((accepted, refused), (25, 175));
        let load = load(&stores[0], "noop").await;
        assert_eq!(load.queued + load.scheduled, 25);
    }

    pub async fn the_waiting_count_follows_retries_promotions_and_requeues(url: &str) {
        let store = store(url, &[("noop", Some(2), None)]).await;
        let mut job = new_job("noop", "");
        job.retry = RetryPolicy {
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_max_ms: 100,
        };
        let (id, _) = store.enqueue(&job).await.unwrap();
        let claimed = store
            .claim("n", &types(&["noop"]), 1, LEASE)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(
            load(&store, "noop").await,
            TypeLoad {
                queued: 0,
                scheduled: 0,
                running: 1
            }
        );
        // Backing off before a retry is waiting: it counts, as SCHEDULED.
        let retry = Finish::Retry {
            after: Duration::from_millis(100),
            reason: "again".into(),
            outcome: "retry",
        };
        store.finish(&claimed, "n", &retry).await.unwrap();
        assert_eq!(
            load(&store, "noop").await,
            TypeLoad {
                queued: 0,
                scheduled: 1,
                running: 0
            }
        );
        store.enqueue(&new_job("noop", "")).await.unwrap();
        assert!(is_queue_full(&store.enqueue(&new_job("noop", "")).await));
        // Promoted when due: still waiting, now QUEUED.
        let start = Instant::now();
        while store.get(&id).await.unwrap().unwrap().state != JobState::Queued {
            assert!(start.elapsed() < Duration::from_secs(10), "never promoted");
            store.promote_due(100).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            load(&store, "noop").await,
            TypeLoad {
                queued: 2,
                scheduled: 0,
                running: 0
            }
        );
        // A retry is never refused, even over the limit: the limit only gates new jobs.
        let claimed = store.claim("n", &types(&["noop"]), 2, LEASE).await.unwrap();
        store.enqueue(&new_job("noop", "")).await.unwrap();
        store.enqueue(&new_job("noop", "")).await.unwrap();
        for job in &claimed {
            let interrupted = Finish::Interrupted {
                reason: "shutdown".into(),
            };
            assert_eq!(
                store.finish(job, "n", &interrupted).await.unwrap(),
                Some(JobState::Queued)
            );
        }
        assert_eq!(load(&store, "noop").await.queued, 4);
        assert!(is_queue_full(&store.enqueue(&new_job("noop", "")).await));
    }

    pub async fn the_concurrency_limit_caps_claims_and_every_end_of_an_attempt_frees_its_place(
        url: &str,
    ) {
        let store = store(url, &[("noop", None, Some(2))]).await;
        let mut job = new_job("noop", "");
        job.retry = RetryPolicy {
            max_attempts: 5,
            backoff_base_ms: 3_600_000,
            backoff_max_ms: 3_600_000,
        };
        for _ in 0..7 {
            store.enqueue(&job).await.unwrap();
        }
        store.enqueue(&new_job("other", "")).await.unwrap();
        // Node a asks for 5: it gets the type's 2 places. Node b, asking the limited type
        // first, gets none of it but still gets the other type's job.
        let mut held = store.claim("a", &types(&["noop"]), 5, LEASE).await.unwrap();
        assert_eq!(held.len(), 2);
        let b = store
            .claim("b", &types(&["noop", "other"]), 5, LEASE)
            .await
            .unwrap();
        assert_eq!(
            b.iter().map(|j| j.job_type.as_str()).collect::<Vec<_>>(),
            ["other"]
        );
        assert_eq!(load(&store, "noop").await.running, 2);

        // Every way an attempt ends gives its place back, and only its place.
        let ends = [
            Finish::Succeeded { output: "".into() },
            Finish::Failed { reason: "".into() },
            Finish::Retry {
                after: Duration::from_secs(3600),
                reason: "".into(),
                outcome: "retry",
            },
            Finish::Cancelled { reason: "".into() },
            Finish::Interrupted { reason: "".into() },
        ];
        for end in &ends {
            let done = held.remove(0);
            store.finish(&done, "a", end).await.unwrap().unwrap();
            assert_eq!(load(&store, "noop").await.running, 1, "after {end:?}");
            let next = store.claim("a", &types(&["noop"]), 5, LEASE).await.unwrap();
            assert_eq!(next.len(), 1, "after {end:?}");
            held.extend(next);
            assert_eq!(load(&store, "noop").await.running, 2);
        }
        // A finish reported twice (a stale node) does not free a second place.
        let stale = held[0].clone();
        store
            .finish(&stale, "a", &Finish::Succeeded { output: "".into() })
            .await
            .unwrap();
        assert_eq!(load(&store, "noop").await.running, 1);
        assert_eq!(
            store
                .finish(&stale, "a", &Finish::Succeeded { output: "".into() })
                .await
                .unwrap(),
            None
        );
        assert_eq!(load(&store, "noop").await.running, 1);
    }

    pub async fn a_freed_place_of_a_type_held_back_by_its_limit_is_announced(url: &str) {
        let store = store(url, &[("noop", None, Some(1))]).await;
        store.enqueue(&new_job("noop", "")).await.unwrap();
        store.enqueue(&new_job("noop", "")).await.unwrap();
        let running = store
            .claim("a", &types(&["noop"]), 4, LEASE)
            .await
            .unwrap()
            .remove(0);
        // The second job waits only for the limit: the end of the first announces the place.
        let events = store.events().await.unwrap();
        let mut events = std::pin::pin!(events);
        store
            .finish(&running, "a", &Finish::Succeeded { output: "".into() })
            .await
            .unwrap();
        let event = tokio::time::timeout(
            Duration::from_secs(5),
            futures::StreamExt::next(&mut events),
        )
        .await
        .expect("a ready event");
        assert_eq!(event, Some(Event::Ready("noop".into())));
    }

    pub async fn an_expired_lease_gives_the_place_back_when_reaped(url: &str) {
        let store = store(url, &[("noop", None, Some(1))]).await;
        let mut job = new_job("noop", "");
        job.retry.max_attempts = 2;
        let (lost_id, _) = store.enqueue(&job).await.unwrap();
        let (waiting_id, _) = store.enqueue(&job).await.unwrap();
        // Node "dead" claims with a short lease and never renews it.
        let claimed = store
            .claim("dead", &types(&["noop"]), 4, Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(
            store
                .claim("alive", &types(&["noop"]), 4, LEASE)
                .await
                .unwrap()
                .is_empty()
        );
        let start = Instant::now();
        while store.get(&lost_id).await.unwrap().unwrap().state == JobState::Running {
            assert!(start.elapsed() < Duration::from_secs(10), "never reaped");
            store.reap_expired(100).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Reaped: the place is back before anyone claims again.
        assert_eq!(load(&store, "noop").await.running, 0);
        let lost = store.get(&lost_id).await.unwrap().unwrap();
        assert_eq!(lost.state, JobState::Queued);
        assert_eq!(lost.history[0].outcome, "lost");
        let next = store
            .claim("alive", &types(&["noop"]), 4, LEASE)
            .await
            .unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].id, waiting_id);
    }
}

#[tokio::test]
async fn the_default_queue_limit_applies_to_types_without_their_own() {
    let redis = TestRedis::start().await;
    let store = redis
        .store_with(StoreOptions {
            limits: JobLimits {
                types: BTreeMap::from([(
                    "big".to_owned(),
                    TypeLimits {
                        max_queued: Some(3),
                        max_concurrent: None,
                    },
                )]),
                default_max_queued: Some(1),
            },
            ..Default::default()
        })
        .await;
    store.enqueue(&new_job("small", "")).await.unwrap();
    let err = store.enqueue(&new_job("small", "")).await.unwrap_err();
    assert!(
        err.to_string().ends_with("(worker.max_queued_per_type)"),
        "{err}"
    );
    for _ in 0..3 {
        store.enqueue(&new_job("big", "")).await.unwrap();
    }
    assert!(is_queue_full(&store.enqueue(&new_job("big", "")).await));
}

#[tokio::test]
async fn entries_whose_jobs_vanished_do_not_hold_places_for_ever() {
    let redis = TestRedis::start().await;
    let store = store(&redis.url(), &[("noop", Some(1), Some(1))]).await;
    let (running_id, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    store.claim("a", &types(&["noop"]), 1, LEASE).await.unwrap();
    let (scheduled_id, _) = store.enqueue(&delayed("noop")).await.unwrap();
    assert!(is_queue_full(&store.enqueue(&new_job("noop", "")).await));
    // An operator deletes both records by hand (or Redis evicts them).
    let keys = store.keys();
    redis.cli(&["DEL", &keys.job(&running_id), &keys.job(&scheduled_id)]);
    // The next submission and claim find the stale entries and drop them.
    store.enqueue(&new_job("noop", "")).await.unwrap();
    assert_eq!(
        store
            .claim("a", &types(&["noop"]), 1, LEASE)
            .await
            .unwrap()
            .len(),
        1
    );
}

// End to end: real `jobhost serve` nodes.

fn timer(seconds: i64, name: &str) -> ScheduleJobRequest {
    ScheduleJobRequest {
        timer_job: Some(TimerJob {
            duration_seconds: seconds,
            timer_name: name.into(),
            control_plane_endpoint: String::new(),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_refused_over_grpc_and_rest_and_accepts_again_once_drained() {
    let redis = TestRedis::start().await;
    let config = "[worker]\npoll_ms = 100\n\n[plugins.timer]\ngrants = [\"http\"]\n\n\
                  [job_types.timer]\nmax_queued = 2\n";
    let server = Server::start_with(&redis.url(), &["timer"], config).await;
    let mut client = server.client().await;
    // Two pending timers (SCHEDULED for an hour) fill the queue.
    let mut first = timer(3600, "one");
    first.idempotency_key = "first".into();
    let first_id = client
        .schedule_job(first.clone())
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap()
        .id;
    client.schedule_job(timer(3600, "two")).await.unwrap();

    let status = client.schedule_job(timer(0, "three")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let expected = r#"queue for job type "timer" is full: 2 jobs waiting, the limit is 2 (job_types.timer.max_queued)"#;
    assert_eq!(status.message(), expected);

    let body = br#"{"type": "timer", "spec": {"duration_seconds": 0, "timer_name": "rest"}}"#;
    let post = |body: &'static [u8]| {
        let addr = server.http_addr.clone();
        async move {
            http_request(
                &addr,
                "POST",
                "/v1/jobs",
                &[("content-type", "application/json")],
                body,
            )
            .await
        }
    };
    let (code, answer) = post(body).await;
    assert_eq!(code, 429, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["code"], "RESOURCE_EXHAUSTED");
    assert_eq!(answer["message"], expected);

    // Re-submitting with a known idempotency key still answers with the job.
    let again = client.schedule_job(first).await.unwrap().into_inner();
    assert!(!again.created);
    assert_eq!(again.job.unwrap().id, first_id);

    // Drained by one: accepted again, and it runs.
    client
        .cancel_job(CancelJobRequest {
            job_id: first_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (code, answer) = post(body).await;
    assert_eq!(code, 201, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let id = answer["job"]["id"].as_str().unwrap().to_owned();
    wait_state(&mut client, &id, proto::JobState::Succeeded).await;
    // Once it ran, a place is free again.
    client.schedule_job(timer(3600, "four")).await.unwrap();
    let status = client.schedule_job(timer(3600, "five")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);

    let (code, metrics) = http_request(&server.http_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains(r#"jobhost_jobs_refused_total{type="timer",reason="queue_full"} 3"#),
        "{metrics}"
    );
}

/// The most attempts that were running at once, from their start and end times (Redis's
/// clock, so comparable across nodes). An attempt starting when another ends did not overlap.
fn max_overlap(jobs: &[JobRecord]) -> usize {
    let mut edges: Vec<(u64, i32)> = jobs
        .iter()
        .flat_map(|j| &j.history)
        .flat_map(|a| [(a.started_ms, 1), (a.ended_ms, -1)])
        .collect();
    // Ends before starts at the same millisecond.
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, delta) in edges {
        now += delta;
        max = max.max(now);
    }
    max as usize
}

async fn wait_final(store: &Store, ids: &[String]) -> Vec<JobRecord> {
    let start = Instant::now();
    loop {
        let mut records = Vec::new();
        for id in ids {
            records.push(store.get(id).await.unwrap().unwrap());
        }
        if records.iter().all(|r| r.state.is_final()) {
            return records;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "jobs not final: {:?}",
            records.iter().map(|r| (&r.id, r.state)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_together_never_run_more_than_max_concurrent_and_other_types_go_on() {
    let redis = TestRedis::start().await;
    let config =
        "[worker]\nconcurrency = 4\npoll_ms = 100\n\n[job_types.noop]\nmax_concurrent = 2\n";
    let a = Server::start_with(&redis.url(), &["noop", "hello"], config).await;
    let b = Server::start_with(&redis.url(), &["noop", "hello"], config).await;
    let store = redis.store().await;
    let mut noops = Vec::new();
    for i in 0..8 {
        let mut job = new_job("noop", &format!("n{i}"));
        job.labels.insert("sleep_ms".into(), "500".into());
        noops.push(store.enqueue(&job).await.unwrap().0);
    }
    let mut hellos = Vec::new();
    for i in 0..4 {
        let job = new_job("hello", &format!(r#"{{"name": "h{i}"}}"#));
        hellos.push(store.enqueue(&job).await.unwrap().0);
    }
    // Sampled while they run, as a second witness to the exact count below.
    let mut most_running = 0;
    let start = Instant::now();
    loop {
        let load = store.type_load("noop").await.unwrap();
        most_running = most_running.max(load.running);
        if load.queued + load.running == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "stuck: {load:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let noop_records = wait_final(&store, &noops).await;
    let hello_records = wait_final(&store, &hellos).await;
    for record in noop_records.iter().chain(&hello_records) {
        assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    }
    assert!(
        most_running <= 2,
        "{most_running} noop jobs were RUNNING at once"
    );
    // Exactly: the limit was reached and never passed, across both nodes.
    assert_eq!(max_overlap(&noop_records), 2);
    // The other type was not held up behind the limited one: all of it finished before the
    // last noop job could start.
    let last_noop_start = noop_records
        .iter()
        .map(|r| r.history[0].started_ms)
        .max()
        .unwrap();
    for hello in &hello_records {
        assert!(hello.history[0].ended_ms <= last_noop_start, "{hello:?}");
    }
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_running_job_gives_its_place_back() {
    let redis = TestRedis::start().await;
    let config =
        "[worker]\nlease_ms = 1000\npoll_ms = 100\n\n[job_types.noop]\nmax_concurrent = 1\n";
    let doomed = Server::start_with(&redis.url(), &["noop", "hello"], config).await;
    let store = redis.store().await;
    let mut long = new_job("noop", "long");
    long.labels.insert("sleep_ms".into(), "600000".into());
    long.retry.max_attempts = 1;
    let (long_id, _) = store.enqueue(&long).await.unwrap();
    let start = Instant::now();
    while store.get(&long_id).await.unwrap().unwrap().state != JobState::Running {
        assert!(start.elapsed() < Duration::from_secs(30), "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut short = new_job("noop", "short");
    short.labels.insert("sleep_ms".into(), "10".into());
    let (short_id, _) = store.enqueue(&short).await.unwrap();
    // A job of another type submitted after it runs to the end on the same node: the node
    // has claimed since, and the noop job was held back by the limit, not by chance.
    let (hello_id, _) = store
        .enqueue(&new_job("hello", r#"{"name": "Ada"}"#))
        .await
        .unwrap();
    let hello = wait_final(&store, std::slice::from_ref(&hello_id)).await;
    assert_eq!(hello[0].state, JobState::Succeeded);
    assert_eq!(
        store.get(&short_id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    assert_eq!(store.type_load("noop").await.unwrap().running, 1);

    // The node dies (SIGKILL) mid-job; another one takes over.
    drop(doomed);
    let _survivor = Server::start_with(&redis.url(), &["noop", "hello"], config).await;
    let records = wait_final(&store, &[long_id, short_id]).await;
    let (long, short) = (&records[0], &records[1]);
    assert_eq!(long.state, JobState::Dead, "{long:?}");
    assert_eq!(long.history[0].outcome, "lost");
    assert_eq!(short.state, JobState::Succeeded, "{short:?}");
    // It started only once the dead node's job had been reaped.
    assert!(short.history[0].started_ms >= long.history[0].ended_ms);
    assert_eq!(store.type_load("noop").await.unwrap().running, 0);
}

/// This process's `jobhost_jobs_refused_total` for `job_type` (queue full).
fn refused(job_type: &str) -> u64 {
    let line = format!(r#"jobhost_jobs_refused_total{{type="{job_type}",reason="queue_full"}} "#);
    jobhost::metrics::global()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&line).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

async fn next_fire_of(store: &Store, name: &str) -> u64 {
    let due = store.due_crons(u64::MAX).await.unwrap();
    due.into_iter()
        .find(|(cron, _)| cron.name == name)
        .map(|(_, at)| at)
        .expect("the schedule exists")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_fire_refused_by_a_full_queue_is_skipped_and_the_schedule_goes_on() {
    let redis = TestRedis::start().await;
    // Jobs of a type no node serves stay QUEUED: the first fire fills the queue of one.
    let store = store(&redis.url(), &[("cron-only", Some(1), None)]).await;
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop"]);
    let settings = jobhost::worker::WorkerSettings {
        node_id: jobhost::worker::new_node_id(),
        concurrency: 1,
        lease: Duration::from_secs(5),
        heartbeat: Duration::from_millis(500),
        shutdown_grace: Duration::from_secs(1),
        poll: Duration::from_millis(200),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let node = tokio::spawn(jobhost::worker::run(
        store.clone(),
        runtime(config(dir.path())).await,
        settings,
        shutdown.clone(),
    ));
    let cron = jobhost_store::CronSchedule {
        name: "every-second".into(),
        schedule: "* * * * * *".into(),
        template: new_job("cron-only", ""),
    };
    let first = jobhost::cron::next_fire(&cron.schedule, jobhost_store::now_ms()).unwrap();
    store.put_cron(&cron, first).await.unwrap();

    let start = Instant::now();
    let wait_refused = async |n: u64| {
        while refused("cron-only") < n {
            assert!(start.elapsed() < Duration::from_secs(30), "no refused fire");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_refused(1).await;
    let after_one = next_fire_of(&store, "every-second").await;
    wait_refused(3).await;
    // Each refused fire was dropped and the schedule moved on (a fire retried until there
    // is room would keep the schedule at the refused fire's time).
    let after_three = next_fire_of(&store, "every-second").await;
    assert!(after_three > after_one, "{after_three} <= {after_one}");
    assert_eq!(
        store.type_load("cron-only").await.unwrap(),
        TypeLoad {
            queued: 1,
            scheduled: 0,
            running: 0
        }
    );
    shutdown.cancel();
    node.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_keeps_at_most_max_streams_per_client_open() {
    let redis = TestRedis::start().await;
    let server = Server::start_with(
        &redis.url(),
        &["hello"],
        "[api]\nmax_streams_per_client = 2\n",
    )
    .await;
    let addr = server.http_addr.as_str();

    // One HTTP stream and one gRPC stream: the same client (this address) holds both.
    let (snapshots, head) = open_stream(addr, "/v1/stream").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("a first gRPC stream opens")
        .into_inner();
    watch.message().await.unwrap().expect("the watch answers");

    // A third stream is refused on either API, naming the knob.
    let (status, body) = http_request(addr, "GET", "/v1/stream", &[], b"").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("RESOURCE_EXHAUSTED"), "{body}");
    assert!(
        body.contains("at most 2 at once (api.max_streams_per_client)"),
        "{body}"
    );
    let refused = health
        .watch(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    // Ordinary calls are not streams and go on.
    let (status, body) = http_request(addr, "GET", "/v1/jobs", &[], b"").await;
    assert_eq!(status, 200, "{body}");

    // A stream the client closes gives its place back.
    drop(snapshots);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (socket, head) = open_stream(addr, "/v1/stream").await;
        if head.starts_with("HTTP/1.1 200") {
            drop(socket);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's place never came back: {head}"
        );
        drop(socket);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(watch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_few_connections_and_silent_ones_are_cut_off() {
    use tokio::io::AsyncReadExt;
    let redis = TestRedis::start().await;
    let server = Server::start_with(
        &redis.url(),
        &["hello"],
        "[api]\nmax_connections_per_address = 2\nhttp_header_timeout_ms = 2000\n",
    )
    .await;

    // Three connections to the gRPC port that never say anything.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(tokio::net::TcpStream::connect(&server.addr).await.unwrap());
    }
    // All are closed: the one over the address's limit at once, the others once their time
    // to speak is up (before, a silent client held its connection for ever).
    for socket in &mut silent {
        // The server may speak first (HTTP/2 settings); what counts is that it hangs up.
        let mut heard = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut heard));
        assert!(
            read.await.is_ok(),
            "a silent connection is still open after {} bytes",
            heard.len()
        );
    }
    let log = server.log();
    assert!(
        log.contains("api.max_connections_per_address"),
        "the refusal is logged: {log}"
    );
    // Their places came back: a real client gets through.
    let mut client = server.client().await;
    client
        .list_jobs(proto::ListJobsRequest::default())
        .await
        .expect("a client after the silent ones");
}
