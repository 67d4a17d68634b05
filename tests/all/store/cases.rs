//! Every job state transition in Redis, as cases that `super` runs against a single
//! redis-server and a 3-shard Redis Cluster.

use std::time::Duration;

use crate::common::*;
use jobhost_store::{AttemptEnd, CancelResult, Finish, JobState, RetryPolicy, Store, StoreOptions};

const NODE: &str = "node-a";
const LEASE: Duration = Duration::from_secs(30);

pub fn types(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| s.to_string()).collect()
}

pub async fn state(store: &Store, id: &str) -> JobState {
    store.get(id).await.unwrap().unwrap().state
}

pub async fn lifecycle_queued_running_succeeded_with_attempt_history(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let mut job = new_job("noop", "hello");
    job.labels.insert("team".into(), "infra".into());
    let (id, created) = store.enqueue(&job).await.unwrap();
    assert!(created);
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Queued, 0));
    assert_eq!(record.labels["team"], "infra");

    let claimed = store
        .claim(NODE, &types(&["noop"]), 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (
            claimed[0].id.as_str(),
            claimed[0].attempt,
            claimed[0].spec.as_str()
        ),
        (id.as_str(), 1, "hello")
    );
    let running = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (running.state, running.node.as_deref()),
        (JobState::Running, Some(NODE))
    );
    assert!(
        store
            .claim(NODE, &types(&["noop"]), 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );

    let done = Finish::Succeeded {
        output: "out".into(),
    };
    assert_eq!(
        store.finish(&claimed[0], NODE, &done).await.unwrap(),
        Some(JobState::Succeeded)
    );
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Succeeded);
    assert_eq!(record.output.as_deref(), Some("out"));
    assert_eq!(record.history.len(), 1);
    let attempt = &record.history[0];
    assert_eq!(
        (
            attempt.attempt,
            attempt.node.as_str(),
            attempt.outcome.as_str()
        ),
        (1, NODE, "succeeded")
    );
    assert_eq!(
        attempt.reason, "",
        "the output is not repeated in the history"
    );
    assert!(attempt.ended_ms >= attempt.started_ms && attempt.started_ms > 0);
}

pub async fn claims_only_the_types_asked_for_by_priority_then_fifo(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let mut ids = Vec::new();
    for (spec, priority) in [("low-1", 0), ("high", 9), ("low-2", 0), ("mid", 5)] {
        let mut job = new_job("noop", spec);
        job.priority = priority;
        ids.push(store.enqueue(&job).await.unwrap().0);
    }
    store.enqueue(&new_job("other", "x")).await.unwrap();
    let claimed = store
        .claim(NODE, &types(&["noop"]), 10, LEASE)
        .await
        .unwrap();
    let specs: Vec<&str> = claimed.iter().map(|c| c.spec.as_str()).collect();
    assert_eq!(specs, ["high", "mid", "low-1", "low-2"]);
}

pub async fn retries_back_off_then_dead_letter(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let mut job = new_job("noop", "");
    job.retry = RetryPolicy {
        max_attempts: 2,
        backoff_base_ms: 100,
        backoff_max_ms: 1000,
    };
    let (id, _) = store.enqueue(&job).await.unwrap();

    let first = store
        .claim(NODE, &types(&["noop"]), 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    let retry = Finish::Retry {
        after: Duration::from_millis(300),
        reason: "busy".into(),
        outcome: "retry",
    };
    assert_eq!(
        store.finish(&first, NODE, &retry).await.unwrap(),
        Some(JobState::Scheduled)
    );
    let scheduled = store.get(&id).await.unwrap().unwrap();
    assert!(
        scheduled.run_at_ms.unwrap() >= scheduled.updated_ms + 290,
        "{scheduled:?}"
    );
    // Not due yet: nothing to promote or claim.
    assert_eq!(store.promote_due(100).await.unwrap(), 0);
    assert!(
        store
            .claim(NODE, &types(&["noop"]), 1, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(store.promote_due(100).await.unwrap(), 1);
    let second = store
        .claim(NODE, &types(&["noop"]), 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.attempt, 2);

    let crash = Finish::Retry {
        after: Duration::from_millis(10),
        reason: "wasm trap".into(),
        outcome: "crashed",
    };
    assert_eq!(
        store.finish(&second, NODE, &crash).await.unwrap(),
        Some(JobState::Dead)
    );
    let dead = store.get(&id).await.unwrap().unwrap();
    assert_eq!(dead.reason.as_deref(), Some("wasm trap"));
    let outcomes: Vec<&str> = dead.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "crashed"]);
}

pub async fn delayed_jobs_wait_for_their_time(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let mut job = new_job("noop", "later");
    job.run_at_ms = Some(jobhost_store::now_ms() + 400);
    let (id, _) = store.enqueue(&job).await.unwrap();
    assert_eq!(state(&store, &id).await, JobState::Scheduled);
    assert_eq!(store.promote_due(10).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.promote_due(10).await.unwrap(), 1);
    assert_eq!(state(&store, &id).await, JobState::Queued);
    assert_eq!(
        store
            .claim(NODE, &types(&["noop"]), 1, LEASE)
            .await
            .unwrap()[0]
            .id,
        id
    );
}

pub async fn an_idempotency_key_returns_the_same_job(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let mut job = new_job("noop", "once");
    job.idempotency_key = Some("order-42".into());
    let (first, created) = store.enqueue(&job).await.unwrap();
    assert!(created);
    job.spec = "twice".into();
    let (second, created) = store.enqueue(&job).await.unwrap();
    assert!(!created);
    assert_eq!(first, second);
    assert_eq!(store.get(&first).await.unwrap().unwrap().spec, "once");
    assert_eq!(
        store
            .claim(NODE, &types(&["noop"]), 10, LEASE)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn cancel_queued_scheduled_and_running_jobs(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let (queued, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let mut later = new_job("noop", "");
    later.run_at_ms = Some(jobhost_store::now_ms() + 60_000);
    let (scheduled, _) = store.enqueue(&later).await.unwrap();
    assert_eq!(
        store.cancel(&queued, "user").await.unwrap(),
        CancelResult::Cancelled
    );
    assert_eq!(
        store.cancel(&scheduled, "user").await.unwrap(),
        CancelResult::Cancelled
    );
    assert_eq!(state(&store, &queued).await, JobState::Cancelled);
    assert!(
        store
            .claim(NODE, &types(&["noop"]), 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );

    let (running, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let claimed = store
        .claim(NODE, &types(&["noop"]), 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        store
            .cancel_by(&running, "not needed", "token:ops")
            .await
            .unwrap(),
        CancelResult::Cancelling
    );
    let (cancel_seen, lost) = store
        .renew(NODE, std::slice::from_ref(&running), &[], LEASE)
        .await
        .unwrap();
    assert_eq!((cancel_seen, lost), (vec![running.clone()], vec![]));
    // Whatever the plugin returns after the cancel (other than success), the job is CANCELLED.
    let failed = Finish::Failed {
        reason: "stopped".into(),
    };
    assert_eq!(
        store.finish(&claimed, NODE, &failed).await.unwrap(),
        Some(JobState::Cancelled)
    );
    // It ends for the cancel's reason, naming who asked, not for the plugin's last words.
    let record = store.get(&running).await.unwrap().unwrap();
    assert_eq!(record.reason.as_deref(), Some("not needed"));
    assert_eq!(record.cancelled_by, "token:ops");
    assert_eq!(record.history[0].reason, "not needed");

    // Cancelled while its node dies: the reaper ends it for the same reason.
    let (orphan, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    store
        .claim(
            "dying-node",
            &types(&["noop"]),
            1,
            Duration::from_millis(100),
        )
        .await
        .unwrap();
    store
        .cancel_by(&orphan, "stop it", "certificate:admin")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.reap_expired(10).await.unwrap(), 1);
    let record = store.get(&orphan).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Cancelled);
    assert_eq!(record.reason.as_deref(), Some("stop it"));
    assert_eq!(record.cancelled_by, "certificate:admin");
    assert_eq!(
        store.cancel(&running, "again").await.unwrap(),
        CancelResult::AlreadyFinal(JobState::Cancelled)
    );
    assert_eq!(
        store.cancel("no-such-job", "x").await.unwrap(),
        CancelResult::NotFound
    );
}

pub async fn an_expired_lease_requeues_the_job_and_fences_the_old_node(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let (id, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let stale = store
        .claim(
            "dead-node",
            &types(&["noop"]),
            1,
            Duration::from_millis(200),
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        store.reap_expired(10).await.unwrap(),
        0,
        "lease still valid"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.reap_expired(10).await.unwrap(), 1);
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Queued, 1));
    assert_eq!(record.history[0].outcome, "lost");
    assert_eq!(record.history[0].node, "dead-node");

    let fresh = store
        .claim(NODE, &types(&["noop"]), 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(fresh.attempt, 2);
    let done = Finish::Succeeded {
        output: "late".into(),
    };
    assert_eq!(
        store.finish(&stale, "dead-node", &done).await.unwrap(),
        None,
        "stale node is fenced off"
    );
    let (_, lost) = store
        .renew("dead-node", std::slice::from_ref(&id), &[], LEASE)
        .await
        .unwrap();
    assert_eq!(lost, vec![id.clone()]);
    assert_eq!(
        store.finish(&fresh, NODE, &done).await.unwrap(),
        Some(JobState::Succeeded)
    );
}

pub async fn a_lost_nodes_jobs_are_requeued_once_as_a_set(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let short = Duration::from_millis(300);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(store.enqueue(&new_job("noop", "")).await.unwrap().0);
    }
    let lost = store
        .claim("lost-node", &types(&["noop"]), 5, short)
        .await
        .unwrap();
    assert_eq!(lost.len(), 5);
    // A live node's lease is one entry, renewed in one call, whatever it runs.
    let (kept, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let live = store
        .claim(NODE, &types(&["noop"]), 1, short)
        .await
        .unwrap();
    let requests = store.requests();
    let renewed = store
        .renew(NODE, &[live[0].id.clone()], &[], short)
        .await
        .unwrap();
    assert_eq!(renewed, (vec![], vec![]));
    assert_eq!(store.requests() - requests, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    store
        .renew(NODE, &[live[0].id.clone()], &[], short)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The lost node's five are re-queued (in batches of two here), and only once.
    let mut handled = 0;
    for _ in 0..5 {
        handled += store.reap_expired(2).await.unwrap();
    }
    assert_eq!(handled, 5);
    assert_eq!(store.reap_expired(100).await.unwrap(), 0);
    for id in &ids {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Queued, 1), "{id}");
        assert_eq!(job.history.len(), 1);
        assert_eq!(job.history[0].outcome, "lost");
        assert_eq!(job.history[0].node, "lost-node");
    }
    assert_eq!(
        state(&store, &kept).await,
        JobState::Running,
        "the live node's job stays"
    );
    // The lost node comes back: it holds none of them, and cannot record them.
    let lost_ids: Vec<String> = lost.iter().map(|j| j.id.clone()).collect();
    let (_, gone) = store
        .renew("lost-node", &lost_ids, &[], LEASE)
        .await
        .unwrap();
    assert_eq!(gone, lost_ids);
    let ok = succeeded();
    let ends: Vec<_> = lost.iter().map(|j| AttemptEnd::new(j, &ok)).collect();
    let states = store.finish_batch("lost-node", &ends).await.unwrap();
    assert_eq!(
        states,
        vec![None; 5],
        "a stale node's batched finish is refused"
    );
    // Each re-queued job runs again, once.
    let again = store
        .claim(NODE, &types(&["noop"]), 10, LEASE)
        .await
        .unwrap();
    let mut again_ids: Vec<String> = again.iter().map(|j| j.id.clone()).collect();
    again_ids.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(again_ids, want);
    assert!(again.iter().all(|j| j.attempt == 2));
}

pub async fn a_live_nodes_forgotten_job_is_requeued_by_its_own_renewal(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let short = Duration::from_millis(200);
    let (forgotten, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let (recording, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let (running, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let claimed = store
        .claim(NODE, &types(&["noop"]), 3, short)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    // Within a lease of its claim, a job the node does not name is left alone: its claim's
    // answer may still be on its way.
    store
        .renew(
            NODE,
            std::slice::from_ref(&running),
            std::slice::from_ref(&recording),
            short,
        )
        .await
        .unwrap();
    assert_eq!(state(&store, &forgotten).await, JobState::Running);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The node lives on (it renews), but no longer knows of one of its jobs (say it gave up
    // recording the outcome): that job is ended as lost and re-queued, not held for ever.
    let (_, lost) = store
        .renew(
            NODE,
            std::slice::from_ref(&running),
            std::slice::from_ref(&recording),
            short,
        )
        .await
        .unwrap();
    assert!(lost.is_empty());
    let job = store.get(&forgotten).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.history[0].outcome, "lost");
    assert!(
        job.history[0].reason.contains("no longer ran it"),
        "{:?}",
        job.history[0]
    );
    assert_eq!(state(&store, &recording).await, JobState::Running);
    assert_eq!(state(&store, &running).await, JobState::Running);
    let again = store
        .claim(NODE, &types(&["noop"]), 3, LEASE)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id.as_str(), again[0].attempt),
        (forgotten.as_str(), 2)
    );
}

pub async fn an_interrupted_attempt_is_requeued_without_counting(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let (id, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let claimed = store
        .claim(NODE, &types(&["noop"]), 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    let stop = Finish::Interrupted {
        reason: "node shutting down".into(),
    };
    assert_eq!(
        store.finish(&claimed, NODE, &stop).await.unwrap(),
        Some(JobState::Queued)
    );
    let again = store
        .claim(NODE, &types(&["noop"]), 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((again.id, again.attempt), (id, 1));
}

/// Claims and finishes one `noop` job with `finish`; returns its id.
async fn run_one(store: &Store, finish: Finish) -> String {
    let (id, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let claimed = store
        .claim(NODE, &types(&["noop"]), 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(claimed.id, id);
    store.finish(&claimed, NODE, &finish).await.unwrap();
    id
}

fn succeeded() -> Finish {
    Finish::Succeeded {
        output: String::new(),
    }
}

pub async fn finished_jobs_expire_after_the_retention_time(url: &str) {
    // Succeeded jobs go after their own, shorter, retention; failed ones are kept longer.
    let store = Store::connect(
        url,
        StoreOptions {
            succeeded_retention: Duration::from_millis(300),
            retention: Duration::from_millis(1500),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (id, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let claimed = store
        .claim(NODE, &types(&["noop"]), 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    store
        .append_log(&id, 1, &[("INFO", "a line")])
        .await
        .unwrap();
    store.finish(&claimed, NODE, &succeeded()).await.unwrap();
    let failed = run_one(
        &store,
        Finish::Failed {
            reason: "no".into(),
        },
    )
    .await;
    assert!(store.get(&id).await.unwrap().is_some());
    assert_eq!(store.read_log(&id, None, 10).await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(store.get(&id).await.unwrap().is_none());
    assert!(store.read_log(&id, None, 10).await.unwrap().is_empty());
    assert_eq!(
        store.get(&failed).await.unwrap().unwrap().state,
        JobState::Failed,
        "a failed job outlives the succeeded jobs' retention"
    );
    assert_eq!(
        store.sweep(100).await.unwrap(),
        1,
        "the index entry goes too"
    );
    assert_eq!(
        store.recent_jobs(10).await.unwrap(),
        std::slice::from_ref(&failed)
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(store.get(&failed).await.unwrap().is_none());
    assert_eq!(store.sweep(100).await.unwrap(), 1);
    assert!(store.recent_jobs(10).await.unwrap().is_empty());
}

pub async fn a_succeeded_jobs_log_expires_with_it_when_an_attempt_logged(url: &str) {
    // The node says whether an attempt logged: a succeeded job's log is looked after only
    // then, or when the job ran before; a log missed all the same goes with the sweep.
    let store = Store::connect(
        url,
        StoreOptions {
            succeeded_retention: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let claim = || async {
        store
            .claim(NODE, &types(&["noop"]), 1, LEASE)
            .await
            .unwrap()
            .remove(0)
    };
    let finish = |job: jobhost_store::ClaimedJob, finish: Finish, logged: bool| {
        let store = &store;
        async move {
            let end = AttemptEnd {
                job: &job,
                finish: &finish,
                logged,
            };
            store.finish_batch(NODE, &[end]).await.unwrap().remove(0)
        }
    };
    let line = |id: &str, attempt: u32| {
        let (store, id) = (&store, id.to_owned());
        async move {
            store
                .append_log(&id, attempt, &[("INFO", "a line")])
                .await
                .unwrap();
        }
    };
    // An attempt that logged, and says so.
    let (logged, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    line(&logged, 1).await;
    finish(claim().await, succeeded(), true).await;
    // A second attempt that logged nothing: the first one's log goes with the job.
    let (retried, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let first = claim().await;
    line(&retried, 1).await;
    let retry = Finish::Retry {
        after: Duration::ZERO,
        reason: "again".into(),
        outcome: "retry",
    };
    finish(first, retry, true).await;
    assert_eq!(store.promote_due(10).await.unwrap(), 1);
    let second = claim().await;
    assert_eq!(second.attempt, 2);
    finish(second, succeeded(), false).await;
    // A first attempt that says it logged nothing, while a line was written for it (by a
    // node that had lost the attempt, say).
    let (stray, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    line(&stray, 1).await;
    assert_eq!(
        finish(claim().await, succeeded(), false).await,
        Some(JobState::Succeeded)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in [&logged, &retried, &stray] {
        assert!(store.get(id).await.unwrap().is_none(), "{id} expired");
    }
    for id in [&logged, &retried] {
        assert!(
            store.read_log(id, None, 10).await.unwrap().is_empty(),
            "{id}'s log expired with it"
        );
    }
    assert_eq!(
        store.read_log(&stray, None, 10).await.unwrap().len(),
        1,
        "the finish did not look for a log the attempt said it had not written"
    );
    assert_eq!(store.sweep(100).await.unwrap(), 3);
    assert!(
        store.read_log(&stray, None, 10).await.unwrap().is_empty(),
        "the sweep takes the stray log with the expired job's index entry"
    );
}

pub async fn succeeded_jobs_beyond_the_count_are_deleted_as_new_ones_finish(url: &str) {
    let store = Store::connect(
        url,
        StoreOptions {
            succeeded_max: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let failed = run_one(
        &store,
        Finish::Failed {
            reason: "no".into(),
        },
    )
    .await;
    // A job marked to be kept (a Job Distributor delivery, say) is not trimmed either.
    let (kept, _) = store
        .enqueue(&jobhost_store::NewJob {
            keep_succeeded: true,
            ..new_job("noop", "")
        })
        .await
        .unwrap();
    let claimed = store
        .claim(NODE, &types(&["noop"]), 1, LEASE)
        .await
        .unwrap();
    store.finish(&claimed[0], NODE, &succeeded()).await.unwrap();
    let mut ok = Vec::new();
    for _ in 0..10 {
        ok.push(run_one(&store, succeeded()).await);
    }
    assert_eq!(state(&store, &kept).await, JobState::Succeeded);
    // The three newest succeeded jobs stay, with their index entries; the failed job is
    // not counted against the succeeded jobs' limit.
    for (i, id) in ok.iter().enumerate() {
        let kept = store.get(id).await.unwrap().is_some();
        assert_eq!(kept, i >= 7, "job {i}");
    }
    assert!(store.get(&failed).await.unwrap().is_some());
    let mut listed = store.recent_jobs(100).await.unwrap();
    listed.sort();
    let mut want = vec![failed, kept, ok[7].clone(), ok[8].clone(), ok[9].clone()];
    want.sort();
    assert_eq!(listed, want);
}

pub async fn a_batch_of_outcomes_is_recorded_at_once_and_a_stale_one_refused_alone(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    for _ in 0..3 {
        store.enqueue(&new_job("noop", "")).await.unwrap();
    }
    let claimed = store
        .claim(NODE, &types(&["noop"]), 3, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    // The second job's attempt is no longer this node's: another node re-ran it.
    let mut stale = claimed[1].clone();
    stale.attempt += 1;
    let ok = succeeded();
    let failed = Finish::Failed {
        reason: "bad".into(),
    };
    let requests = store.requests();
    let states = store
        .finish_batch(
            NODE,
            &[
                AttemptEnd::new(&claimed[0], &ok),
                AttemptEnd::new(&stale, &ok),
                AttemptEnd::new(&claimed[2], &failed),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.requests() - requests,
        1,
        "one round trip for the batch"
    );
    assert_eq!(
        states,
        [Some(JobState::Succeeded), None, Some(JobState::Failed)]
    );
    assert_eq!(state(&store, &claimed[1].id).await, JobState::Running);
    // The final attempt is kept in the job's own hash, and read back as its history.
    let job = store.get(&claimed[2].id).await.unwrap().unwrap();
    assert_eq!(job.history.len(), 1);
    assert_eq!(
        (job.history[0].attempt, job.history[0].outcome.as_str()),
        (1, "failed")
    );
    assert_eq!(job.history[0].reason, "bad");
    assert_eq!(job.history[0].node, NODE);
    // A second finish of the same attempt is stale.
    assert_eq!(store.finish(&claimed[0], NODE, &ok).await.unwrap(), None);
}

pub async fn log_stream_reads_from_the_start_and_resumes_from_a_cursor(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let (id, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    store
        .append_log(&id, 1, &[("INFO", "one"), ("WARN", "two")])
        .await
        .unwrap();
    let first = store.read_log(&id, None, 10).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
        ["one", "two"]
    );
    store
        .append_log(&id, 2, &[("INFO", "three")])
        .await
        .unwrap();
    let rest = store
        .read_log(&id, Some(&first[1].cursor), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!((rest[0].attempt, rest[0].message.as_str()), (2, "three"));
}

pub async fn the_leader_lease_is_exclusive_and_fences_cron_advances(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let a = store
        .lead("a", Duration::from_millis(300))
        .await
        .unwrap()
        .expect("a leads");
    assert_eq!(
        store.lead("b", Duration::from_millis(300)).await.unwrap(),
        None
    );
    assert_eq!(
        store.lead("a", Duration::from_millis(300)).await.unwrap(),
        Some(a),
        "renewal keeps the token"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = store
        .lead("b", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("b leads after a lapsed");
    assert!(b > a);

    let cron = jobhost_store::CronSchedule {
        name: "tick".into(),
        schedule: "* * * * * *".into(),
        template: new_job("noop", "tick"),
    };
    store.put_cron(&cron, 1000).await.unwrap();
    assert!(
        !store
            .advance_cron("a", a, "tick", 1000, 2000)
            .await
            .unwrap(),
        "expired leader is fenced"
    );
    assert!(
        store
            .advance_cron("b", b, "tick", 1000, 2000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_cron("b", b, "tick", 1000, 3000)
            .await
            .unwrap(),
        "a fire is handled once"
    );
}

pub async fn host_nodes_register_expire_and_deregister(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let node = |id: &str| jobhost_store::NodeInfo {
        id: id.into(),
        hostname: "h".into(),
        version: "0".into(),
        job_types: vec!["noop".into()],
        capacity: 4,
        started_ms: 1,
        running: 0,
        heartbeat_ms: 1,
    };
    store
        .heartbeat(&node("a"), Duration::from_secs(30))
        .await
        .unwrap();
    store
        .heartbeat(&node("b"), Duration::from_millis(1000))
        .await
        .unwrap();
    let ids =
        |nodes: Vec<jobhost_store::NodeInfo>| nodes.into_iter().map(|n| n.id).collect::<Vec<_>>();
    let mut now = ids(store.nodes().await.unwrap());
    now.sort();
    assert_eq!(now, ["a", "b"]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        ids(store.nodes().await.unwrap()),
        ["a"],
        "b stopped heartbeating"
    );
    store.deregister("a").await.unwrap();
    assert!(store.nodes().await.unwrap().is_empty());
}

pub async fn bad_input_is_refused_with_a_reason(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let err = store.enqueue(&new_job("", "")).await.unwrap_err();
    assert!(err.to_string().contains("job type"), "{err}");
    let mut job = new_job("noop", "");
    job.retry.max_attempts = 0;
    assert!(
        store
            .enqueue(&job)
            .await
            .unwrap_err()
            .to_string()
            .contains("max attempts")
    );
}

pub async fn the_sweep_passes_long_lived_jobs_and_clears_leftover_keys(url: &str) {
    let store = Store::connect(
        url,
        StoreOptions {
            retention: Duration::from_millis(200),
            succeeded_retention: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Three jobs that stay (queued for a type nobody serves), then two that finish.
    for _ in 0..3 {
        store.enqueue(&new_job("nobody", "")).await.unwrap();
    }
    let mut finished = Vec::new();
    for _ in 0..2 {
        let (id, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
        let claimed = store
            .claim(NODE, &types(&["noop"]), 1, LEASE)
            .await
            .unwrap()
            .remove(0);
        store.append_log(&id, 1, &[("INFO", "line")]).await.unwrap();
        store
            .finish(
                &claimed,
                NODE,
                &Finish::Succeeded {
                    output: String::new(),
                },
            )
            .await
            .unwrap();
        finished.push(id);
    }
    // A cancelled job's log expires with it too.
    let (cancelled, _) = store.enqueue(&new_job("nobody", "")).await.unwrap();
    store
        .append_log(&cancelled, 1, &[("INFO", "before cancel")])
        .await
        .unwrap();
    store.cancel(&cancelled, "test").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        store
            .read_log(&cancelled, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let mut dropped = 0;
    for _ in 0..6 {
        dropped += store.sweep(2).await.unwrap();
    }
    assert_eq!(
        dropped, 3,
        "two finished jobs and the cancelled one, past the three that stay"
    );
    assert_eq!(store.recent_jobs(100).await.unwrap().len(), 3);
    for id in &finished {
        assert!(store.read_log(id, None, 10).await.unwrap().is_empty());
    }
}

/// Claims `id` (the only queued job) on `node` with a lease of `lease`, lets the lease
/// lapse and reaps it: one attempt lost with its node.
async fn lose_once(store: &Store, node: &str, id: &str) {
    let short = Duration::from_millis(100);
    loop {
        // A job lost twice or more waits a spread-out while (SCHEDULED) before it is due.
        store.promote_due(100).await.unwrap();
        let claimed = store
            .claim(node, &types(&["noop"]), 1, short)
            .await
            .unwrap();
        if let Some(job) = claimed.first() {
            assert_eq!(job.id, id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(store.reap_expired(10).await.unwrap(), 1);
}

/// Attempts lost with their node are the node's failure, not the job's: a job that may run
/// once survives its nodes dying under it (a crash-looping node used to use up its budget
/// and kill it), re-queued at once the first time and spread out after; it has a budget of
/// its own for losses, after which it is DEAD saying so. Its plugin's failures still count.
pub async fn lost_attempts_do_not_use_up_the_failure_budget(url: &str) {
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let mut job = new_job("noop", "");
    job.retry.max_attempts = 1;
    let (id, _) = store.enqueue(&job).await.unwrap();
    lose_once(&store, "victim-1", &id).await;
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        record.state,
        JobState::Queued,
        "the first loss re-queues at once"
    );
    lose_once(&store, "victim-2", &id).await;
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        record.state,
        JobState::Scheduled,
        "a second loss waits a while"
    );
    let wait = record
        .run_at_ms
        .unwrap()
        .saturating_sub(jobhost_store::now_ms());
    assert!(
        wait <= 250,
        "spread over a quarter second per loss so far: {wait} ms"
    );

    // Then it runs to its end on a node that lives: its one attempt of its own.
    loop {
        store.promote_due(100).await.unwrap();
        let claimed = store
            .claim(NODE, &types(&["noop"]), 1, LEASE)
            .await
            .unwrap();
        if let Some(job) = claimed.first() {
            let failed = Finish::Retry {
                after: Duration::ZERO,
                reason: "plugin failed".into(),
                outcome: "retry",
            };
            assert_eq!(
                store.finish(job, NODE, &failed).await.unwrap(),
                Some(JobState::Dead),
                "the plugin's own failure uses the budget of one"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = store.get(&id).await.unwrap().unwrap();
    let outcomes: Vec<&str> = record.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["lost", "lost", "retry"]);

    // Losses have a budget of their own (10).
    let (id, _) = store.enqueue(&job).await.unwrap();
    for n in 1..=11 {
        lose_once(&store, &format!("victim-{n}"), &id).await;
    }
    let record = store.get(&id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Dead);
    assert!(
        record
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("lost 11 times; a job is re-queued after at most 10 losses"),
        "{:?}",
        record.reason
    );
}

pub async fn every_way_a_job_ends_goes_through_the_history_outbox(url: &str) {
    // With history on, an ended job waits whole in the outbox; its retention starts only
    // once it is released (archived); a full outbox lets jobs through with their retention.
    let store = Store::connect(
        url,
        StoreOptions {
            succeeded_retention: Duration::from_millis(300),
            retention: Duration::from_millis(300),
            archive_max: 4,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let ok = run_one(&store, succeeded()).await;
    let failed = run_one(
        &store,
        Finish::Failed {
            reason: "no".into(),
        },
    )
    .await;
    let (queued, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    store.cancel(&queued, "user").await.unwrap();
    // A job being cancelled whose node died: ended by the reaper.
    let (orphan, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    store
        .claim(
            "dead-node",
            &types(&["noop"]),
            1,
            Duration::from_millis(100),
        )
        .await
        .unwrap();
    store.cancel(&orphan, "user").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.reap_expired(10).await.unwrap(), 1);
    assert_eq!(store.archive_backlog().await.unwrap(), (4, 0));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in [&ok, &failed, &queued, &orphan] {
        assert!(store.get(id).await.unwrap().is_some(), "{id} waits whole");
    }

    let pending = store
        .archive_pending(10, 10, 1 << 20)
        .await
        .unwrap()
        .entries;
    let mut read: Vec<(String, JobState)> = pending
        .iter()
        .map(|e| (e.id.clone(), e.job.found().unwrap().record.state))
        .collect();
    read.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (ok.clone(), JobState::Succeeded),
        (failed.clone(), JobState::Failed),
        (queued.clone(), JobState::Cancelled),
        (orphan.clone(), JobState::Cancelled),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(read, want);
    assert!(
        pending
            .iter()
            .all(|e| e.job.found().unwrap().finished_ms() == e.queued_ms)
    );

    // Full: the fifth ending job keeps its retention and is counted.
    let extra = run_one(&store, succeeded()).await;
    assert_eq!(store.archive_backlog().await.unwrap(), (4, 1));

    let released: Vec<(String, u64)> = pending
        .iter()
        .map(|e| (e.id.clone(), e.job.found().unwrap().finished_ms()))
        .collect();
    assert_eq!(store.archive_release(&released).await.unwrap(), 4);
    assert_eq!(
        store.archive_release(&released).await.unwrap(),
        0,
        "released once"
    );
    assert_eq!(store.archive_backlog().await.unwrap(), (0, 1));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in [&ok, &failed, &queued, &orphan, &extra] {
        assert!(
            store.get(id).await.unwrap().is_none(),
            "{id} expired after release"
        );
    }
}

pub async fn a_records_id_and_time_of_last_change_follow_each_transition(url: &str) {
    // Neither is written on the job path (the key names the job; each transition's own
    // time is the last change): the record still answers both, at every step.
    let store = Store::connect(url, StoreOptions::default()).await.unwrap();
    let step = || tokio::time::sleep(Duration::from_millis(5));
    let (id, _) = store.enqueue(&new_job("noop", "")).await.unwrap();
    let queued = store.get(&id).await.unwrap().unwrap();
    assert_eq!(queued.id, id);
    assert_eq!(queued.updated_ms, queued.created_ms);
    step().await;
    let claimed = store
        .claim(NODE, &types(&["noop"]), 1, LEASE)
        .await
        .unwrap()
        .remove(0);
    let running = store.get(&id).await.unwrap().unwrap();
    assert_eq!(running.state, JobState::Running);
    assert!(running.updated_ms > queued.updated_ms, "{running:?}");
    step().await;
    store.cancel(&id, "test").await.unwrap();
    let cancelling = store.get(&id).await.unwrap().unwrap();
    assert!(cancelling.updated_ms > running.updated_ms, "{cancelling:?}");
    step().await;
    store.finish(&claimed, NODE, &succeeded()).await.unwrap();
    let done = store.get(&id).await.unwrap().unwrap();
    assert_eq!(done.id, id);
    assert_eq!(Some(done.updated_ms), done.finished_ms, "{done:?}");
    assert!(done.updated_ms > cancelling.updated_ms);
    assert_eq!(store.recent_jobs(10).await.unwrap(), vec![id]);
}
