//! Inbound webhook triggers: `POST /v1/hooks/{name}` on a real server.

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
