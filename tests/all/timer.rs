//! Timer jobs: the wait is a delayed job in Redis; when due, the timer fires and reports to
//! its control plane exactly once.

use crate::common;

use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::server::{Server, wait_state};
use common::*;
use jobhost_proto::scheduler::{CancelJobRequest, JobState, ScheduleJobRequest, TimerJob};

fn grants(port: u16) -> String {
    format!(
        "[worker]\npoll_ms = 100\n\n[plugins.timer]\ngrants = [\"http\"]\nallowed_hosts = [\"http://127.0.0.1:{port}\"]\n"
    )
}

fn timer(seconds: i64, name: &str, endpoint: &str) -> ScheduleJobRequest {
    ScheduleJobRequest {
        timer_job: Some(TimerJob {
            duration_seconds: seconds,
            timer_name: name.into(),
            control_plane_endpoint: endpoint.into(),
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_fires_once_when_due_and_reports_to_its_control_plane() {
    let receiver = Receiver::start(vec![]).await;
    let redis = TestRedis::start().await;
    let server = Server::start_with(&redis.url(), &["timer"], &grants(receiver.port)).await;
    let mut client = server.client().await;
    let scheduled_at = jobhost_store::now_ms();
    let job = client
        .schedule_job(timer(2, "build-timeout", &receiver.url("/timers")))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(
        job.state(),
        JobState::Scheduled,
        "the wait is a delayed job, not a running one"
    );

    let done = wait_state(&mut client, &job.id, JobState::Succeeded).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1, "exactly one callback");
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/timers")
    );
    let report: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(report["job_id"], done.id.as_str());
    assert_eq!(report["timer_name"], "build-timeout");
    let due = report["scheduled_at_ms"].as_u64().unwrap();
    let fired = report["fired_at_ms"].as_u64().unwrap();
    assert!(
        due >= scheduled_at + 2_000 && due <= scheduled_at + 3_000,
        "due {due}, scheduled {scheduled_at}"
    );
    assert!(fired >= due, "fired {fired} before due {due}");
    // Nothing more arrives later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_cancelled_before_it_fires_never_calls_back() {
    let receiver = Receiver::start(vec![]).await;
    let redis = TestRedis::start().await;
    let server = Server::start_with(&redis.url(), &["timer"], &grants(receiver.port)).await;
    let mut client = server.client().await;
    let job = client
        .schedule_job(timer(1, "never", &receiver.url("/timers")))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let cancelled = client
        .cancel_job(CancelJobRequest {
            job_id: job.id.clone(),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(cancelled.state(), JobState::Cancelled);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(receiver.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pending_timers_all_fire() {
    let redis = TestRedis::start().await;
    let config = "[worker]\nconcurrency = 64\n\n[plugins.timer]\ngrants = [\"http\"]\n";
    let server = Server::start_with(&redis.url(), &["timer"], config).await;
    let mut client = server.client().await;
    let mut ids = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let request = ScheduleJobRequest {
            job_type: "timer".into(),
            spec: format!(r#"{{"duration_seconds": 2, "timer_name": "t{i}"}}"#),
            ..Default::default()
        };
        ids.push(
            client
                .schedule_job(request)
                .await
                .unwrap()
                .into_inner()
                .job
                .unwrap()
                .id,
        );
    }
    let store = redis.store().await;
    let start = Instant::now();
    loop {
        let records = futures::future::join_all(ids.iter().map(|id| store.get(id))).await;
        let done = records
            .iter()
            .filter(|r| matches!(r, Ok(Some(j)) if j.state == jobhost_store::JobState::Succeeded))
            .count();
        if done == ids.len() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{done} of 10000 timers fired"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_callback_is_retried_by_the_jobs_policy() {
    use common::receiver::Answer;
    let receiver = Receiver::start(vec![Answer::status(503, "control plane restarting")]).await;
    let redis = TestRedis::start().await;
    let server = Server::start_with(&redis.url(), &["timer"], &grants(receiver.port)).await;
    let mut client = server.client().await;
    let mut request = timer(0, "retry-me", &receiver.url("/timers"));
    request.backoff_base_ms = 200;
    let job = client
        .schedule_job(request)
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let done = wait_state(&mut client, &job.id, JobState::Succeeded).await;
    let outcomes: Vec<&str> = done.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "succeeded"]);
    assert_eq!(done.history[0].reason, "callback: HTTP 503");
    assert_eq!(
        receiver.received().len(),
        2,
        "one failed callback, one delivered"
    );
}
