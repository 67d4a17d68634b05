//! The HTTP API of a real server: inbound webhook triggers (`POST /v1/hooks/{name}`),
//! `/healthz`, `/readyz`, `/metrics`, the REST mirror of the scheduler and its JSON errors,
//! server-sent event streams (job logs, the dashboard's shared snapshots), the OpenAPI
//! document, and the connection limits (slow headers, idle connections, rate limits).

use crate::common;

use common::receiver::{http_request, open_stream};
use common::server::{Server, running_sleeper, wait_state};
use common::*;
use jobhost_proto::scheduler::JobState;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn server_with_hook(redis: &TestRedis, token_file: &std::path::Path) -> Server {
    let config = format!(
        "[api]\nmax_hook_body_bytes = 1024\n\n[hooks.deploy]\njob_type = \"hello\"\ntoken = \"file:{}\"\nlabels = {{ source = \"ci\" }}\n",
        token_file.display()
    );
    Server::start_with(&redis.url(), &["hello"], &config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_with_the_right_token_starts_its_job() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0k3n\n").unwrap();
    let server = server_with_hook(&redis, &token).await;
    let (status, body) = http_request(
        &server.http_addr,
        "POST",
        "/v1/hooks/deploy",
        &[
            ("authorization", "Bearer t0k3n"),
            ("content-type", "application/json"),
        ],
        br#"{"name": "hook"}"#,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = answer["job_id"].as_str().unwrap().to_owned();

    let mut client = server.client().await;
    let job = wait_state(&mut client, &id, JobState::Succeeded).await;
    assert_eq!(job.output, r#"{"greeting":"hello, hook"}"#);
    assert_eq!(job.name, "hook:deploy");
    assert_eq!(job.submitted_by, "hook:deploy");
    assert_eq!(job.labels["source"], "ci");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_unknown_hooks_bad_specs_and_big_bodies_are_refused() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0k3n").unwrap();
    let server = server_with_hook(&redis, &token).await;
    let addr = server.http_addr.as_str();
    let good = [("authorization", "Bearer t0k3n")];

    let (status, body) = http_request(
        addr,
        "POST",
        "/v1/hooks/deploy",
        &[("authorization", "Bearer nope")],
        b"{}",
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("UNAUTHENTICATED"), "{body}");
    let (status, _) = http_request(addr, "POST", "/v1/hooks/deploy", &[], b"{}").await;
    assert_eq!(status, 401);

    let (status, body) = http_request(addr, "POST", "/v1/hooks/nope", &good, b"{}").await;
    assert_eq!(status, 404);
    assert!(body.contains(r#""no hook named \"nope\"""#), "{body}");

    let (status, body) = http_request(addr, "POST", "/v1/hooks/deploy", &good, b"{}").await;
    assert_eq!(status, 400);
    assert!(
        body.contains("spec must be JSON like"),
        "the plugin's own message: {body}"
    );

    let big = vec![b'x'; 4096];
    let (status, body) = http_request(addr, "POST", "/v1/hooks/deploy", &good, &big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("api.max_hook_body_bytes"), "{body}");

    // A caller without the token is answered before its body is read: a stranger cannot
    // make the node wait for (or buffer) a body it announced.
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(
            b"POST /v1/hooks/deploy HTTP/1.1\r\nhost: jobhost\r\nauthorization: Bearer nope\r\n\
              content-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(20), socket.read(&mut answer)).await;
    let n = read
        .expect("no answer while the announced body was still missing")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    let (status, body) = http_request(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_why_a_node_is_not_ready() {
    let mut redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello"]).await;
    let addr = server.http_addr.as_str();
    let (status, body) = http_request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ready"}"#));

    redis.server.stop().await;
    let (status, body) = http_request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(status, 503, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["code"], "UNAVAILABLE");
    assert!(
        answer["message"].as_str().unwrap().contains("Redis"),
        "{body}"
    );
    let (status, _) = http_request(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(status, 200, "alive all the same");
    redis.restart().await;
    let start = std::time::Instant::now();
    loop {
        let (status, _) = http_request(addr, "GET", "/readyz", &[], b"").await;
        if status == 200 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "never ready again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_no_plugin_is_loaded() {
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    let config = jobhost_config::Config::default();
    let plugins = tempfile::tempdir().unwrap();
    common::install_bytes(plugins.path(), "broken", b"not a component");
    let runtime = common::runtime(common::config(plugins.path())).await;
    // A development gate (plaintext, open), as `serve --dev` without certificates has.
    let gate = std::sync::Arc::new(jobhost::api::auth::Gate::from_config(&config, true).unwrap());
    let services = jobhost::api::Services::new(config, store, runtime, gate, None).unwrap();
    let app = jobhost::api::http::router(services);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (status, body) = http_request(&addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no plugin is loaded (1 rejected"), "{body}");
}

/// The samples of an OpenMetrics exposition: series (name with labels) → value.
pub(crate) fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    assert!(
        text.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with # EOF"
    );
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l}"));
            let value = value.parse().unwrap_or_else(|_| panic!("bad value in {l}"));
            (series.to_owned(), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_jobs_the_queues_and_the_node() {
    use jobhost_proto::scheduler::ScheduleJobRequest;
    let redis = TestRedis::start().await;
    // One slot: a spinning job holds it while a hello job waits in its queue.
    let config = "[worker]\nconcurrency = 1\n[plugins.spin]\ntimeout_ms = 3000\n";
    let server = Server::start_with(&redis.url(), &["hello", "spin"], config).await;
    let addr = server.http_addr.clone();
    let scrape = || {
        let addr = addr.clone();
        async move {
            let (status, body) = http_request(&addr, "GET", "/metrics", &[], b"").await;
            assert_eq!(status, 200, "{body}");
            samples(&body)
        }
    };
    let before = scrape().await;
    assert_eq!(before["jobhost_plugins{status=\"loaded\"}"], 2.0);
    assert_eq!(before["jobhost_nodes_live"], 1.0);
    assert_eq!(before["jobhost_worker_slots"], 1.0);
    assert!(
        !before.contains_key("jobhost_job_attempts_total{type=\"hello\",outcome=\"succeeded\"}")
    );

    let mut client = server.client().await;
    let schedule = |job_type: &str| ScheduleJobRequest {
        job_type: job_type.into(),
        spec: if job_type == "hello" {
            r#"{"name": "m"}"#.into()
        } else {
            String::new()
        },
        max_attempts: 1,
        ..Default::default()
    };
    let spin = client
        .schedule_job(schedule("spin"))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    wait_state(&mut client, &spin.id, JobState::Running).await;
    let hello = client
        .schedule_job(schedule("hello"))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let busy = scrape().await;
    assert_eq!(busy["jobhost_queue_depth{type=\"hello\"}"], 1.0, "{busy:?}");
    assert!(
        busy["jobhost_queue_next_age_seconds{type=\"hello\"}"] > 0.1,
        "{busy:?}"
    );
    assert_eq!(busy["jobhost_jobs{state=\"running\"}"], 1.0);
    assert_eq!(busy["jobhost_worker_busy_slots"], 1.0);
    assert!(busy["jobhost_instances_in_use"] >= 1.0);

    wait_state(&mut client, &hello.id, JobState::Succeeded).await;
    let after = scrape().await;
    assert_eq!(
        after["jobhost_job_attempts_total{type=\"hello\",outcome=\"succeeded\"}"],
        1.0
    );
    assert_eq!(
        after["jobhost_job_duration_seconds_count{type=\"hello\"}"],
        1.0
    );
    assert_eq!(after["jobhost_queue_depth{type=\"hello\"}"], 0.0);
    // The spinning job hit its deadline: a crash, retried... but it had one attempt: DEAD.
    assert_eq!(after["jobhost_dead_jobs"], 1.0, "{after:?}");
    assert!(
        after["jobhost_job_retries_total{type=\"spin\"}"] >= 1.0,
        "{after:?}"
    );
    assert!(
        after["jobhost_redis_request_duration_seconds_count"]
            > before["jobhost_redis_request_duration_seconds_count"]
    );
}

/// A chunked HTTP/1.1 body, de-chunked.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// The `(event, data)` pairs of a Server-Sent Events body.
fn sse_events(body: &str) -> Vec<(String, serde_json::Value)> {
    dechunk(body)
        .split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = Some(e.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).ok();
                }
            }
            Some((event?, data?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_api_mirrors_the_scheduler_with_json_errors() {
    let redis = TestRedis::start().await;
    let config = "[api]\nmax_spec_bytes = 2048\n";
    let server = Server::start_with(&redis.url(), &["hello"], config).await;
    let addr = server.http_addr.as_str();
    let json = [("content-type", "application/json")];
    let post = |path: &'static str, body: String| async move {
        let (status, text) = http_request(addr, "POST", path, &json, body.as_bytes()).await;
        (
            status,
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|_| panic!("{text}")),
        )
    };
    let get = |path: String| async move {
        let (status, text) = http_request(addr, "GET", &path, &[], b"").await;
        (
            status,
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|_| panic!("{text}")),
        )
    };

    // Create, with the spec as a JSON object, and read it back until it succeeds.
    let (status, created) = post(
        "/v1/jobs",
        r#"{"type": "hello", "spec": {"name": "REST"}, "labels": {"team": "web"}}"#.into(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["job"]["id"].as_str().unwrap().to_owned();
    let start = std::time::Instant::now();
    let done = loop {
        let (status, job) = get(format!("/v1/jobs/{id}")).await;
        assert_eq!(status, 200);
        if job["state"] == "SUCCEEDED" {
            break job;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(done["output"], r#"{"greeting":"hello, REST"}"#);
    assert_eq!(done["history"][0]["outcome"], "succeeded");
    assert_eq!(done["type"], "hello");

    // An idempotency key returns the first job with 200.
    let body = r#"{"type": "hello", "spec": "{\"name\": \"once\"}", "idempotency_key": "k1"}"#;
    let (first, a) = post("/v1/jobs", body.into()).await;
    let (again, b) = post("/v1/jobs", body.into()).await;
    assert_eq!((first, again), (201, 200));
    assert_eq!(
        (a["job"]["id"].clone(), b["created"].clone()),
        (b["job"]["id"].clone(), false.into())
    );

    // Filters and pages.
    let (status, page) = get("/v1/jobs?state=succeeded&type=hello&label=team=web".into()).await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    let (_, page1) = get("/v1/jobs?page_size=1".into()).await;
    let token = page1["next_page_token"].as_str().unwrap().to_owned();
    assert_eq!(page1["jobs"].as_array().unwrap().len(), 1);
    assert!(!token.is_empty());
    let (_, page2) = get(format!("/v1/jobs?page_size=1&page_token={token}")).await;
    assert_ne!(page2["jobs"][0]["id"], page1["jobs"][0]["id"]);

    // Errors: the right status and a {code, message} body.
    for (path, body, status, code) in [
        (
            "/v1/jobs",
            r#"{"type": "hello", "spec": "nope"}"#.to_owned(),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "/v1/jobs",
            r#"{"type": "nope", "spec": ""}"#.to_owned(),
            409,
            "FAILED_PRECONDITION",
        ),
        (
            "/v1/jobs",
            r#"{"type": "hello", "bogus": 1}"#.to_owned(),
            422,
            "INVALID_ARGUMENT",
        ),
        ("/v1/jobs", "not json".to_owned(), 400, "INVALID_ARGUMENT"),
        (
            "/v1/jobs",
            format!(r#"{{"type": "hello", "spec": "{}"}}"#, "x".repeat(3000)),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "/v1/jobs",
            format!(r#"{{"type": "hello", "spec": "{}"}}"#, "x".repeat(200_000)),
            413,
            "OUT_OF_RANGE",
        ),
        (
            Box::leak(format!("/v1/jobs/{id}/cancel").into_boxed_str()),
            String::new(),
            409,
            "FAILED_PRECONDITION",
        ),
    ] {
        let (got, answer) = post(path, body).await;
        assert_eq!(
            (got, answer["code"].as_str().unwrap()),
            (status, code),
            "{path}: {answer}"
        );
        assert!(!answer["message"].as_str().unwrap().is_empty());
    }
    let (status, missing) = get("/v1/jobs/nope".into()).await;
    assert_eq!(
        (status, missing["code"].as_str().unwrap()),
        (404, "NOT_FOUND")
    );
    let (status, bad) = get("/v1/jobs?state=ASLEEP".into()).await;
    assert_eq!(
        (status, bad["code"].as_str().unwrap()),
        (400, "INVALID_ARGUMENT")
    );
    let (status, _) = get("/v1/nothing".into()).await;
    assert_eq!(status, 404);

    // Cancel a job that waits for its run-at time.
    let later = store_now_ms() + 60_000;
    let (_, waiting) = post(
        "/v1/jobs",
        format!(r#"{{"type": "hello", "spec": {{"name": "later"}}, "run_at_ms": {later}}}"#),
    )
    .await;
    let wid = waiting["job"]["id"].as_str().unwrap().to_owned();
    let (status, cancelled) = post(
        Box::leak(format!("/v1/jobs/{wid}/cancel").into_boxed_str()),
        String::new(),
    )
    .await;
    assert_eq!(
        (status, cancelled["job"]["state"].as_str().unwrap()),
        (200, "CANCELLED")
    );

    // Plugins, nodes, overview.
    let (_, plugins) = get("/v1/plugins".into()).await;
    assert_eq!(plugins["plugins"][0]["id"], "hello");
    assert_eq!(plugins["plugins"][0]["status"], "loaded");
    let (_, nodes) = get("/v1/nodes".into()).await;
    let node = &nodes["nodes"][0];
    assert_eq!(node["job_types"][0], "hello");
    assert!(
        node["heartbeat_age_ms"].as_u64().unwrap() < 10_000,
        "{node}"
    );
    let (_, overview) = get("/v1/overview".into()).await;
    assert_eq!(overview["queues"][0]["type"], "hello");
    assert_eq!(overview["nodes"], 1);
}

/// Now by this machine's clock, ms.
fn store_now_ms() -> u64 {
    jobhost_store::now_ms()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_logs_stream_history_then_live_lines_as_server_sent_events() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello"]).await;
    let addr = server.http_addr.clone();
    let json = [("content-type", "application/json")];
    // Runs in a second: a reader connected now sees its lines live.
    let at = store_now_ms() + 1_000;
    let body = format!(r#"{{"type": "hello", "spec": {{"name": "sse"}}, "run_at_ms": {at}}}"#);
    let (status, text) = http_request(&addr, "POST", "/v1/jobs", &json, body.as_bytes()).await;
    assert_eq!(status, 201, "{text}");
    let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["job"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/jobs/{id}/logs");
    let live = {
        let (addr, path) = (addr.clone(), path.clone());
        tokio::spawn(async move { http_request(&addr, "GET", &path, &[], b"").await })
    };
    let (status, body) = live.await.unwrap();
    assert_eq!(status, 200);
    let events = sse_events(&body);
    let lines: Vec<&str> = events
        .iter()
        .filter(|(e, _)| e == "line")
        .map(|(_, d)| d["msg"].as_str().unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("greeting sse")),
        "{events:?}"
    );
    assert_eq!(
        events.last().unwrap(),
        &("end".to_owned(), serde_json::json!({"state": "SUCCEEDED"}))
    );

    // A late reader gets the same history, then the end.
    let (_, late) = http_request(&addr, "GET", &path, &[], b"").await;
    let late = sse_events(&late);
    assert_eq!(late, events);
    let (status, _) = http_request(&addr, "GET", "/v1/jobs/nope/logs", &[], b"").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_well_formed_and_the_docs_page_renders_it() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello"]).await;
    let (status, text) = http_request(&server.http_addr, "GET", "/openapi.json", &[], b"").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    // Every reference resolves, and every operation has responses.
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r.to_owned());
                }
                m.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(schemas.contains_key(name), "dangling {r}");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
        }
    }
    let (status, page) = http_request(&server.http_addr, "GET", "/docs", &[], b"").await;
    assert_eq!(status, 200);
    assert!(page.contains("/openapi.json"));
}

/// Reads from `socket` until the server closes it (or a read fails); `None` if it is still
/// open after `wait` (far longer than the timeout under test).
async fn closed_within(socket: &mut tokio::net::TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let read_all = async {
        let mut chunk = [0u8; 4096];
        loop {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(wait, read_all).await.ok()?;
    Some(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() {
    let redis = TestRedis::start().await;
    let server = Server::start_with(
        &redis.url(),
        &["hello"],
        "[api]\nhttp_header_timeout_ms = 300\n",
    )
    .await;
    let patience = Duration::from_secs(20);

    // Headers that never end: the connection is closed, not held open.
    let mut slow = tokio::net::TcpStream::connect(&server.http_addr)
        .await
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: jobhost\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut slow, patience).await;
    let answer = answer.expect("a client that never finished its headers was still connected");
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "no request was answered"
    );

    // A whole request is answered, and the idle keep-alive connection then closed.
    let mut idle = tokio::net::TcpStream::connect(&server.http_addr)
        .await
        .unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: jobhost\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut idle, patience).await;
    let answer = answer.expect("an idle keep-alive connection was still open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_callers_are_rate_limited_by_address() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0k3n").unwrap();
    let config = format!(
        "[api]\nrate_limit_per_sec = 0.01\nrate_limit_burst = 2\n\n\
         [hooks.deploy]\njob_type = \"hello\"\ntoken = \"file:{}\"\n",
        token.display()
    );
    let server = Server::start_with(&redis.url(), &["hello"], &config).await;
    let addr = server.http_addr.as_str();
    let good = [("authorization", "Bearer t0k3n")];
    let spec = br#"{"name": "hook"}"#;

    let (status, body) = http_request(addr, "POST", "/v1/hooks/deploy", &good, spec).await;
    assert_eq!(status, 202, "{body}");
    let wrong = [("authorization", "Bearer guess")];
    let (status, body) = http_request(addr, "POST", "/v1/hooks/deploy", &wrong, spec).await;
    assert_eq!(status, 401, "{body}");
    // The burst of 2 is used up, by good and bad calls alike.
    let (status, body) = http_request(addr, "POST", "/v1/hooks/deploy", &good, spec).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("RESOURCE_EXHAUSTED"), "{body}");
    let (status, _) = http_request(addr, "POST", "/v1/hooks/deploy", &wrong, spec).await;
    assert_eq!(status, 429);
    // Health probes are never limited.
    let (status, _) = http_request(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(status, 200);
}

/// The `jobhost_stream_snapshots_total` counter of `addr`'s node.
async fn snapshots_made(addr: &str) -> f64 {
    let (status, text) = http_request(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200, "{text}");
    samples(&text)["jobhost_stream_snapshots_total"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_dashboards_share_one_snapshot_a_second_and_none_is_made_without_them() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello"]).await;
    let addr = server.http_addr.as_str();
    let before = snapshots_made(addr).await;

    // Four streams, each until it has seen three snapshots.
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(b"GET /v1/stream HTTP/1.1\r\nhost: jobhost\r\n\r\n")
            .await
            .unwrap();
        streams.push(socket);
    }
    for socket in &mut streams {
        let mut seen = String::new();
        let mut chunk = [0u8; 65536];
        while seen.matches("event: snapshot").count() < 3 {
            let n = tokio::time::timeout(Duration::from_secs(20), socket.read(&mut chunk))
                .await
                .expect("a snapshot every second")
                .unwrap();
            assert!(n > 0, "the stream ended: {seen}");
            seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }
    // Made once for all four: about one a second, not one per stream and second.
    let made = snapshots_made(addr).await - before;
    assert!(
        (3.0..=10.0).contains(&made),
        "{made} snapshots for 4 streams of 3 each"
    );

    // Closed streams stop the producer: the count stands still for three intervals.
    drop(streams);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let stopped_at = loop {
        let first = snapshots_made(addr).await;
        tokio::time::sleep(Duration::from_millis(3500)).await;
        if snapshots_made(addr).await == first {
            break first;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "snapshots are still made with no stream open"
        );
    };

    // The next stream starts it again, with a fresh snapshot.
    let (mut again, _) = open_stream(addr, "/v1/stream").await;
    let mut seen = String::new();
    let mut chunk = [0u8; 65536];
    while !seen.contains("event: snapshot") {
        let n = tokio::time::timeout(Duration::from_secs(20), again.read(&mut chunk))
            .await
            .expect("a snapshot on the new stream")
            .unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert!(snapshots_made(addr).await > stopped_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_event_streams_end_when_the_node_stops_and_do_not_hold_it() {
    let redis = TestRedis::start().await;
    let mut server = Server::start_with(
        &redis.url(),
        &["noop"],
        "[worker]\nshutdown_grace_ms = 200\n",
    )
    .await;
    let job = running_sleeper(&mut server.client().await).await;
    let addr = server.http_addr.clone();
    let (mut dashboard, head) = open_stream(&addr, "/v1/stream").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (mut log, head) = open_stream(&addr, &format!("/v1/jobs/{}/logs", job.id)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let status = server.terminate().await.expect("the node exits");
    assert!(status.success(), "{status:?}");
    let patience = Duration::from_secs(20);
    closed_within(&mut dashboard, patience)
        .await
        .expect("the dashboard stream ended");
    let rest = closed_within(&mut log, patience)
        .await
        .expect("the log stream ended");
    // The job did not end: no `end` event, the client resumes elsewhere.
    assert!(
        !String::from_utf8_lossy(&rest).contains("event: end"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    // The streams ended with the node, not by the drain time limit.
    assert!(!server.log().contains("still busy"), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_batch_answers_each_job_with_its_own_status() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello"]).await;
    let addr = server.http_addr.as_str();
    let json_header = [("content-type", "application/json")];
    let body = br#"{"jobs": [
        {"type": "hello", "spec": {"name": "Ada"}, "labels": {"via": "rest"}},
        {"type": "hello", "spec": {}},
        {"type": "teleport"},
        {"type": "hello", "spec": {"name": "Bob"}, "idempotency_key": "k"},
        {"type": "hello", "spec": {"name": "Bob"}, "idempotency_key": "k"}
    ]}"#;
    let (status, text) = http_request(addr, "POST", "/v1/jobs:batch", &json_header, body).await;
    assert_eq!(status, 200, "{text}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    let results = answer["results"].as_array().unwrap();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 400, 409, 201, 200], "{text}");
    assert_eq!(results[1]["error"]["code"], "INVALID_ARGUMENT");
    assert_eq!(results[2]["error"]["code"], "FAILED_PRECONDITION");
    assert_eq!(results[3]["job"]["id"], results[4]["job"]["id"]);
    assert_eq!(results[4]["created"], false);
    let id = results[0]["job"]["id"].as_str().unwrap();
    let mut client = server.client().await;
    let job = wait_state(&mut client, id, JobState::Succeeded).await;
    assert_eq!(job.labels["via"], "rest");

    // A body that is wrong as a whole is refused whole, as JSON.
    // (A body of the wrong shape is 422, as for `POST /v1/jobs`.)
    for (body, want_status, want) in [
        (&br#"{"jobs": []}"#[..], 400, "jobs is empty"),
        (
            &br#"{"jobs": [{"spec": {}}]}"#[..],
            422,
            "jobs[0]: missing field `type`",
        ),
        (&b"not json"[..], 400, "expected"),
    ] {
        let (status, text) = http_request(addr, "POST", "/v1/jobs:batch", &json_header, body).await;
        assert_eq!(status, want_status, "{text}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["code"], "INVALID_ARGUMENT", "{text}");
        assert!(error["message"].as_str().unwrap().contains(want), "{text}");
    }
}

/// Junk gets the documented JSON error with the right status: a bad log cursor is 400 (not
/// an SSE `error` event in a 200), a method a route does not serve is 405, overlong names
/// and upper-case types are 400, and a long id is not echoed whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_gets_json_errors_with_the_right_status() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let addr = server.http_addr.as_str();
    let json = [("content-type", "application/json")];
    let long = "n".repeat(300);
    let long_id = "i".repeat(4096);
    let cases = [
        (
            "GET",
            "/v1/jobs/some-id/logs?after=garbage".to_owned(),
            String::new(),
            400,
            "is not a log cursor",
        ),
        (
            "DELETE",
            "/v1/jobs".to_owned(),
            String::new(),
            405,
            "DELETE is not allowed",
        ),
        (
            "POST",
            "/v1/jobs".to_owned(),
            format!(r#"{{"type": "noop", "spec": "x", "name": "{long}"}}"#),
            400,
            "name is 300 bytes; the limit is 256",
        ),
        (
            "POST",
            "/v1/jobs".to_owned(),
            format!(r#"{{"type": "noop", "spec": "x", "idempotency_key": "{long}"}}"#),
            400,
            "idempotency_key is 300 bytes",
        ),
        (
            "POST",
            "/v1/jobs".to_owned(),
            r#"{"type": "NOOP", "spec": "x"}"#.to_owned(),
            400,
            "must be 1-64 characters of a-z",
        ),
        (
            "GET",
            format!("/v1/jobs/{long_id}"),
            String::new(),
            404,
            "(4096 bytes)",
        ),
    ];
    for (method, path, body, want, says) in cases {
        let (status, text) = http_request(addr, method, &path, &json, body.as_bytes()).await;
        let answer: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
        let message = answer["message"].as_str().unwrap_or_default();
        assert_eq!(status, want, "{method} {path}: {answer}");
        assert!(message.contains(says), "{method} {path}: {answer}");
        assert!(
            message.len() < 200,
            "{method}: the input is not echoed whole: {message}"
        );
    }
}
