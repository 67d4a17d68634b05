//! Outbound HTTP (wasi:http) and the webhook plugin against a test-owned receiver.

use crate::common;

use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::*;
use jobhost_runtime::{RunOutcome, Runtime};

/// The signing secret the webhook runtime's config points at (a file, never inline).
const SECRET: &str = "s3cret-do-not-log";

async fn webhook_runtime(allowed: &[String]) -> (tempfile::TempDir, Runtime) {
    webhook_runtime_private(allowed, &[]).await
}

/// Like [`webhook_runtime`], with `plugins.webhook.allow_private`.
async fn webhook_runtime_private(
    allowed: &[String],
    allow_private: &[&str],
) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["webhook"]);
    let secret_file = dir.path().join("signing.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let mut config = config(dir.path());
    let plugin = config.plugins.entry("webhook".into()).or_default();
    plugin.grants = vec!["http".into()];
    plugin.allowed_hosts = allowed.to_vec();
    plugin.allow_private = allow_private.iter().map(|s| s.to_string()).collect();
    plugin
        .secrets
        .insert("signing".into(), format!("file:{}", secret_file.display()));
    config.runtime.http_timeout_ms = 1_000;
    config.runtime.http_max_response_bytes = 64 * 1024;
    (dir, runtime(config).await)
}

fn spec(url: &str, extra: &str) -> String {
    format!(
        r#"{{"url": "{url}", "headers": {{"x-team": "infra"}}, "body": "{{\"hello\":1}}"{extra}}}"#
    )
}

async fn run(runtime: &Runtime, spec: &str) -> (RunOutcome, std::sync::Arc<Recorded>) {
    let (opts, events) = options(Some(Duration::from_secs(20)));
    let report = runtime.run(&job("webhook", spec), opts).await.unwrap();
    (report.outcome, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_reaches_an_allowed_host_with_method_headers_and_body() {
    let receiver = Receiver::start(vec![Answer::status(204, "")]).await;
    let (_dir, runtime) = webhook_runtime(&[format!("http://127.0.0.1:{}", receiver.port)]).await;
    let (outcome, _) = run(&runtime, &spec(&receiver.url("/hooks/deploy?x=1"), "")).await;
    assert_eq!(
        outcome,
        RunOutcome::Completed {
            output: r#"{"status":204}"#.into()
        }
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/hooks/deploy?x=1")
    );
    assert_eq!(got[0].header("x-team"), Some("infra"));
    assert_eq!(got[0].body, br#"{"hello":1}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outside_the_allow_list_is_refused_with_the_config_key() {
    let receiver = Receiver::start(vec![]).await;
    // Allowed: another port only.
    let (_dir, runtime) = webhook_runtime(&["http://127.0.0.1:1".into()]).await;
    let (outcome, events) = run(&runtime, &spec(&receiver.url("/"), "")).await;
    let RunOutcome::Failed { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains(&format!("127.0.0.1:{}", receiver.port)),
        "{reason}"
    );
    assert!(
        reason.contains("denied: not in plugins.webhook.allowed_hosts"),
        "{reason}"
    );
    assert!(
        events.has("denied: not in plugins.webhook.allowed_hosts"),
        "the refusal is in the job log"
    );
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );

    // An empty list denies everything.
    let (_dir, runtime) = webhook_runtime(&[]).await;
    let (outcome, _) = run(&runtime, &spec(&receiver.url("/"), "")).await;
    assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
    assert!(receiver.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_addresses_are_refused_whatever_the_allow_list() {
    let (_dir, runtime) = webhook_runtime(&["*".into()]).await;
    let (outcome, _) = run(
        &runtime,
        &spec("http://169.254.169.254/latest/meta-data", ""),
    )
    .await;
    let RunOutcome::Failed { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains("link-local and cloud metadata addresses are never allowed"),
        "{reason}"
    );
}

/// `*` lets a plugin name any host, not reach this machine: a name that resolves to a
/// loopback address (here `localhost`) is refused unless `allow_private` covers it, and the
/// node's own services are refused even then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolving_to_loopback_need_allow_private() {
    let receiver = Receiver::start(vec![Answer::status(204, "")]).await;
    let url = format!("http://localhost:{}/hook", receiver.port);
    let (_dir, runtime) = webhook_runtime(&["*".into()]).await;
    let (outcome, events) = run(&runtime, &spec(&url, "")).await;
    let RunOutcome::Failed { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains("request to localhost denied (it resolves to ")
            && reason.contains("loopback and private addresses need plugins.webhook.allow_private"),
        "{reason}"
    );
    assert!(
        events.has("plugins.webhook.allow_private"),
        "the job log says why"
    );
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );

    // A literal loopback address under `*` is refused the same way.
    let literal = receiver.url("/hook");
    let (outcome, _) = run(&runtime, &spec(&literal, "")).await;
    assert!(matches!(outcome, RunOutcome::Failed { .. }), "{outcome:?}");
    assert!(receiver.received().is_empty());

    // Opted in: delivered, to the address that was checked, with the name as Host.
    let (_dir, runtime) = webhook_runtime_private(&["*".into()], &["127.0.0.0/8", "::1"]).await;
    let (outcome, _) = run(&runtime, &spec(&url, "")).await;
    assert_eq!(
        outcome,
        RunOutcome::Completed {
            output: r#"{"status":204}"#.into()
        }
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("host"),
        Some(format!("localhost:{}", receiver.port).as_str())
    );

    // The node's own services stay refused whatever allow_private says.
    runtime.protect_services(vec![
        format!("127.0.0.1:{}", receiver.port).parse().unwrap(),
        format!("[::1]:{}", receiver.port).parse().unwrap(),
    ]);
    let (outcome, _) = run(&runtime, &spec(&url, "")).await;
    let RunOutcome::Failed { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains("one of this node's own services"),
        "{reason}"
    );
    assert_eq!(receiver.received().len(), 1, "no second delivery");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_map_to_success_retry_and_failure() {
    let receiver = Receiver::start(vec![
        Answer::status(500, "down"),
        Answer::status(404, "no such hook: deploy"),
        Answer::status(429, "slow down"),
        Answer::status(201, "made"),
    ])
    .await;
    let (_dir, runtime) = webhook_runtime(&[format!("http://127.0.0.1:{}", receiver.port)]).await;
    let url = receiver.url("/");
    let (outcome, _) = run(&runtime, &spec(&url, "")).await;
    assert!(
        matches!(&outcome, RunOutcome::Retry { reason, after } if reason == "HTTP 500: down" && after.is_zero()),
        "{outcome:?}"
    );
    let (outcome, _) = run(&runtime, &spec(&url, "")).await;
    assert_eq!(
        outcome,
        RunOutcome::Failed {
            reason: "HTTP 404: no such hook: deploy".into()
        }
    );
    let (outcome, _) = run(&runtime, &spec(&url, "")).await;
    assert!(matches!(outcome, RunOutcome::Retry { .. }), "{outcome:?}");
    let (outcome, _) = run(&runtime, &spec(&url, r#", "success_statuses": [200]"#)).await;
    assert!(
        matches!(&outcome, RunOutcome::Failed { reason } if reason.starts_with("HTTP 201")),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_oversized_responses_are_contained() {
    let receiver = Receiver::start(vec![
        Answer {
            status: 200,
            body: "late".into(),
            delay: Duration::from_secs(3),
        },
        Answer::status(200, &"x".repeat(200 * 1024)),
    ])
    .await;
    let (_dir, runtime) = webhook_runtime(&[format!("http://127.0.0.1:{}", receiver.port)]).await;
    let url = receiver.url("/");
    // The runtime's 1 s HTTP timeout (the spec asks for 10 s) cuts the slow answer.
    let (outcome, _) = run(&runtime, &spec(&url, "")).await;
    assert!(
        matches!(&outcome, RunOutcome::Retry { reason, .. } if reason.contains("timed out") || reason.contains("Timeout")),
        "{outcome:?}"
    );
    let (outcome, _) = run(&runtime, &spec(&url, "")).await;
    assert!(
        matches!(&outcome, RunOutcome::Retry { reason, .. } if reason == "connection failed: reading the response: HTTP response body size exceeds limit: 65536 bytes"),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_http_grant_requests_are_refused_and_strict_imports_rejects_it() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["webhook"]);
    let lenient = runtime(config(dir.path())).await;
    let (outcome, _) = run(&lenient, &spec("http://127.0.0.1:9/", "")).await;
    let RunOutcome::Failed { reason } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(reason.contains("plugins.webhook.grants"), "{reason}");
    let mut strict = config(dir.path());
    strict.runtime.strict_imports = true;
    let runtime = runtime(strict).await;
    let status = runtime
        .plugins()
        .into_iter()
        .find(|p| p.id == "webhook")
        .unwrap();
    let reason = status.rejection.unwrap();
    assert!(reason.contains("imports wasi:http/"), "{reason}");
    assert!(
        reason.contains("`plugins.webhook.grants = [\"http\"]`"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_rejected_by_validate() {
    let (_dir, runtime) = webhook_runtime(&["*".into()]).await;
    for (bad, says) in [
        ("{}", "missing field `url`"),
        (r#"{"url": "ftp://x"}"#, "not an http(s) URL"),
        (
            r#"{"url": "http://x", "colour": 1}"#,
            "unknown field `colour`",
        ),
    ] {
        let err = runtime
            .validate("webhook", bad)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_queue_a_500_is_retried_once_then_succeeds_and_a_404_fails_at_once() {
    use jobhost::worker::{self, WorkerSettings};
    use jobhost_store::{JobState, RetryPolicy};

    let receiver =
        Receiver::start(vec![Answer::status(500, "busy"), Answer::status(200, "ok")]).await;
    let redis = TestRedis::start().await;
    let (_dir, runtime) = webhook_runtime(&[format!("http://127.0.0.1:{}", receiver.port)]).await;
    let store = redis.store().await;
    let settings = WorkerSettings {
        node_id: worker::new_node_id(),
        concurrency: 2,
        lease: Duration::from_secs(10),
        heartbeat: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(1),
        poll: Duration::from_millis(100),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let node = tokio::spawn(worker::run(store.clone(), runtime, settings, stop.clone()));

    let mut job = new_job("webhook", &spec(&receiver.url("/deliver"), ""));
    job.retry = RetryPolicy {
        max_attempts: 3,
        backoff_base_ms: 100,
        backoff_max_ms: 1_000,
    };
    let (id, _) = store.enqueue(&job).await.unwrap();
    let done = loop {
        let record = store.get(&id).await.unwrap().unwrap();
        if record.state.is_final() {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.state, JobState::Succeeded);
    let outcomes: Vec<&str> = done.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "succeeded"]);
    assert_eq!(receiver.received().len(), 2, "exactly one retry");

    receiver.push(Answer::status(404, "gone"));
    let (id, _) = store.enqueue(&job).await.unwrap();
    let failed = loop {
        let record = store.get(&id).await.unwrap().unwrap();
        if record.state.is_final() {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.history.len(), 1, "a 404 is not retried");
    assert_eq!(failed.reason.as_deref(), Some("HTTP 404: gone"));
    stop.cancel();
    node.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_delivery_verifies_with_the_secret_which_is_never_logged() {
    let receiver = Receiver::start(vec![]).await;
    let (_dir, runtime) = webhook_runtime(&[format!("http://127.0.0.1:{}", receiver.port)]).await;
    let signed = spec(&receiver.url("/"), r#", "signing": {"secret": "signing"}"#);
    let (outcome, events) = run(&runtime, &signed).await;
    assert!(outcome.is_completed(), "{outcome:?}");
    let got = &receiver.received()[0];
    let timestamp = got.header("x-jobhost-timestamp").unwrap();
    let signature = got.header("x-jobhost-signature").unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let signed_text = format!("{timestamp}.{}", String::from_utf8_lossy(&got.body));
    ring::hmac::verify(
        &key,
        signed_text.as_bytes(),
        &hex::decode(signature).unwrap(),
    )
    .expect("the signature verifies");
    let logged: Vec<String> = events
        .lines
        .lock()
        .unwrap()
        .iter()
        .map(|(_, l)| l.clone())
        .collect();
    assert!(logged.iter().all(|l| !l.contains(SECRET)), "{logged:?}");

    // A secret name the config does not define fails with what to set.
    let unknown = spec(&receiver.url("/"), r#", "signing": {"secret": "other"}"#);
    let (outcome, _) = run(&runtime, &unknown).await;
    let RunOutcome::Failed { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("plugins.<id>.secrets.other"), "{reason}");
}
