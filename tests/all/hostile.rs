//! A node under attack from every side at once (spinning `validate`s, spinning and
//! memory-hungry jobs, log floods, oversized outputs, hostile plugin text, a plugin probing
//! the node's own Redis) still serves an ordinary job promptly.

use crate::common;

use std::time::{Duration, Instant};

use common::server::{Server, schedule_ok, wait_state};
use common::*;
use jobhost_proto::scheduler::{JobState, ScheduleJobRequest};

fn request(job_type: &str, spec: &str, timeout_ms: u64) -> ScheduleJobRequest {
    ScheduleJobRequest {
        job_type: job_type.into(),
        spec: spec.into(),
        timeout_ms,
        max_attempts: 1,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_under_attack_keeps_serving_an_ordinary_job() {
    let redis = TestRedis::start().await;
    let config = "[plugins.net-probe]\ngrants = [\"network\"]\nallow_private = [\"127.0.0.0/8\"]\n";
    let server = Server::start_with(
        &redis.url(),
        &[
            "noop",
            "spin",
            "log-flood",
            "alloc-bomb",
            "hostile",
            "net-probe",
        ],
        config,
    )
    .await;
    let client = server.client().await;
    let redis_addr = redis.url().trim_start_matches("redis://").to_owned();
    let mut attack = tokio::task::JoinSet::new();
    let mut fire = |req: ScheduleJobRequest| {
        let mut client = client.clone();
        attack.spawn(async move { client.schedule_job(req).await.map(|_| ()) });
    };
    for _ in 0..40 {
        fire(request("spin", "spin", 0)); // spins in validate
    }
    for _ in 0..2 {
        fire(request("spin", "", 3_000)); // spins in run until its deadline
        fire(request("alloc-bomb", "", 3_000));
        fire(request("log-flood", "", 3_000));
    }
    for _ in 0..10 {
        fire(request("hostile", "output:3000000", 0));
        fire(request("hostile", r"log:forged\n2026-01-01 ERROR line", 0));
        fire(request("net-probe", &redis_addr, 0));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut client = server.client().await;
    let mut took = Vec::new();
    for i in 0..5 {
        let start = Instant::now();
        let job = schedule_ok(&mut client, request("noop", &format!("ok {i}"), 0)).await;
        let done = wait_state(&mut client, &job.id, JobState::Succeeded).await;
        took.push(start.elapsed());
        assert_eq!(done.output, format!("ok {i}"));
        let ms = |t: &Option<prost_types::Timestamp>| {
            t.as_ref()
                .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos / 1_000_000))
        };
        let a = &done.history[0];
        // Redis's clock: created (enqueued) → claimed → outcome recorded.
        println!(
            "noop {i}: created→claimed {} ms, claimed→recorded {} ms, request→seen {:?}",
            ms(&a.started_at) - ms(&done.created_at),
            ms(&a.ended_at) - ms(&a.started_at),
            start.elapsed()
        );
    }
    took.sort();
    println!("noop under attack, submission to SUCCEEDED: {took:?}");
    // The spinning validates were turned away or stopped, never answered with a crash of
    // the API; the node answers health all along.
    while let Some(answer) = attack.join_next().await {
        if let Err(status) = answer.unwrap() {
            assert!(
                matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::InvalidArgument
                ),
                "{status:?}"
            );
        }
    }
    assert!(
        took[2] < Duration::from_secs(1),
        "an ordinary job waited {took:?} behind the attack"
    );
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01")),
        "a plugin forged a node log line"
    );
}
