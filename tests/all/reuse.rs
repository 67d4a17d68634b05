//! Instances kept between attempts (`plugins.<id>.reuse = N`), against the real `counter`
//! plugin, which counts the attempts its instance served in a global: an instance serves
//! at most N attempts; any call that did not return normally and any change of grants
//! retires it; each attempt logs into its own job; a new build never serves from an old
//! build's instances and a blocked build keeps none; kept instances never crowd out other
//! plugins; an instance left unused for `runtime.kept_idle_secs` is dropped; and a node
//! configured so serves jobs that way. The specs of one request are
//! validated on a shared instance (up to `VALIDATE_SHARED_CALLS` of them), whatever `reuse`
//! says, and a validation that does not return answers for its spec alone.

use crate::common;

use std::time::Duration;

use common::receiver::http_request;
use common::server::{Server, schedule_ok, wait_state};
use common::*;
use jobhost_runtime::{
    CrashKind, RunOutcome, Runtime, VALIDATE_SHARED_CALLS, VALIDATE_SHARED_TIME, ValidateError,
};

async fn counter_reusing(
    reuse: Option<u32>,
    tweak: impl FnOnce(&mut jobhost_config::Config),
) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["counter", "noop"]);
    let mut config = config(dir.path());
    config.plugins.entry("counter".into()).or_default().reuse = reuse;
    tweak(&mut config);
    let runtime = runtime(config).await;
    (dir, runtime)
}

/// Runs `spec` on `counter` and returns the outcome.
async fn count(runtime: &Runtime, spec: &str) -> RunOutcome {
    let (opts, _) = options(None);
    runtime
        .run(&job("counter", spec), opts)
        .await
        .unwrap()
        .outcome
}

/// The `call N` outputs of `n` attempts one after the other.
async fn calls(runtime: &Runtime, n: usize) -> Vec<String> {
    let mut outputs = Vec::new();
    for _ in 0..n {
        match count(runtime, "").await {
            RunOutcome::Completed { output } => outputs.push(output),
            other => panic!("expected a completed attempt, got {other:?}"),
        }
    }
    outputs
}

fn expected(calls: &[u32]) -> Vec<String> {
    calls.iter().map(|n| format!("call {n}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reuse_every_attempt_gets_a_fresh_instance() {
    for reuse in [None, Some(1)] {
        let (_dir, runtime) = counter_reusing(reuse, |_| {}).await;
        assert_eq!(
            calls(&runtime, 4).await,
            expected(&[1, 1, 1, 1]),
            "{reuse:?}"
        );
        assert_eq!(runtime.stats().kept_instances, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_serves_at_most_reuse_attempts_then_a_fresh_one_takes_over() {
    let (_dir, runtime) = counter_reusing(Some(3), |_| {}).await;
    assert_eq!(
        calls(&runtime, 7).await,
        expected(&[1, 2, 3, 1, 2, 3, 1]),
        "the third attempt is an instance's last"
    );
    let counter = runtime.plugin("counter").unwrap();
    assert_eq!(counter.kept_instances(), 1);
    assert_eq!(
        counter.kept_places(),
        Some(1),
        "a Rust plugin takes one slot's share"
    );
    // Reuse is per plugin: noop, not opted in, still gets a fresh instance each time.
    assert_eq!(runtime.plugin("noop").unwrap().kept_instances(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_retires_the_instance() {
    let (_dir, runtime) = counter_reusing(Some(100), |_| {}).await;
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
    match count(&runtime, "trap").await {
        RunOutcome::Crashed { kind, .. } => assert_eq!(kind, CrashKind::Trap),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_limit_hit_retires_the_instance() {
    let (_dir, runtime) = counter_reusing(Some(100), |c| {
        c.plugins
            .entry("counter".into())
            .or_default()
            .memory_limit_mb = Some(32);
    })
    .await;
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
    match count(&runtime, "grow").await {
        RunOutcome::Crashed { kind, reason } => {
            assert_eq!(kind, CrashKind::MemoryLimit, "{reason}");
            assert!(reason.contains("32 MiB"), "{reason}");
        }
        other => panic!("expected a memory-limit hit, got {other:?}"),
    }
    assert_eq!(calls(&runtime, 1).await, expected(&[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_retires_the_instance() {
    let (_dir, runtime) = counter_reusing(Some(100), |_| {}).await;
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
    let (opts, _) = options(Some(Duration::from_millis(200)));
    let report = runtime
        .run(&job("counter", "sleep:5000"), opts)
        .await
        .unwrap();
    match report.outcome {
        RunOutcome::Crashed { kind, .. } => assert_eq!(kind, CrashKind::Deadline),
        other => panic!("expected the deadline, got {other:?}"),
    }
    assert_eq!(calls(&runtime, 1).await, expected(&[1]), "a fresh instance");
    // The kept instance's next attempt has a deadline of its own: it is not cut short.
    let (opts, _) = options(Some(Duration::from_secs(10)));
    let report = runtime
        .run(&job("counter", "sleep:300"), opts)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Completed {
            output: "call 2".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_attempt_retires_the_instance_even_when_the_plugin_returns() {
    let (_dir, runtime) = counter_reusing(Some(100), |_| {}).await;
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
    let (opts, _) = options(None);
    let cancel = opts.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let report = runtime
        .run(&job("counter", "sleep:5000"), opts)
        .await
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Cancelled);
    assert_eq!(calls(&runtime, 1).await, expected(&[1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_grants_retires_kept_instances() {
    // A kept instance's WASI context was shaped by the grants it was built under (whether
    // it may open sockets or look names up): after a change it is not used again.
    let (_dir, runtime) = counter_reusing(Some(100), |_| {}).await;
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
    runtime
        .set_grants("counter", vec!["network".into()])
        .unwrap();
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
    runtime.set_grants("counter", Vec::new()).unwrap();
    assert_eq!(calls(&runtime, 1).await, expected(&[1]));
    assert_eq!(runtime.stats().kept_instances, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_of_a_kept_instance_logs_into_its_own_job() {
    let (_dir, runtime) = counter_reusing(Some(100), |_| {}).await;
    // The first attempt leaves a line without its newline: it belongs to that job.
    let (first, first_events) = options(None);
    let report = runtime
        .run(&job("counter", "partial"), first)
        .await
        .unwrap();
    assert!(report.outcome.is_completed(), "{}", report.outcome);
    assert!(
        first_events.has("no newline after call 1"),
        "{:?}",
        first_events.lines.lock().unwrap()
    );
    let (second, second_events) = options(None);
    let report = runtime.run(&job("counter", ""), second).await.unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Completed {
            output: "call 2".into()
        }
    );
    assert!(
        !second_events.has("no newline"),
        "the first job's output leaked into the second's log: {:?}",
        second_events.lines.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_build_never_serves_from_the_old_builds_instances() {
    let (dir, runtime) = counter_reusing(Some(100), |_| {}).await;
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
    let bytes = std::fs::read(plugin_file("counter")).unwrap();
    install_bytes(dir.path(), "counter", &rebuilt(&bytes, "v2"));
    runtime.sync_dir().await.unwrap();
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
    assert_eq!(
        runtime.stats().kept_instances,
        1,
        "the old build's instance went with it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_build_keeps_no_instances() {
    let (dir, runtime) = counter_reusing(Some(100), |_| {}).await;
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
    assert_eq!(runtime.stats().kept_instances, 1);
    // A second plugin claims the type: neither serves it until one goes.
    let bytes = std::fs::read(plugin_file("counter")).unwrap();
    install_bytes(dir.path(), "counter-copy", &rebuilt(&bytes, "copy"));
    runtime.sync_dir().await.unwrap();
    assert!(runtime.plugin_for("counter").is_none());
    assert_eq!(
        runtime.stats().kept_instances,
        0,
        "the blocked build's instance was let go"
    );
    std::fs::remove_file(dir.path().join("counter-copy.wasm")).unwrap();
    runtime.sync_dir().await.unwrap();
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_instance_left_unused_for_kept_idle_secs_is_dropped() {
    let (_dir, runtime) = counter_reusing(Some(100), |c| c.runtime.kept_idle_secs = 1).await;
    assert_eq!(calls(&runtime, 2).await, expected(&[1, 2]));
    // Used within the idle time, it stays.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(calls(&runtime, 1).await, expected(&[3]));
    assert_eq!(runtime.stats().kept_instances, 1);
    let dropped = eventually(Duration::from_secs(5), || {
        runtime.stats().kept_instances == 0
    })
    .await
    .expect("the idle instance is dropped");
    assert!(
        dropped >= Duration::from_millis(900),
        "not before its idle time: {dropped:?}"
    );
    assert_eq!(
        calls(&runtime, 2).await,
        expected(&[1, 2]),
        "a fresh instance serves next"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_instances_never_crowd_out_other_plugins() {
    // Two run slots and one validate slot: at most two instances are kept, and the
    // engine's pool has room for them beside every slot's fresh instance (without that
    // room, the two noop instances below would find the pool full).
    let (_dir, runtime) = counter_reusing(Some(1000), |c| {
        c.runtime.max_instances = 2;
        c.runtime.validate_slots = 1;
    })
    .await;
    let concurrent = (0..4).map(|_| {
        let runtime = runtime.clone();
        tokio::spawn(async move { count(&runtime, "sleep:100").await })
    });
    for outcome in futures::future::join_all(concurrent).await {
        assert!(outcome.unwrap().is_completed());
    }
    assert_eq!(runtime.stats().kept_instances, 2);
    let both = futures::future::join(
        async {
            let (opts, _) = options(None);
            runtime.run(&job("noop", "a"), opts).await.unwrap().outcome
        },
        async {
            let (opts, _) = options(None);
            runtime.run(&job("noop", "b"), opts).await.unwrap().outcome
        },
    )
    .await;
    assert!(both.0.is_completed(), "{}", both.0);
    assert!(both.1.is_completed(), "{}", both.1);
    let outputs = calls(&runtime, 2).await;
    assert!(
        outputs.iter().all(|o| o != "call 1"),
        "kept instances serve again: {outputs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_reuse_in_its_config_serves_jobs_from_kept_instances() {
    use jobhost_proto::scheduler::{JobState, ScheduleJobRequest};
    let redis = TestRedis::start().await;
    let config = "[worker]\nconcurrency = 1\n[plugins.counter]\nreuse = 3\n";
    let server = Server::start_with(&redis.url(), &["counter"], config).await;
    let mut client = server.client().await;
    let mut outputs = Vec::new();
    for _ in 0..4 {
        let request = ScheduleJobRequest {
            job_type: "counter".into(),
            ..Default::default()
        };
        let job = schedule_ok(&mut client, request).await;
        let done = wait_state(&mut client, &job.id, JobState::Succeeded).await;
        outputs.push(done.output);
    }
    assert_eq!(outputs, expected(&[1, 2, 3, 1]));
    let (status, body) = http_request(&server.http_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(crate::http::samples(&body)["jobhost_instances_kept"], 1.0);
}

/// What `validate_many` answered, as short strings: `ok`, the refusal's message, or
/// `crashed: <reason>`.
async fn validations(runtime: &Runtime, specs: &[&str]) -> Vec<String> {
    let answers = runtime.validate_many("counter", specs).await;
    assert_eq!(answers.len(), specs.len(), "one answer per spec");
    answers
        .into_iter()
        .map(|answer| match answer {
            Ok(()) => "ok".to_owned(),
            Err(ValidateError::Invalid(message)) => message,
            Err(ValidateError::Crashed(reason)) => format!("crashed: {reason}"),
            Err(other) => panic!("unexpected answer {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_requests_specs_share_an_instance_and_a_trap_answers_for_its_own_spec() {
    // Without `reuse`: sharing within a request is not instance reuse between jobs.
    let (_dir, runtime) = counter_reusing(None, |_| {}).await;
    let answers = validations(
        &runtime,
        &[
            "validate-count",
            "{}",
            "validate-count",
            "validate-trap",
            "validate-count",
        ],
    )
    .await;
    assert_eq!(answers[..3], ["validation 1", "ok", "validation 3"]);
    assert!(answers[3].starts_with("crashed: "), "{}", answers[3]);
    assert_eq!(
        answers[4], "validation 1",
        "a fresh instance after the trap"
    );
    // The next request starts from a fresh instance too, and so does each single check.
    assert_eq!(
        validations(&runtime, &["validate-count"]).await,
        ["validation 1"]
    );
    for _ in 0..2 {
        assert_eq!(
            runtime.validate("counter", "validate-count").await,
            Err(ValidateError::Invalid("validation 1".into()))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validation_past_its_deadline_answers_alone_and_sharing_is_bounded() {
    let (_dir, runtime) = counter_reusing(None, |c| c.runtime.validate_timeout_ms = 300).await;
    let answers = validations(
        &runtime,
        &["validate-count", "validate-spin", "validate-count"],
    )
    .await;
    assert_eq!(answers[0], "validation 1");
    assert!(answers[1].contains("deadline"), "{}", answers[1]);
    assert_eq!(
        answers[2], "validation 1",
        "a fresh instance after the deadline"
    );
    // A slow validate keeps its instance (and its slot) for no longer than
    // VALIDATE_SHARED_TIME: the next spec queues again, and gets a fresh instance.
    let busy = format!("validate-busy:{}", VALIDATE_SHARED_TIME.as_millis() + 50);
    assert_eq!(
        validations(&runtime, &[&busy, "validate-count"]).await,
        ["validation 1", "validation 1"]
    );
    // At most VALIDATE_SHARED_CALLS specs share one instance: the counts run 1, 2, ... on
    // each instance (a busy machine may end a run early, at VALIDATE_SHARED_TIME).
    let many = vec!["validate-count"; VALIDATE_SHARED_CALLS + 2];
    let answers = validations(&runtime, &many).await;
    let mut runs: Vec<usize> = Vec::new();
    for answer in &answers {
        let n: usize = answer.trim_start_matches("validation ").parse().unwrap();
        match runs.last_mut() {
            Some(run) if n == *run + 1 => *run = n,
            _ => {
                assert_eq!(n, 1, "a run starts on a fresh instance: {answers:?}");
                runs.push(1);
            }
        }
    }
    assert!(runs.len() >= 2, "{runs:?}");
    assert!(
        runs.iter().all(|&run| run <= VALIDATE_SHARED_CALLS),
        "{runs:?}"
    );
    assert!(runs[0] > 1, "specs share an instance: {runs:?}");
}
