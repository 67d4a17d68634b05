//! The `ccip-submit` plugin (built from plugins/ccip-submit) against a fake Chainlink node
//! (tests/common/chainlink.rs): creating and deleting jobs, creates idempotent per
//! externalJobID, credentials, the node's refusals, the node down and back, expired sessions;
//! and the fake node's own answers.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::chainlink::{ChainlinkNode, SESSION_COOKIE};
use common::*;
use jobhost_config::Config;
use jobhost_runtime::{RunOutcome, Runtime};
use serde_json::{Value, json};

/// The node's name in specs and secret names.
const NODE: &str = "chainlink-node-1";
/// Its API user.
const EMAIL: &str = "admin@node1.example";
/// Its password: must never appear in an outcome or a job log.
const PASSWORD: &str = "n0de1-s3cret-pa55word";

/// A CCIP job spec with bytes a careless delivery would change: quotes, escapes, non-ASCII,
/// a tab, trailing spaces, a CRLF line and no final newline.
const CCIP_TOML: &str = "type = \"ccip\"\nschemaVersion = 1\n\
name = \"ccip commit \u{2014} lane \\\"A\u{2192}B\\\" \u{2713}\"\n\
externalJobID = \"7f0c2d1e-6b8a-4c3e-9f5d-2a1b0c9d8e7f\"\n\
# operator's note:\ttab, backslash \\ and trailing spaces   \r\n\
p2pKeyID = \"12D3KooWJb2pWMyqGy8mHBnGNAbQ1c3E6zVUYVRaumVE5gx7Npxd\"\n\
p2pV2Bootstrappers = [\"12D3KooWRKGKf2Bqp1eB9LJ9sGQYmZ9AazH5qa8sTskbM8qg8a6T@10.0.0.1:6690\"]\n\
[ocrKeyBundleIDs]\nevm = \"b3df4d8748b67731a1112e8b45a764941974f5590c93672eebbc4f3504dd10ed\"";

/// A webhook job spec whose every key the node's job resource shows (so the plugin can tell
/// whether the node's job is this spec): an upper-case externalJobID, a duration the node
/// shows in Go's form (`1m0s`), a comment the node does not keep.
const WEBHOOK_TOML: &str = "type = \"webhook\"\nschemaVersion = 1\n\
name = \"price feed \u{2014} ETH/USD\"\n\
externalJobID = \"0EEC7E1D-D0D2-476C-A1A8-72DFB6633F46\"\n\
maxTaskDuration = \"1m\"\n\
# fetched every time the webhook is called\n\
observationSource = \"\"\"\n\
fetch [type=http method=GET url=\"https://example.com/price\"];\n\
parse [type=jsonparse path=\"data,price\" data=\"$(fetch)\"];\n\
fetch -> parse\n\"\"\"\n";

/// [`WEBHOOK_TOML`]'s externalJobID as the node writes it.
const WEBHOOK_UUID: &str = "0eec7e1d-d0d2-476c-a1a8-72dfb6633f46";

/// [`CCIP_TOML`]'s externalJobID.
const CCIP_UUID: &str = "7f0c2d1e-6b8a-4c3e-9f5d-2a1b0c9d8e7f";

/// The node's duplicate-externalJobID refusal (`CreateJobFailed` wrapping the database's
/// unique-constraint error), as its `errors[0].detail`.
const DUPLICATE: &str = "CreateJobFailed: failed to insert job: ERROR: duplicate key value \
violates unique constraint \"external_job_id_uniq\" (SQLSTATE 23505)";

/// A runtime serving `ccip-submit`, allowed to reach `allowed`, with `credentials` (email,
/// password) as the node's secrets when given. The config is written as an operator would,
/// so secret names with `/` go through the config parser too.
async fn ccip_runtime(
    allowed: &str,
    credentials: Option<(&str, &str)>,
) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["ccip-submit"]);
    let mut secrets = String::new();
    if let Some((email, password)) = credentials {
        for (what, value) in [("email", email), ("password", password)] {
            let file = dir.path().join(format!("{what}.secret"));
            std::fs::write(&file, format!("{value}\n")).unwrap();
            secrets.push_str(&format!(
                "\"chainlink/{NODE}/{what}\" = \"file:{}\"\n",
                file.display()
            ));
        }
    }
    let text = format!(
        "[plugins.ccip-submit]\ngrants = [\"http\"]\nallowed_hosts = [\"{allowed}\"]\n\
         [plugins.ccip-submit.secrets]\n{secrets}"
    );
    let operator = Config::from_toml(&text).unwrap();
    operator.check().unwrap();
    let mut config = config(dir.path());
    config.plugins = operator.plugins;
    config.runtime.http_timeout_ms = 2_000;
    (dir, runtime(config).await)
}

/// A node whose user is [`EMAIL`] / [`PASSWORD`], and a runtime that knows both.
async fn node_and_runtime() -> (ChainlinkNode, tempfile::TempDir, Runtime) {
    let node = ChainlinkNode::start(EMAIL, PASSWORD).await;
    let (dir, runtime) = ccip_runtime(&node.url(), Some((EMAIL, PASSWORD))).await;
    (node, dir, runtime)
}

/// A `create` spec for `url`.
fn create(url: &str, toml: &str) -> String {
    json!({ "action": "create", "node": NODE, "url": url, "toml": toml }).to_string()
}

/// A `delete` spec for `url`.
fn delete(url: &str, node_job_id: &str) -> String {
    json!({ "action": "delete", "node": NODE, "url": url, "node_job_id": node_job_id }).to_string()
}

/// Runs one attempt of a `ccip-submit` job.
async fn run(runtime: &Runtime, spec: &str) -> (RunOutcome, Arc<Recorded>) {
    let (opts, events) = options(Some(Duration::from_secs(20)));
    let report = runtime.run(&job("ccip-submit", spec), opts).await.unwrap();
    (report.outcome, events)
}

/// Every line the job logged.
fn logged(events: &Recorded) -> Vec<String> {
    events
        .lines
        .lock()
        .unwrap()
        .iter()
        .map(|(_, line)| line.clone())
        .collect()
}

/// The completed output as JSON (panics on any other outcome).
fn output(outcome: &RunOutcome) -> Value {
    match outcome {
        RunOutcome::Completed { output } => serde_json::from_str(output).unwrap(),
        other => panic!("not completed: {other:?}"),
    }
}

/// The `clsession` cookie a request carried.
fn cookie_of(request: &common::receiver::Received) -> Option<String> {
    request
        .header("cookie")?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// `(method, path)` pairs, for comparing call sequences.
fn calls(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_delivers_the_exact_toml_and_returns_the_node_job_id() {
    let (node, _dir, runtime) = node_and_runtime().await;
    let (outcome, events) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    assert_eq!(
        output(&outcome),
        json!({ "node_job_id": "1" }),
        "{outcome:?}"
    );

    assert_eq!(
        node.calls(),
        calls(&[("POST", "/sessions"), ("POST", "/v2/jobs")])
    );
    let requests = node.requests();
    let login: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(login, json!({ "email": EMAIL, "password": PASSWORD }));
    let delivery = &requests[1];
    assert!(cookie_of(delivery).is_some(), "the session cookie is sent");
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body["toml"].as_str(), Some(CCIP_TOML), "byte for byte");
    assert_eq!(node.jobs().get("1").map(String::as_str), Some(CCIP_TOML));
    assert_eq!(
        node.job("1").unwrap().external_job_id,
        "7f0c2d1e-6b8a-4c3e-9f5d-2a1b0c9d8e7f"
    );

    let lines = logged(&events);
    for step in [
        "node chainlink-node-1: login: 200",
        "node chainlink-node-1: POST /v2/jobs: 200",
        "node chainlink-node-1: created job 1",
    ] {
        assert!(lines.iter().any(|l| l.contains(step)), "{step}: {lines:?}");
    }
    assert!(lines.iter().all(|l| !l.contains(PASSWORD)), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_sends_delete_for_the_id_and_a_job_already_gone_completes_too() {
    let (node, _dir, runtime) = node_and_runtime().await;
    let (created, _) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    let id = output(&created)["node_job_id"].as_str().unwrap().to_owned();

    let (outcome, events) = run(&runtime, &delete(&node.url(), &id)).await;
    assert_eq!(output(&outcome), json!({ "deleted": id }));
    assert!(node.jobs().is_empty(), "the job is gone from the node");
    let deletion = node.requests().pop().unwrap();
    assert_eq!(
        (deletion.method.as_str(), deletion.path.as_str()),
        ("DELETE", "/v2/jobs/1")
    );
    assert!(cookie_of(&deletion).is_some());
    assert!(events.has("node chainlink-node-1: DELETE /v2/jobs/1: 204"));

    // Deleting it again (a retried attempt, say): the node answers 404, the job completes.
    let (outcome, events) = run(&runtime, &delete(&node.url(), &id)).await;
    assert_eq!(
        output(&outcome),
        json!({ "deleted": id, "already_gone": true })
    );
    assert!(
        events.has("job 1 was already gone"),
        "{:?}",
        logged(&events)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_replaces_the_nodes_earlier_job_with_the_same_external_job_id() {
    let (node, _dir, runtime) = node_and_runtime().await;
    let (created, _) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    let first = output(&created)["node_job_id"].as_str().unwrap().to_owned();

    let revised = CCIP_TOML.replacen("\n", "\n# revision 2\n", 1);
    let spec = json!({ "action": "create", "node": NODE, "url": node.url(), "toml": revised, "replaces": first }).to_string();
    let (outcome, _) = run(&runtime, &spec).await;
    let second = output(&outcome)["node_job_id"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(output(&outcome), json!({ "node_job_id": second }));
    let held: Vec<String> = node.jobs().into_values().collect();
    assert_eq!(held, vec![revised.clone()], "only the revision is left");
    // The earlier job is deleted first, so the create needs no lookup.
    assert_eq!(
        node.calls()[2..],
        calls(&[
            ("POST", "/sessions"),
            ("DELETE", "/v2/jobs/1"),
            ("POST", "/v2/jobs"),
        ])
    );
    // Retried after the old job is already gone: still fine.
    let again = json!({ "action": "create", "node": NODE, "url": node.url(), "toml": CCIP_TOML, "replaces": second }).to_string();
    let (outcome, _) = run(&runtime, &again).await;
    assert!(output(&outcome)["node_job_id"].is_string(), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_the_job_fails_naming_the_node_and_calls_nothing() {
    let node = ChainlinkNode::start(EMAIL, PASSWORD).await;
    let (_dir, runtime) = ccip_runtime(&node.url(), None).await;
    let (outcome, events) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    assert_eq!(
        outcome,
        RunOutcome::Failed {
            reason: "no credentials configured for node chainlink-node-1".into()
        }
    );
    assert!(events.has("no credentials configured for node chainlink-node-1"));
    assert!(node.requests().is_empty(), "{:?}", node.calls());

    // Credentials of another node do not count.
    let (outcome, _) = run(
        &runtime,
        &json!({ "action": "delete", "node": "chainlink-node-2", "url": node.url(), "node_job_id": "1" })
            .to_string(),
    )
    .await;
    assert_eq!(
        outcome,
        RunOutcome::Failed {
            reason: "no credentials configured for node chainlink-node-2".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_the_node_refuses_fails_with_the_nodes_detail() {
    let (node, _dir, runtime) = node_and_runtime().await;
    // No `type`: the node's own validation answers 422.
    let (outcome, _) = run(
        &runtime,
        &create(&node.url(), "schemaVersion = 1\nname = \"no type\"\n"),
    )
    .await;
    assert_eq!(
        outcome,
        RunOutcome::Failed {
            reason: "node chainlink-node-1 rejected the job (422): failed to parse TOML: invalid job type"
                .into()
        }
    );
    // Not TOML at all.
    let (outcome, _) = run(&runtime, &create(&node.url(), "type = ccip = 1")).await;
    assert!(
        matches!(&outcome, RunOutcome::Failed { reason }
            if reason.starts_with("node chainlink-node-1 rejected the job (422): failed to parse TOML: ")),
        "{outcome:?}"
    );
    // A refusal scripted with its own detail (e.g. a 400 from type-specific validation).
    node.fail_next(1, 400, "no such key bundle exists");
    let (outcome, events) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    assert_eq!(
        outcome,
        RunOutcome::Failed {
            reason: "node chainlink-node-1 rejected the job (400): no such key bundle exists"
                .into()
        }
    );
    assert!(events.has("node chainlink-node-1: POST /v2/jobs: 400"));
    assert!(node.jobs().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_asks_for_a_retry_with_the_nodes_detail_then_the_next_attempt_succeeds() {
    let (node, _dir, runtime) = node_and_runtime().await;
    node.fail_next(1, 500, "database is unavailable");
    let (outcome, _) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    assert_eq!(
        outcome,
        RunOutcome::Retry {
            after: Duration::ZERO,
            reason: "node chainlink-node-1 answered 500 to the job: database is unavailable".into()
        }
    );
    assert!(node.jobs().is_empty());
    let (outcome, _) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    assert_eq!(output(&outcome), json!({ "node_job_id": "1" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_down_is_retried_and_after_its_restart_the_next_attempt_succeeds() {
    let (node, _dir, runtime) = node_and_runtime().await;
    node.stop().await;
    let (outcome, events) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    let RunOutcome::Retry { after, reason } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(after.is_zero(), "the host's backoff chooses the delay");
    assert!(
        reason.starts_with("node chainlink-node-1 unreachable: connection failed"),
        "{reason}"
    );
    assert!(events.has("node chainlink-node-1 unreachable"));

    node.restart().await;
    let (outcome, _) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    assert_eq!(output(&outcome), json!({ "node_job_id": "1" }));
    assert_eq!(node.jobs().len(), 1);
    assert_eq!(
        node.calls(),
        calls(&[("POST", "/sessions"), ("POST", "/v2/jobs")]),
        "nothing reached the node while it was down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_queue_a_down_node_is_retried_with_backoff_until_it_is_back() {
    use jobhost::worker::{self, WorkerSettings};
    use jobhost_store::{JobState, RetryPolicy};

    let redis = TestRedis::start().await;
    let (node, _dir, runtime) = node_and_runtime().await;
    node.stop().await;
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
    let worker = tokio::spawn(worker::run(store.clone(), runtime, settings, stop.clone()));

    let mut job = new_job("ccip-submit", &create(&node.url(), CCIP_TOML));
    job.retry = RetryPolicy {
        max_attempts: 20,
        backoff_base_ms: 100,
        backoff_max_ms: 300,
    };
    let (id, _) = store.enqueue(&job).await.unwrap();
    let mut record = store.get(&id).await.unwrap().unwrap();
    for _ in 0..400 {
        if record.history.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        record = store.get(&id).await.unwrap().unwrap();
    }
    assert!(record.history.len() >= 2, "{record:?}");
    assert!(
        record
            .history
            .iter()
            .all(|a| a.outcome == "retry" && a.reason.contains("node chainlink-node-1 unreachable")),
        "{:?}",
        record.history
    );

    node.restart().await;
    for _ in 0..400 {
        if record.state.is_final() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        record = store.get(&id).await.unwrap().unwrap();
    }
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    assert_eq!(record.history.last().unwrap().outcome, "succeeded");
    assert_eq!(
        serde_json::from_str::<Value>(record.output.as_deref().unwrap()).unwrap(),
        json!({ "node_job_id": "1" })
    );
    assert_eq!(node.jobs().len(), 1, "delivered once");
    stop.cancel();
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_queue_a_create_whose_answer_was_lost_succeeds_on_its_retry() {
    use jobhost::worker::{self, WorkerSettings};
    use jobhost_store::{JobState, RetryPolicy};

    let redis = TestRedis::start().await;
    let (node, _dir, runtime) = node_and_runtime().await;
    // The node creates the job, but its answer comes after the plugin gave up.
    node.stall_next(1, Duration::from_secs(3));
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
    let worker = tokio::spawn(worker::run(store.clone(), runtime, settings, stop.clone()));

    let mut job = new_job("ccip-submit", &create(&node.url(), WEBHOOK_TOML));
    job.retry = RetryPolicy {
        max_attempts: 3,
        backoff_base_ms: 100,
        backoff_max_ms: 300,
    };
    let (id, _) = store.enqueue(&job).await.unwrap();
    let mut record = store.get(&id).await.unwrap().unwrap();
    for _ in 0..600 {
        if record.state.is_final() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        record = store.get(&id).await.unwrap().unwrap();
    }
    assert_eq!(record.state, JobState::Succeeded, "{record:?}");
    let outcomes: Vec<&str> = record.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "succeeded"], "{:?}", record.history);
    assert_eq!(
        serde_json::from_str::<Value>(record.output.as_deref().unwrap()).unwrap(),
        json!({ "node_job_id": "1", "already_created": true })
    );
    assert_eq!(node.jobs().len(), 1, "created once");
    stop.cancel();
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_logs_in_once_more_then_succeeds() {
    let (node, _dir, runtime) = node_and_runtime().await;
    // The session expires between the login and the delivery.
    node.fail_next(1, 401, "session missing or expired, please login again");
    let (outcome, events) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    assert_eq!(
        output(&outcome),
        json!({ "node_job_id": "1" }),
        "{outcome:?}"
    );
    assert_eq!(
        node.calls(),
        calls(&[
            ("POST", "/sessions"),
            ("POST", "/v2/jobs"),
            ("POST", "/sessions"),
            ("POST", "/v2/jobs"),
        ])
    );
    let requests = node.requests();
    assert_ne!(
        cookie_of(&requests[1]),
        cookie_of(&requests[3]),
        "the retried call carries the new session"
    );
    assert_eq!(node.jobs().get("1").map(String::as_str), Some(CCIP_TOML));
    assert!(
        events.has("401, session expired; logging in again"),
        "{:?}",
        logged(&events)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_401_after_a_fresh_login_fails() {
    let (node, _dir, runtime) = node_and_runtime().await;
    node.fail_next(2, 401, "session missing or expired, please login again");
    let (outcome, _) = run(&runtime, &delete(&node.url(), "7")).await;
    assert_eq!(
        outcome,
        RunOutcome::Failed {
            reason: "node chainlink-node-1 refused a fresh session (DELETE /v2/jobs/7: 401): \
                     session missing or expired, please login again"
                .into()
        }
    );
    assert_eq!(
        node.calls().len(),
        4,
        "one re-login, no more: {:?}",
        node.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_without_the_credentials_in_the_outcome_or_the_log() {
    let node = ChainlinkNode::start(EMAIL, "the-right-password").await;
    let (_dir, runtime) = ccip_runtime(&node.url(), Some((EMAIL, PASSWORD))).await;
    let (outcome, events) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    let RunOutcome::Failed { reason } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.starts_with("node chainlink-node-1 refused the login (401): Invalid password"),
        "{reason}"
    );
    assert!(
        reason.contains("chainlink/chainlink-node-1/password"),
        "says what to fix: {reason}"
    );
    let lines = logged(&events);
    for secret in [PASSWORD, EMAIL] {
        assert!(!reason.contains(secret), "{reason}");
        assert!(lines.iter().all(|l| !l.contains(secret)), "{lines:?}");
    }
    assert!(events.has("node chainlink-node-1: login: 401"));
    assert_eq!(node.calls(), calls(&[("POST", "/sessions")]));

    // An email the node does not know fails the same way.
    let (_dir, runtime) = ccip_runtime(&node.url(), Some(("nobody@node1.example", "x"))).await;
    let (outcome, _) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    assert!(
        matches!(&outcome, RunOutcome::Failed { reason }
            if reason.starts_with("node chainlink-node-1 refused the login (401)") && !reason.contains("nobody@")),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outside_the_allow_list_is_refused_with_the_config_key() {
    let node = ChainlinkNode::start(EMAIL, PASSWORD).await;
    let (_dir, runtime) = ccip_runtime("http://127.0.0.1:1", Some((EMAIL, PASSWORD))).await;
    let (outcome, _) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    let RunOutcome::Failed { reason } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains("denied: not in plugins.ccip-submit.allowed_hosts"),
        "{reason}"
    );
    assert!(node.requests().is_empty());
}

/// Attempt 1 of a create whose answer is lost: the node creates the job but holds the answer
/// back longer than the plugin waits, so the attempt asks for a retry.
async fn create_with_a_lost_answer(node: &ChainlinkNode, runtime: &Runtime, toml: &str) {
    node.stall_next(1, Duration::from_secs(3));
    let (outcome, _) = run(runtime, &create(&node.url(), toml)).await;
    assert!(
        matches!(&outcome, RunOutcome::Retry { reason, .. } if reason.contains("node chainlink-node-1")),
        "{outcome:?}"
    );
    assert_eq!(
        node.jobs().len(),
        1,
        "the node created the job all the same"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_retried_after_its_answer_was_lost_completes_with_the_job_the_node_holds() {
    let (node, _dir, runtime) = node_and_runtime().await;
    create_with_a_lost_answer(&node, &runtime, WEBHOOK_TOML).await;

    // Attempt 2: the node refuses the duplicate externalJobID; its job is this spec.
    let (outcome, events) = run(&runtime, &create(&node.url(), WEBHOOK_TOML)).await;
    assert_eq!(
        output(&outcome),
        json!({ "node_job_id": "1", "already_created": true }),
        "{:?}",
        logged(&events)
    );
    assert_eq!(
        node.jobs().into_iter().collect::<Vec<_>>(),
        vec![("1".to_owned(), WEBHOOK_TOML.to_owned())],
        "still one job, untouched"
    );
    let lookup = format!("/v2/jobs/{WEBHOOK_UUID}");
    assert_eq!(
        node.calls()[2..],
        calls(&[
            ("POST", "/sessions"),
            ("POST", "/v2/jobs"),
            ("GET", lookup.as_str()),
        ]),
        "looked up by externalJobID, nothing deleted nor created"
    );
    for step in [
        "node chainlink-node-1: POST /v2/jobs: 500",
        &format!("already holds a job with externalJobID {WEBHOOK_UUID}; looking it up"),
        &format!("job 1 (externalJobID {WEBHOOK_UUID}) is this spec: already created"),
    ] {
        assert!(events.has(step), "{step}: {:?}", logged(&events));
    }

    // Any number of retries later: the same.
    let (outcome, _) = run(&runtime, &create(&node.url(), WEBHOOK_TOML)).await;
    assert_eq!(
        output(&outcome),
        json!({ "node_job_id": "1", "already_created": true })
    );
    assert_eq!(node.jobs().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_create_replaces_a_job_whose_spec_the_node_does_not_show() {
    // A ccip job's own keys (p2pKeyID, ocrKeyBundleIDs...) are not in the node's answer: the
    // plugin cannot tell its job from an older revision's, so it replaces it.
    let (node, _dir, runtime) = node_and_runtime().await;
    create_with_a_lost_answer(&node, &runtime, CCIP_TOML).await;

    let (outcome, events) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    assert_eq!(
        output(&outcome),
        json!({ "node_job_id": "2", "replaced": "1" }),
        "{:?}",
        logged(&events)
    );
    assert_eq!(
        node.jobs().into_iter().collect::<Vec<_>>(),
        vec![("2".to_owned(), CCIP_TOML.to_owned())]
    );
    let lookup = format!("/v2/jobs/{CCIP_UUID}");
    assert_eq!(
        node.calls()[2..],
        calls(&[
            ("POST", "/sessions"),
            ("POST", "/v2/jobs"),
            ("GET", lookup.as_str()),
            ("DELETE", "/v2/jobs/1"),
            ("POST", "/v2/jobs"),
        ])
    );
    let lines = logged(&events);
    let why = lines
        .iter()
        .find(|l| l.contains("replacing it"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    for key in ["ocrKeyBundleIDs", "p2pKeyID", "p2pV2Bootstrappers"] {
        assert!(why.contains(key), "{why}");
    }
    assert!(why.contains("the node's API does not show them"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_spec_with_the_same_external_job_id_replaces_the_nodes_job_without_replaces() {
    let (node, _dir, runtime) = node_and_runtime().await;
    // Revision 1's delivery is still in flight (its answer lost, its retry not run yet) when
    // revision 2 is delivered, so revision 2 cannot name revision 1's job in `replaces`.
    create_with_a_lost_answer(&node, &runtime, WEBHOOK_TOML).await;
    let revised = WEBHOOK_TOML
        .replace("ETH/USD", "ETH/EUR")
        .replace("data,price", "data,eur");
    let (outcome, events) = run(&runtime, &create(&node.url(), &revised)).await;
    assert_eq!(
        output(&outcome),
        json!({ "node_job_id": "2", "replaced": "1" }),
        "{:?}",
        logged(&events)
    );
    let held: Vec<String> = node.jobs().into_values().collect();
    assert_eq!(held, vec![revised], "only the new spec is left");
    assert!(
        events.has(&format!(
            "job 1 (externalJobID {WEBHOOK_UUID}) differs in name, observationSource: replacing it"
        )),
        "{:?}",
        logged(&events)
    );
    assert!(events.has("node chainlink-node-1: deleted job 1"));

    // The same for a ccip spec changed only in keys the node's answer does not show.
    let (outcome, _) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    assert_eq!(output(&outcome), json!({ "node_job_id": "3" }));
    let moved = CCIP_TOML.replace("@10.0.0.1:6690", "@10.0.0.2:6690");
    let (outcome, _) = run(&runtime, &create(&node.url(), &moved)).await;
    assert_eq!(
        output(&outcome),
        json!({ "node_job_id": "4", "replaced": "3" })
    );
    let held: Vec<String> = node.jobs().into_values().collect();
    assert_eq!(held.len(), 2);
    assert!(held.contains(&moved) && !held.contains(&CCIP_TOML.to_owned()));

    // With `replaces` naming a job that is already gone, the lookup still finds the right one.
    let spec = json!({ "action": "create", "node": NODE, "url": node.url(), "toml": CCIP_TOML, "replaces": "3" }).to_string();
    let (outcome, _) = run(&runtime, &spec).await;
    assert_eq!(
        output(&outcome),
        json!({ "node_job_id": "5", "replaced": "4" })
    );
    assert!(node.jobs().values().any(|t| t == CCIP_TOML));
    assert_eq!(node.jobs().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_refusal_with_nothing_to_confirm_or_a_failing_lookup_is_retried() {
    let (node, _dir, runtime) = node_and_runtime().await;
    // The job is gone by the time of the lookup (deleted in between): created again.
    node.fail_next(1, 500, DUPLICATE);
    let (outcome, events) = run(&runtime, &create(&node.url(), WEBHOOK_TOML)).await;
    assert_eq!(output(&outcome), json!({ "node_job_id": "1" }));
    assert!(
        events.has(&format!(
            "the job with externalJobID {WEBHOOK_UUID} is gone; creating it again"
        )),
        "{:?}",
        logged(&events)
    );

    // The lookup fails: retried like any 5xx.
    node.fail_next(1, 500, DUPLICATE);
    node.fail_next(1, 503, "busy");
    let (outcome, _) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    assert_eq!(
        outcome,
        RunOutcome::Retry {
            after: Duration::ZERO,
            reason: format!(
                "node chainlink-node-1 answered 503 to the lookup of externalJobID {CCIP_UUID}: busy"
            )
        }
    );

    // A spec without an externalJobID of its own has nothing to look up: the refusal is
    // retried as it is.
    node.fail_next(1, 500, DUPLICATE);
    let toml = "type = \"cron\"\nschemaVersion = 1\nschedule = \"CRON_TZ=UTC @every 1m\"\n\
                observationSource = \"a [type=memo value=1]\"\n";
    let (outcome, _) = run(&runtime, &create(&node.url(), toml)).await;
    assert_eq!(
        outcome,
        RunOutcome::Retry {
            after: Duration::ZERO,
            reason: format!("node chainlink-node-1 answered 500 to the job: {DUPLICATE}")
        }
    );
    assert_eq!(node.jobs().len(), 1, "{:?}", node.jobs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_rejected_by_validate() {
    let (_dir, runtime) = ccip_runtime("*", None).await;
    let url = "http://127.0.0.1:6688";
    for (bad, says) in [
        ("{}".to_owned(), "missing field `action`"),
        (
            json!({ "action": "update", "node": NODE, "url": url }).to_string(),
            "unknown variant `update`",
        ),
        (
            json!({ "action": "create", "node": NODE, "url": url }).to_string(),
            "missing field `toml`",
        ),
        (
            json!({ "action": "delete", "node": NODE, "url": url }).to_string(),
            "missing field `node_job_id`",
        ),
        (
            json!({ "action": "create", "node": NODE, "url": url, "toml": "x", "password": "p" })
                .to_string(),
            "unknown field `password`",
        ),
        (create(url, "  \n"), "toml must be the job spec"),
        (
            json!({ "action": "create", "node": "a/b", "url": url, "toml": "x" }).to_string(),
            "node must be 1-128 letters",
        ),
        (create("ftp://node:6688", "x"), "not an http(s) URL"),
        (
            create("http://node:6688/?x=1", "x"),
            "url must be the node's base URL",
        ),
        (
            delete(url, "1/../../sessions"),
            "node_job_id must be the node's job id",
        ),
    ] {
        let err = runtime
            .validate("ccip-submit", &bad)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
    for good in [create(url, CCIP_TOML), delete(&format!("{url}/"), "42")] {
        runtime.validate("ccip-submit", &good).await.unwrap();
    }
}

/// One request to the fake node: status, the `clsession` cookie it set, and the body.
async fn call(
    node: &ChainlinkNode,
    method: &str,
    path: &str,
    session: Option<&str>,
    body: &str,
) -> (u16, Option<String>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", node.port()))
        .await
        .unwrap();
    let cookie = session
        .map(|s| format!("cookie: {SESSION_COOKIE}={s}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: node\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n{cookie}\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let cookie = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            v.trim()
                .strip_prefix(&format!("{SESSION_COOKIE}="))
                .map(str::to_owned)
        })
        .map(|v| v.split(';').next().unwrap().to_owned());
    (status, cookie, body.to_owned())
}

/// The `errors[0].detail` of a JSON:API error document.
fn error_detail(body: &str) -> String {
    let document: Value = serde_json::from_str(body).unwrap();
    document["errors"][0]["detail"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_node_answers_as_a_chainlink_node_does() {
    let node = ChainlinkNode::start(EMAIL, PASSWORD).await;
    let (status, _, body) = call(&node, "GET", "/health", None, "").await;
    assert_eq!(status, 200, "{body}");

    // Jobs need a session.
    let (status, _, body) = call(&node, "POST", "/v2/jobs", None, r#"{"toml":""}"#).await;
    assert_eq!(
        (status, error_detail(&body).as_str()),
        (401, "Authentication failed")
    );

    // Logging in.
    let wrong = json!({ "email": EMAIL, "password": "nope" }).to_string();
    let (status, cookie, body) = call(&node, "POST", "/sessions", None, &wrong).await;
    assert_eq!(
        (status, error_detail(&body).as_str()),
        (401, "Invalid password")
    );
    assert!(cookie.is_none());
    let (status, _, _) = call(&node, "POST", "/sessions", None, "{not json").await;
    assert_eq!(status, 400);
    let right = json!({ "email": EMAIL.to_uppercase(), "password": PASSWORD }).to_string();
    let (status, cookie, body) = call(&node, "POST", "/sessions", None, &right).await;
    assert_eq!(status, 200, "{body}");
    let document: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["data"]["type"], "session");
    assert_eq!(document["data"]["attributes"]["authenticated"], true);
    let session = cookie.expect("a clsession cookie");

    // Creating: the spec is validated like job.ValidateSpec does.
    let post = |toml: &str| json!({ "toml": toml }).to_string();
    for (toml, detail) in [
        ("name = \"x\"", "failed to parse TOML: invalid job type"),
        (
            "type = \"teleport\"\nschemaVersion = 1",
            "failed to parse TOML: invalid job type",
        ),
        (
            "type = \"ccip\"",
            "failed to parse TOML: invalid schema version",
        ),
        (
            "type = \"webhook\"\nschemaVersion = 1",
            "failed to parse TOML: pipeline spec not specified",
        ),
    ] {
        let (status, _, body) = call(&node, "POST", "/v2/jobs", Some(&session), &post(toml)).await;
        assert_eq!(
            (status, error_detail(&body).as_str()),
            (422, detail),
            "{toml}"
        );
    }
    let (status, _, body) = call(
        &node,
        "POST",
        "/v2/jobs",
        Some(&session),
        &post("type = = 1"),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        error_detail(&body).starts_with("failed to parse TOML: "),
        "{body}"
    );
    let (status, _, body) = call(&node, "POST", "/v2/jobs", Some(&session), "[]").await;
    assert_eq!(status, 422, "{body}");

    let (status, _, body) = call(&node, "POST", "/v2/jobs", Some(&session), &post(CCIP_TOML)).await;
    assert_eq!(status, 200, "{body}");
    let document: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(document["data"]["type"], "jobs");
    assert_eq!(document["data"]["id"], "1");
    assert_eq!(document["data"]["attributes"]["type"], "ccip");
    assert_eq!(
        document["data"]["attributes"]["externalJobID"],
        "7f0c2d1e-6b8a-4c3e-9f5d-2a1b0c9d8e7f"
    );
    // The same externalJobID again: the unique constraint, a 500.
    let (status, _, body) = call(&node, "POST", "/v2/jobs", Some(&session), &post(CCIP_TOML)).await;
    assert_eq!(status, 500);
    assert!(
        error_detail(&body).contains("external_job_id_uniq"),
        "{body}"
    );

    // Reading: by id or by external job id.
    for path in [
        "/v2/jobs/1",
        "/v2/jobs/7f0c2d1e-6b8a-4c3e-9f5d-2a1b0c9d8e7f",
    ] {
        let (status, _, body) = call(&node, "GET", path, Some(&session), "").await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, _, body) = call(&node, "GET", "/v2/jobs", Some(&session), "").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["meta"]["count"],
        1
    );
    let (status, _, body) = call(&node, "GET", "/v2/jobs/99", Some(&session), "").await;
    assert_eq!(
        (status, error_detail(&body).as_str()),
        (404, "job not found")
    );

    // Deleting.
    let (status, _, body) = call(&node, "DELETE", "/v2/jobs/abc", Some(&session), "").await;
    assert_eq!(
        (status, error_detail(&body).as_str()),
        (422, "strconv.ParseInt: parsing \"abc\": invalid syntax")
    );
    let (status, _, body) = call(&node, "DELETE", "/v2/jobs/1", Some(&session), "").await;
    assert_eq!((status, body.as_str()), (204, ""));
    let (status, _, body) = call(&node, "DELETE", "/v2/jobs/1", Some(&session), "").await;
    assert_eq!(
        (status, error_detail(&body).as_str()),
        (404, "JobSpec not found")
    );

    // Scripted failures hit the next jobs calls only.
    node.fail_next(2, 503, "busy");
    for _ in 0..2 {
        let (status, _, body) = call(&node, "GET", "/v2/jobs", Some(&session), "").await;
        assert_eq!((status, error_detail(&body).as_str()), (503, "busy"));
    }
    let (status, _, _) = call(&node, "GET", "/v2/jobs", Some(&session), "").await;
    assert_eq!(status, 200);

    // An expired session.
    node.expire_sessions();
    let (status, _, body) = call(&node, "GET", "/v2/jobs", Some(&session), "").await;
    assert_eq!(
        (status, error_detail(&body).as_str()),
        (401, "session missing or expired, please login again")
    );

    // Unknown routes: gin's plain 404.
    let (status, _, body) = call(&node, "GET", "/v3/nothing", None, "").await;
    assert_eq!((status, body.as_str()), (404, "404 page not found"));

    // Stopped: connections are refused; restarted: the same port answers, data kept.
    node.stop().await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", node.port()))
            .await
            .is_err()
    );
    node.restart().await;
    let (status, _, _) = call(&node, "GET", "/health", None, "").await;
    assert_eq!(status, 200);
    assert_eq!(
        node.requests().first().map(|r| r.path.as_str()),
        Some("/health"),
        "every request is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_node_shows_a_job_by_id_or_external_job_id_without_its_toml() {
    let node = ChainlinkNode::start(EMAIL, PASSWORD).await;
    let login = json!({ "email": EMAIL, "password": PASSWORD }).to_string();
    let (_, cookie, _) = call(&node, "POST", "/sessions", None, &login).await;
    let session = cookie.expect("a session");
    let post = |toml: &str| json!({ "toml": toml }).to_string();
    let (status, _, created) = call(
        &node,
        "POST",
        "/v2/jobs",
        Some(&session),
        &post(WEBHOOK_TOML),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let created: Value = serde_json::from_str(&created).unwrap();

    // By id, and by externalJobID in any form uuid.Parse takes: the same resource.
    let upper = WEBHOOK_UUID.to_uppercase();
    let bare = WEBHOOK_UUID.replace('-', "");
    for id in ["1", WEBHOOK_UUID, upper.as_str(), bare.as_str()] {
        let path = format!("/v2/jobs/{id}");
        let (status, _, body) = call(&node, "GET", &path, Some(&session), "").await;
        assert_eq!(status, 200, "{path}: {body}");
        let document: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(document, created, "{path}");
    }
    let data = &created["data"];
    assert_eq!(
        (data["type"].as_str(), data["id"].as_str()),
        (Some("jobs"), Some("1"))
    );
    let attributes = &data["attributes"];
    assert_eq!(attributes["externalJobID"], WEBHOOK_UUID);
    assert_eq!(attributes["name"], "price feed \u{2014} ETH/USD");
    assert_eq!(attributes["type"], "webhook");
    assert_eq!(attributes["schemaVersion"], 1);
    assert_eq!(attributes["maxTaskDuration"], "1m0s", "Go's form");
    assert_eq!(attributes["gasLimit"], Value::Null);
    assert_eq!(attributes["forwardingAllowed"], false);
    assert_eq!(
        attributes["pipelineSpec"]["dotDagSource"],
        "fetch [type=http method=GET url=\"https://example.com/price\"];\n\
         parse [type=jsonparse path=\"data,price\" data=\"$(fetch)\"];\n\
         fetch -> parse\n"
    );
    assert_eq!(attributes["errors"], json!([]));
    let shown = attributes.to_string();
    assert!(
        !shown.contains("toml") && !shown.contains("fetched every time"),
        "the TOML itself is not shown: {shown}"
    );

    // A spec without a name, and with gas settings and a sub-second duration.
    let cron = format!(
        "type = \"cron\"\nschemaVersion = 1\nschedule = \"CRON_TZ=UTC @every 1m\"\n\
         externalJobID = \"{CCIP_UUID}\"\ngasLimit = 500000\nforwardingAllowed = true\n\
         maxTaskDuration = \"1500ms\"\nobservationSource = \"a [type=memo value=1]\"\n"
    );
    let (status, _, body) = call(&node, "POST", "/v2/jobs", Some(&session), &post(&cron)).await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = call(&node, "GET", "/v2/jobs/2", Some(&session), "").await;
    let attributes = serde_json::from_str::<Value>(&body).unwrap()["data"]["attributes"].clone();
    assert_eq!(attributes["name"], "", "Name.ValueOrZero()");
    assert_eq!(attributes["gasLimit"], 500000);
    assert_eq!(attributes["forwardingAllowed"], true);
    assert_eq!(attributes["maxTaskDuration"], "1.5s");
    let (status, _, body) = call(
        &node,
        "POST",
        "/v2/jobs",
        Some(&session),
        &post(
            &cron
                .replace("1500ms", "soon")
                .replace(CCIP_UUID, WEBHOOK_UUID),
        ),
    )
    .await;
    assert_eq!(
        (status, error_detail(&body).as_str()),
        (422, "failed to parse TOML: time: invalid duration \"soon\"")
    );

    // Not there: 404 with Show's detail; neither a UUID nor an int32: 422; no session: 401.
    for id in ["3", "5b1a1a1a-9999-4999-8999-999999999999"] {
        let (status, _, body) =
            call(&node, "GET", &format!("/v2/jobs/{id}"), Some(&session), "").await;
        assert_eq!(
            (status, error_detail(&body).as_str()),
            (404, "job not found"),
            "{id}"
        );
    }
    let (status, _, body) = call(&node, "GET", "/v2/jobs/not-a-job", Some(&session), "").await;
    assert_eq!(
        (status, error_detail(&body).as_str()),
        (
            422,
            "strconv.ParseInt: parsing \"not-a-job\": invalid syntax"
        )
    );
    let (status, _, body) = call(&node, "GET", "/v2/jobs/1", None, "").await;
    assert_eq!(
        (status, error_detail(&body).as_str()),
        (401, "Authentication failed")
    );

    // A held-back answer arrives late, with the work done.
    node.stall_next(1, Duration::from_millis(300));
    let started = std::time::Instant::now();
    let (status, _, _) = call(&node, "DELETE", "/v2/jobs/2", Some(&session), "").await;
    assert_eq!(status, 204);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(node.jobs().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_only_goes_to_the_url_configured_for_its_node() {
    let node = ChainlinkNode::start(EMAIL, PASSWORD).await;
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["ccip-submit"]);
    let secret = |what: &str, value: &str| {
        let file = dir.path().join(format!("{what}.secret"));
        std::fs::write(&file, value).unwrap();
        format!(
            "\"chainlink/{NODE}/{what}\" = \"file:{}\"\n",
            file.display()
        )
    };
    // The node's configured URL is another one than the spec's (both allowed).
    let secrets = secret("email", EMAIL)
        + &secret("password", PASSWORD)
        + &secret("url", "http://127.0.0.1:9/");
    let text = format!(
        "[plugins.ccip-submit]\ngrants = [\"http\"]\nallowed_hosts = [\"{}\", \"http://127.0.0.1:9\"]\n\
         [plugins.ccip-submit.secrets]\n{secrets}",
        node.url()
    );
    let mut config = config(dir.path());
    config.plugins = Config::from_toml(&text).unwrap().plugins;
    let runtime = runtime(config).await;
    let (outcome, events) = run(&runtime, &create(&node.url(), CCIP_TOML)).await;
    let RunOutcome::Failed { reason } = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains("is not the API URL configured for node"),
        "{reason}"
    );
    assert!(
        node.calls().is_empty(),
        "nothing was sent: {:?}",
        node.calls()
    );
    assert!(logged(&events).iter().all(|l| !l.contains(PASSWORD)));
}
