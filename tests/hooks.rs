//! The HTTP API of a real server: inbound webhook triggers (`POST /v1/hooks/{name}`),
//! `/healthz`, `/readyz` and `/metrics`.

mod common;

use common::receiver::http_request;
use common::server::{Server, wait_state};
use common::*;
use jobhost::api::proto::JobState;

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
    let config = jobhost::config::Config::default();
    let plugins = tempfile::tempdir().unwrap();
    common::install_bytes(plugins.path(), "broken", b"not a component");
    let runtime = common::runtime(common::config(plugins.path())).await;
    let app = jobhost::api::http::router(store, runtime, &config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (status, body) = http_request(&addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no plugin is loaded (1 rejected"), "{body}");
}

/// The samples of an OpenMetrics exposition: series (name with labels) → value.
fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
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
    use jobhost::api::proto::ScheduleJobRequest;
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
