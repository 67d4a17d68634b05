//! A node (worker loop) in-process against a real redis-server and real plugins: outcomes,
//! retries, dead-letter, cron, cancellation and graceful shutdown.

use crate::common;

use std::time::Duration;

use common::*;
use jobhost::worker::{self, WorkerSettings};
use jobhost_store::{CronSchedule, JobRecord, JobState, NewJob, RetryPolicy, Store};
use tokio_util::sync::CancellationToken;

struct TestNode {
    store: Store,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _plugins: tempfile::TempDir,
}

impl TestNode {
    async fn start(redis: &TestRedis, plugins: &[&str], grace: Duration) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        install(dir.path(), plugins);
        let runtime = runtime(config(dir.path())).await;
        let store = redis.store().await;
        let settings = WorkerSettings {
            node_id: jobhost::worker::new_node_id(),
            concurrency: 4,
            lease: Duration::from_secs(5),
            heartbeat: Duration::from_millis(500),
            shutdown_grace: grace,
            poll: Duration::from_millis(200),
        };
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(worker::run(
            store.clone(),
            runtime,
            settings,
            shutdown.clone(),
        ));
        TestNode {
            store,
            shutdown,
            task,
            _plugins: dir,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("node stops")
            .unwrap();
    }
}

async fn wait_for(store: &Store, id: &str, done: impl Fn(&JobRecord) -> bool) -> JobRecord {
    let mut last = None;
    for _ in 0..500 {
        let record = store.get(id).await.unwrap();
        if let Some(r) = &record
            && done(r)
        {
            return r.clone();
        }
        last = record;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {id} did not get there: {last:?}");
}

async fn wait_final(store: &Store, id: &str) -> JobRecord {
    wait_for(store, id, |r| r.state.is_final()).await
}

fn outcomes(record: &JobRecord) -> Vec<&str> {
    record.history.iter().map(|a| a.outcome.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_to_success_and_its_log_is_kept() {
    let redis = TestRedis::start().await;
    let node = TestNode::start(&redis, &["noop"], Duration::from_secs(1)).await;
    let mut job = new_job("noop", "payload");
    job.labels.insert("sleep_ms".into(), "10".into());
    let (id, _) = node.store.enqueue(&job).await.unwrap();
    let record = wait_final(&node.store, &id).await;
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.output.as_deref(), Some("payload"));
    assert_eq!(outcomes(&record), ["succeeded"]);
    let log = node.store.read_log(&id, None, 100).await.unwrap();
    assert_eq!(log[0].message, "sleeping 10 ms");
    assert_eq!((log[0].attempt, log[0].level.as_str()), (1, "INFO"));
    // The node told the store this attempt logged: the log has the job's retention.
    let ttl = |key: &str| -> i64 {
        let key = format!("jobhost:{{jobhost}}:{key}:{id}");
        redis.cli(&["PTTL", &key]).trim().parse().unwrap()
    };
    let (record_ttl, log_ttl) = (ttl("job"), ttl("log"));
    assert!(record_ttl > 0, "the record expires: {record_ttl}");
    assert!(
        log_ttl > 0 && log_ttl <= record_ttl + 1000,
        "the log expires with the record: {log_ttl} ms, record {record_ttl} ms"
    );
    node.stop().await;
}

/// Nothing a job starts (its task, its log writer, the deadline of recording its outcome)
/// outlives it: after a burst, the runtime holds as many tasks as before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_outlives_its_job() {
    let redis = TestRedis::start().await;
    let node = TestNode::start(&redis, &["noop"], Duration::from_secs(1)).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    // Settled: the node's loops started, its first job done.
    let (first, _) = node.store.enqueue(&new_job("noop", "x")).await.unwrap();
    wait_final(&node.store, &first).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = metrics.num_alive_tasks();
    let mut ids = Vec::new();
    for i in 0..40 {
        let (id, _) = node
            .store
            .enqueue(&new_job("noop", &i.to_string()))
            .await
            .unwrap();
        ids.push(id);
    }
    for id in &ids {
        assert_eq!(wait_final(&node.store, id).await.state, JobState::Succeeded);
    }
    // The lease is 5 s: a task per job that lived a lease would still be here.
    let mut alive = metrics.num_alive_tasks();
    for _ in 0..50 {
        if alive <= before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        alive = metrics.num_alive_tasks();
    }
    assert!(
        alive <= before + 2,
        "{alive} tasks alive after 40 jobs, {before} before"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugins_retry_is_honoured_until_it_succeeds() {
    let redis = TestRedis::start().await;
    let node = TestNode::start(&redis, &["flaky"], Duration::from_secs(1)).await;
    let mut job = new_job("flaky", "2");
    job.retry = RetryPolicy {
        max_attempts: 5,
        backoff_base_ms: 10_000,
        backoff_max_ms: 10_000,
    };
    let (id, _) = node.store.enqueue(&job).await.unwrap();
    let record = wait_final(&node.store, &id).await;
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.output.as_deref(), Some("succeeded on attempt 3"));
    assert_eq!(outcomes(&record), ["retry", "retry", "succeeded"]);
    // The plugin's 50 ms, not the job's 10 s backoff, set the pace.
    let gap = record.history[1].started_ms - record.history[0].ended_ms;
    assert!(gap < 5_000, "retried after {gap} ms");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_back_off_and_end_dead_failures_end_failed() {
    let redis = TestRedis::start().await;
    let node = TestNode::start(&redis, &["flaky"], Duration::from_secs(1)).await;
    let mut trap = new_job("flaky", "trap");
    trap.retry = RetryPolicy {
        max_attempts: 3,
        backoff_base_ms: 100,
        backoff_max_ms: 1_000,
    };
    let (trap_id, _) = node.store.enqueue(&trap).await.unwrap();
    let mut fail = new_job("flaky", "fail");
    fail.retry.max_attempts = 3;
    let (fail_id, _) = node.store.enqueue(&fail).await.unwrap();

    let dead = wait_final(&node.store, &trap_id).await;
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(outcomes(&dead), ["crashed", "crashed", "crashed"]);
    assert!(dead.reason.unwrap().starts_with("wasm trap:"));
    // Backoff with ±20 % jitter: ~100 ms, then ~200 ms.
    let gaps: Vec<u64> = dead
        .history
        .windows(2)
        .map(|w| w[1].started_ms - w[0].ended_ms)
        .collect();
    assert!(
        gaps[0] >= 80 && gaps[1] >= 160 && gaps[1] > gaps[0] / 2,
        "{gaps:?}"
    );

    let failed = wait_final(&node.store, &fail_id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(
        outcomes(&failed),
        ["failed"],
        "a permanent failure is not retried"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_schedule_fires_once_per_tick() {
    let redis = TestRedis::start().await;
    let node = TestNode::start(&redis, &["noop"], Duration::from_secs(1)).await;
    let cron = CronSchedule {
        name: "every-second".into(),
        schedule: "* * * * * *".into(),
        template: NewJob {
            submitted_by: "token:ci".into(),
            ..new_job("noop", "tick")
        },
    };
    let first = jobhost::cron::next_fire(&cron.schedule, jobhost_store::now_ms()).unwrap();
    node.store.put_cron(&cron, first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    node.store.delete_cron("every-second").await.unwrap();
    let ids = node.store.recent_jobs(100).await.unwrap();
    assert!(
        (2..=4).contains(&ids.len()),
        "{} jobs from a 1 s schedule in 3.5 s",
        ids.len()
    );
    for id in ids {
        let record = wait_final(&node.store, &id).await;
        assert_eq!(
            (record.name.as_str(), record.state),
            ("every-second", JobState::Succeeded)
        );
        // Fired jobs name who saved the schedule.
        assert_eq!(record.submitted_by, "token:ci");
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_stops_the_plugin() {
    let redis = TestRedis::start().await;
    let node = TestNode::start(&redis, &["noop"], Duration::from_secs(1)).await;
    let mut job = new_job("noop", "");
    job.labels.insert("sleep_ms".into(), "60000".into());
    let (id, _) = node.store.enqueue(&job).await.unwrap();
    wait_for(&node.store, &id, |r| r.state == JobState::Running).await;
    node.store.cancel(&id, "user").await.unwrap();
    let record = wait_final(&node.store, &id).await;
    assert_eq!(record.state, JobState::Cancelled);
    assert_eq!(outcomes(&record), ["cancelled"]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_requeues_what_did_not_finish_and_deregisters() {
    let redis = TestRedis::start().await;
    let node = TestNode::start(&redis, &["noop"], Duration::from_millis(300)).await;
    let mut long = new_job("noop", "long");
    long.labels.insert("sleep_ms".into(), "60000".into());
    let (long_id, _) = node.store.enqueue(&long).await.unwrap();
    let mut short = new_job("noop", "short");
    short.labels.insert("sleep_ms".into(), "100".into());
    let (short_id, _) = node.store.enqueue(&short).await.unwrap();
    wait_for(&node.store, &long_id, |r| r.state == JobState::Running).await;
    wait_for(&node.store, &short_id, |r| r.state == JobState::Running).await;
    assert_eq!(node.store.nodes().await.unwrap().len(), 1);

    let store = node.store.clone();
    node.stop().await;
    assert_eq!(
        store.get(&short_id).await.unwrap().unwrap().state,
        JobState::Succeeded,
        "finished within the grace period"
    );
    let long = store.get(&long_id).await.unwrap().unwrap();
    assert_eq!(
        (long.state, long.attempts),
        (JobState::Queued, 0),
        "re-queued, attempt not counted"
    );
    assert_eq!(outcomes(&long), ["interrupted"]);
    assert!(store.nodes().await.unwrap().is_empty(), "deregistered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_never_runs_more_than_its_concurrency_while_claims_overlap() {
    // Two claims may be in flight at once (the second for slots freed meanwhile): together
    // they never ask for more than the free slots. Each job sleeps 60 ms, and a slot is
    // claimed again only once its plugin returned, so the spans [started, started + 60 ms)
    // of the jobs never overlap more than `concurrency` deep. (Redis's running count is
    // no measure: a slot frees when its plugin returns, before Redis records the outcome.)
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    let mut ids = Vec::new();
    for i in 0..24 {
        let mut job = new_job("noop", &format!("job {i}"));
        job.labels.insert("sleep_ms".into(), "60".into());
        ids.push(store.enqueue(&job).await.unwrap().0);
    }
    let node = TestNode::start(&redis, &["noop"], Duration::from_secs(5)).await;
    let mut starts = Vec::new();
    for id in &ids {
        let record = wait_final(&store, id).await;
        assert_eq!(record.state, JobState::Succeeded);
        starts.push(record.history[0].started_ms);
    }
    node.stop().await;
    let deepest = starts
        .iter()
        .map(|&at| starts.iter().filter(|&&s| s <= at && at < s + 60).count())
        .max()
        .unwrap();
    assert_eq!(deepest, 4, "worker.concurrency is 4: {starts:?}");
}
