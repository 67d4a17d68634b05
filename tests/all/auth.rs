//! Who may call a real `jobhost serve`: mTLS with roles from the client certificate's OU
//! (admin, viewer), bearer tokens, the per-client rate limit, plaintext only when asked
//! for, and `jobhost certs init` / `jobctl --ca --cert --key`.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::receiver::{HttpResponse, http_exchange};
use common::server::{Server, with_token};
use common::*;
use jobhost::certs::{Authority, Issued};
use jobhost_proto::api::node::v1 as node;
use jobhost_proto::scheduler::job_scheduler_client::JobSchedulerClient;
use jobhost_proto::scheduler::{GetJobRequest, ListJobsRequest, ScheduleJobRequest};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";
const VIEWER_TOKEN: &str = "viewer-token-0123456789abcdef";

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

/// A certificate the server's CA issues now (its key is in the `certs init` folder).
fn server_ca(server: &Server) -> Authority {
    let certs = server.certs.as_deref().unwrap();
    Authority::load(&read(certs, "ca-cert.pem"), &read(certs, "ca-key.pem")).unwrap()
}

fn file_identity(server: &Server, role: &str) -> Issued {
    let certs = server.certs.as_deref().unwrap();
    Issued {
        cert_pem: read(certs, &format!("{role}-client-cert.pem")),
        key_pem: read(certs, &format!("{role}-client-key.pem")),
    }
}

/// A scheduler client over TLS presenting `identity` (or no certificate).
async fn client_as(server: &Server, identity: Option<&Issued>) -> JobSchedulerClient<Channel> {
    JobSchedulerClient::new(channel_as(server, identity).await)
}

async fn channel_as(server: &Server, identity: Option<&Issued>) -> Channel {
    try_channel_as(server, identity).await.unwrap()
}

/// A TLS channel trusting the CA now in the server's certificate folder, or why not.
async fn try_channel_as(
    server: &Server,
    identity: Option<&Issued>,
) -> Result<Channel, tonic::transport::Error> {
    let certs = server.certs.as_deref().unwrap();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(certs, "ca-cert.pem")))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    Channel::from_shared(format!("https://{}", server.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
}

fn schedule(name: &str) -> ScheduleJobRequest {
    ScheduleJobRequest {
        job_type: "hello".into(),
        spec: format!(r#"{{"name": "{name}"}}"#),
        ..Default::default()
    }
}

fn list() -> ListJobsRequest {
    ListJobsRequest {
        page_size: 100,
        ..Default::default()
    }
}

/// One HTTPS request to the server's HTTP API, presenting `identity` (or none).
async fn https(
    server: &Server,
    identity: Option<&Issued>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let certs = server.certs.as_deref().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(read(certs, "ca-cert.pem").as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&server.http_addr)
        .await
        .unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    http_exchange(tls, "localhost", method, path, headers, body).await
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Tokens for the server: the admin one from an environment variable, the viewer one as a
/// SHA-256 in the file.
fn token_config() -> String {
    use sha2::Digest as _;
    let viewer = hex::encode(sha2::Sha256::digest(VIEWER_TOKEN.as_bytes()));
    format!(
        "[auth.tokens.deployer]\nrole = \"admin\"\ntoken = \"env:TEST_ADMIN_TOKEN\"\n\
         [auth.tokens.grafana]\nrole = \"viewer\"\nsha256 = \"{viewer}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_may_do_everything_and_viewer_only_reads() {
    let redis = TestRedis::start().await;
    let server = Server::start_tls(&redis.url(), &["hello"], "", &[]).await;

    let mut admin = client_as(&server, Some(&file_identity(&server, "admin"))).await;
    let id = admin
        .schedule_job(schedule("admin"))
        .await
        .expect("admin schedules")
        .into_inner()
        .job
        .unwrap()
        .id;
    let done = common::server::wait_state(
        &mut admin,
        &id,
        jobhost_proto::scheduler::JobState::Succeeded,
    )
    .await;
    // The audit trail names the certificate.
    assert_eq!(done.submitted_by, "certificate:admin");

    let mut viewer = client_as(&server, Some(&file_identity(&server, "viewer"))).await;
    let jobs = viewer
        .list_jobs(list())
        .await
        .expect("viewer lists")
        .into_inner();
    assert_eq!(jobs.jobs.len(), 1);
    viewer
        .get_job(GetJobRequest { job_id: id.clone() })
        .await
        .expect("viewer reads a job");
    let denied = viewer.schedule_job(schedule("viewer")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert_eq!(
        denied.message(),
        "role viewer is not allowed to perform operation JobScheduler/schedule_job (certificate viewer)"
    );
    let denied = viewer
        .cancel_job(jobhost_proto::scheduler::CancelJobRequest {
            job_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("cancel_job"), "{denied:?}");
    // Health and reflection are reads.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        channel_as(&server, Some(&file_identity(&server, "viewer"))).await,
    );
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("viewer checks health");
    // The refused write changed nothing.
    let jobs = admin.list_jobs(list()).await.unwrap().into_inner();
    assert_eq!(jobs.jobs.len(), 1, "{:?}", jobs.jobs);

    // The same over HTTPS with the same certificates.
    let viewer_id = file_identity(&server, "viewer");
    let answer = https(&server, Some(&viewer_id), "GET", "/v1/jobs", &[], b"").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = br#"{"type": "hello", "spec": "{\"name\": \"rest\"}"}"#;
    let headers = [("content-type", "application/json")];
    let answer = https(
        &server,
        Some(&viewer_id),
        "POST",
        "/v1/jobs",
        &headers,
        body,
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    let error = json(&answer.body);
    assert_eq!(error["code"], "PERMISSION_DENIED");
    assert_eq!(
        error["message"],
        "role viewer is not allowed to perform operation POST /v1/jobs (certificate viewer)"
    );
    let admin_id = file_identity(&server, "admin");
    let answer = https(&server, Some(&admin_id), "POST", "/v1/jobs", &headers, body).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(
        json(&answer.body)["job"]["submitted_by"],
        "certificate:admin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_untrusted_expired_and_roleless_certificates_are_refused() {
    let redis = TestRedis::start().await;
    let server = Server::start_tls(&redis.url(), &["hello"], "", &[]).await;

    let refused = |status: tonic::Status, code: Code, text: &str| {
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(text), "{status:?}");
    };
    let mut anonymous = client_as(&server, None).await;
    refused(
        anonymous.list_jobs(list()).await.unwrap_err(),
        Code::Unauthenticated,
        "failed to extract client role: no client certificate or bearer token",
    );

    let other_ca = Authority::new("some other CA").unwrap();
    let stranger = other_ca.issue_client("mallory", "admin").unwrap();
    let mut stranger = client_as(&server, Some(&stranger)).await;
    refused(
        stranger.list_jobs(list()).await.unwrap_err(),
        Code::Unauthenticated,
        "certificate verify failed: certificate signed by unknown authority",
    );

    let day = Duration::from_secs(24 * 3600);
    let now = SystemTime::now();
    let expired = server_ca(&server)
        .issue_client_valid("old-admin", "admin", now - 30 * day, now - day)
        .unwrap();
    let mut expired_client = client_as(&server, Some(&expired)).await;
    refused(
        expired_client
            .schedule_job(schedule("late"))
            .await
            .unwrap_err(),
        Code::Unauthenticated,
        "certificate verify failed: certificate has expired",
    );

    let roleless = server_ca(&server).issue_client("ops", "operator").unwrap();
    let mut roleless = client_as(&server, Some(&roleless)).await;
    refused(
        roleless.list_jobs(list()).await.unwrap_err(),
        Code::PermissionDenied,
        "certificate \"ops\" has no role (its subject OU must be admin or viewer)",
    );

    // HTTP says the same, as 401 with a Bearer challenge.
    let answer = https(&server, None, "GET", "/v1/jobs", &[], b"").await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(json(&answer.body)["code"], "UNAUTHENTICATED");
    assert!(
        answer
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    let answer = https(&server, Some(&expired), "GET", "/v1/jobs", &[], b"").await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(
        answer.body.contains("certificate has expired"),
        "{}",
        answer.body
    );
    // Liveness and the page shell stay open for probes and browsers.
    assert_eq!(
        https(&server, None, "GET", "/healthz", &[], b"")
            .await
            .status,
        200
    );
    assert_eq!(https(&server, None, "GET", "/", &[], b"").await.status, 200);

    // Nothing any of them tried was scheduled.
    let mut admin = server.client().await;
    assert!(
        admin
            .list_jobs(list())
            .await
            .unwrap()
            .into_inner()
            .jobs
            .is_empty()
    );
    // A plaintext client gets no answer at all from a TLS port.
    let plain = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(plain) = plain {
        assert!(
            JobSchedulerClient::new(plain)
                .list_jobs(list())
                .await
                .is_err()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_carry_roles_on_http_and_grpc_including_the_job_distributor() {
    let redis = TestRedis::start().await;
    let server = Server::start_tls(
        &redis.url(),
        &["hello"],
        &format!("[jd]\nauto_approve = false\n{}", token_config()),
        &[("TEST_ADMIN_TOKEN", ADMIN_TOKEN)],
    )
    .await;
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let viewer = format!("Bearer {VIEWER_TOKEN}");
    let body = br#"{"type": "hello", "spec": "{\"name\": \"token\"}"}"#;
    let json_type = ("content-type", "application/json");

    // HTTP over TLS, no client certificate: the token decides.
    let answer = https(
        &server,
        None,
        "GET",
        "/v1/jobs",
        &[("authorization", &viewer)],
        b"",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = https(
        &server,
        None,
        "POST",
        "/v1/jobs",
        &[("authorization", &viewer), json_type],
        body,
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(
        answer.body.contains("role viewer is not allowed"),
        "{}",
        answer.body
    );
    let answer = https(
        &server,
        None,
        "POST",
        "/v1/jobs",
        &[("authorization", &admin), json_type],
        body,
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    // The audit trail names the token, on the job and on its cancellation.
    assert_eq!(json(&answer.body)["job"]["submitted_by"], "token:deployer");
    let mut later = schedule("later");
    later.run_at = Some(prost_types::Timestamp {
        seconds: (jobhost_store::now_ms() / 1000 + 3600) as i64,
        nanos: 0,
    });
    let mut scheduler = JobSchedulerClient::new(channel_as(&server, None).await);
    let later = scheduler
        .schedule_job(with_token(later, ADMIN_TOKEN))
        .await
        .expect("admin token schedules")
        .into_inner()
        .job
        .unwrap();
    assert_eq!(later.submitted_by, "token:deployer");
    let cancel = format!("/v1/jobs/{}/cancel", later.id);
    let answer = https(
        &server,
        None,
        "POST",
        &cancel,
        &[("authorization", &admin)],
        b"",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let cancelled = json(&answer.body);
    assert_eq!(cancelled["job"]["reason"], "cancelled through the HTTP API");
    assert_eq!(cancelled["job"]["cancelled_by"], "token:deployer");
    let wrong = https(
        &server,
        None,
        "GET",
        "/v1/jobs",
        &[("authorization", "Bearer not-a-configured-token")],
        b"",
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(json(&wrong.body)["message"], "invalid bearer token");
    let metrics = https(
        &server,
        None,
        "GET",
        "/metrics",
        &[("authorization", &viewer)],
        b"",
    )
    .await;
    assert_eq!(metrics.status, 200, "{}", metrics.body);

    // gRPC metadata, scheduler and Job Distributor alike, without a client certificate.
    let channel = channel_as(&server, None).await;
    let mut scheduler = JobSchedulerClient::new(channel.clone());
    let jobs = scheduler
        .list_jobs(with_token(list(), VIEWER_TOKEN))
        .await
        .expect("viewer token lists")
        .into_inner();
    assert_eq!(jobs.jobs.len(), 2);
    let mut nodes = node::node_service_client::NodeServiceClient::new(channel);
    let register = || node::RegisterNodeRequest {
        name: "node-a".into(),
        public_key: "ab01".into(),
        labels: vec![],
    };
    let denied = nodes
        .register_node(with_token(register(), VIEWER_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().contains("register_node (token grafana)"),
        "{denied:?}"
    );
    nodes
        .register_node(with_token(register(), ADMIN_TOKEN))
        .await
        .expect("admin token registers a node");
    let listed = nodes
        .list_nodes(with_token(node::ListNodesRequest::default(), VIEWER_TOKEN))
        .await
        .expect("viewer token lists nodes")
        .into_inner();
    assert_eq!(listed.nodes.len(), 1);
    let unauthenticated = nodes
        .list_nodes(node::ListNodesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_per_client_and_answers_resource_exhausted_and_429() {
    let redis = TestRedis::start().await;
    // Three requests at once, then one every 20 s: the fourth in a row is refused.
    let server = Server::start_tls(
        &redis.url(),
        &["hello"],
        "[api]\nrate_limit_per_sec = 0.05\nrate_limit_burst = 3\n",
        &[],
    )
    .await;
    let admin_id = file_identity(&server, "admin");
    let mut admin = client_as(&server, Some(&admin_id)).await;
    for _ in 0..3 {
        admin.list_jobs(list()).await.expect("within the burst");
    }
    let limited = admin.list_jobs(list()).await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    assert!(
        limited.message().contains("rate limit exceeded for admin")
            && limited.message().contains("api.rate_limit_per_sec"),
        "{limited:?}"
    );
    // The same client over HTTP shares the bucket.
    let answer = https(&server, Some(&admin_id), "GET", "/v1/jobs", &[], b"").await;
    assert_eq!(answer.status, 429, "{}", answer.body);
    assert_eq!(json(&answer.body)["code"], "RESOURCE_EXHAUSTED");
    let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    // Another client has its own allowance.
    let mut viewer = client_as(&server, Some(&file_identity(&server, "viewer"))).await;
    viewer
        .list_jobs(list())
        .await
        .expect("another client is not limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobctl_speaks_mtls_and_says_what_a_viewer_may_not_do() {
    let redis = TestRedis::start().await;
    let server = Server::start_tls(&redis.url(), &["hello"], "", &[]).await;
    let certs = server.certs.clone().unwrap();
    let jobctl = |role: &str, args: &[&str]| {
        Command::new(common::jobctl_bin())
            .args(["--server", &server.addr])
            .arg("--ca")
            .arg(certs.join("ca-cert.pem"))
            .arg("--cert")
            .arg(certs.join(format!("{role}-client-cert.pem")))
            .arg("--key")
            .arg(certs.join(format!("{role}-client-key.pem")))
            .args(args)
            .env_remove("JOBHOST_SERVER")
            .output()
            .unwrap()
    };
    let out = jobctl(
        "admin",
        &[
            "schedule",
            "--type",
            "hello",
            "--spec",
            r#"{"name": "cli"}"#,
            "--wait",
        ],
    );
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = jobctl("viewer", &["list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("hello"), "{}", text(&out.stdout));
    let out = jobctl(
        "viewer",
        &["schedule", "--type", "hello", "--spec", r#"{"name": "no"}"#],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("role viewer is not allowed to perform operation JobScheduler/schedule_job"),
        "{}",
        text(&out.stderr)
    );
    // A token is never sent in plaintext across a network.
    let out = Command::new(common::jobctl_bin())
        .args([
            "--server",
            "10.255.255.1:50051",
            "--token",
            ADMIN_TOKEN,
            "list",
        ])
        .env_remove("JOBHOST_SERVER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("refusing to send --token in plaintext"),
        "{}",
        text(&out.stderr)
    );
    // Without a certificate: the server says why.
    let out = Command::new(common::jobctl_bin())
        .args(["--server", &server.addr, "list"])
        .arg("--ca")
        .arg(certs.join("ca-cert.pem"))
        .env_remove("JOBHOST_SERVER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("failed to extract client role"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn certs_init_writes_what_serve_needs_and_plaintext_must_be_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["certs", "init"])
        .arg(&certs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("client_ca_file") && stdout.contains("jobctl"),
        "{stdout}"
    );
    for file in [
        "ca-cert.pem",
        "server-cert.pem",
        "server-key.pem",
        "admin-client-key.pem",
    ] {
        assert!(certs.join(file).is_file(), "{file}");
    }
    let again = Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["certs", "init"])
        .arg(&certs)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // TLS is the default: serve without certificates (and without --dev) refuses to start,
    // and says how to get some.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["serve", "--plugins-dir"])
        .arg(&plugins)
        .env_remove("JOBHOST_CONFIG")
        .env_remove("JOBHOST_TLS_ENABLED")
        .env_remove("JOBHOST_TLS_CERT_FILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tls.cert_file is not set") && stderr.contains("jobhost certs init"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_node_warns_at_start() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello"]).await;
    let log = server.log();
    assert!(
        log.contains("the gRPC and HTTP APIs are PLAINTEXT (tls.enabled = false)"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_private_keys_never_reach_logs_or_answers() {
    let redis = TestRedis::start().await;
    let wrong = "Wr0ng-Token-Value-Guessed-123456";
    let server = Server::start_tls(
        &redis.url(),
        &["hello"],
        &token_config(),
        &[
            ("TEST_ADMIN_TOKEN", ADMIN_TOKEN),
            ("JOBHOST_LOG", "debug"),
            ("JOBHOST_LOG_FORMAT", "json"),
        ],
    )
    .await;
    let mut answers = Vec::new();
    for token in [ADMIN_TOKEN, VIEWER_TOKEN, wrong] {
        let bearer = format!("Bearer {token}");
        for (method, path) in [
            ("GET", "/v1/jobs"),
            ("POST", "/v1/jobs"),
            ("GET", "/metrics"),
        ] {
            let answer = https(
                &server,
                None,
                method,
                path,
                &[("authorization", &bearer)],
                b"{}",
            )
            .await;
            answers.push(format!("{} {}", answer.head, answer.body));
        }
        let channel = channel_as(&server, None).await;
        let mut client = JobSchedulerClient::new(channel);
        match client.schedule_job(with_token(schedule("t"), token)).await {
            Ok(ok) => answers.push(format!("{:?}", ok.into_inner())),
            Err(status) => answers.push(format!("{status:?}")),
        }
    }
    let certs = server.certs.clone().unwrap();
    let key_body = |file: &str| {
        read(&certs, file)
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    let everything = format!("{}\n{}", server.log(), answers.join("\n"));
    assert!(
        everything.contains("invalid bearer token"),
        "the wrong token was refused"
    );
    for secret in [ADMIN_TOKEN, VIEWER_TOKEN, wrong] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    for key in ["server-key.pem", "ca-key.pem", "admin-client-key.pem"] {
        let body = key_body(key);
        assert!(body.len() > 40);
        assert!(!everything.contains(&body[..40]), "{key} leaked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_without_a_restart() {
    let redis = TestRedis::start().await;
    let server = Server::start_tls(
        &redis.url(),
        &["hello"],
        "",
        &[("JOBHOST_TLS_RELOAD_INTERVAL_MS", "100")],
    )
    .await;
    let old_admin = file_identity(&server, "admin");
    // A connection opened now, and kept.
    let mut kept = client_as(&server, Some(&old_admin)).await;
    kept.list_jobs(list())
        .await
        .expect("the first certificates work");

    // A new CA, server certificate and clients, written over the files the node reads.
    let certs = server.certs.clone().unwrap();
    jobhost::certs::init_dir(&certs, &[], true).unwrap();
    let new_admin = file_identity(&server, "admin");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Trusting only the new CA: works once the node serves the new certificate.
        let answer = match try_channel_as(&server, Some(&new_admin)).await {
            Ok(channel) => JobSchedulerClient::new(channel)
                .list_jobs(list())
                .await
                .ok(),
            Err(_) => None,
        };
        if answer.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificates were never used; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old CA's clients are strangers now, on the connection they kept too.
    let refused = kept.list_jobs(list()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = client_as(&server, Some(&old_admin))
        .await
        .list_jobs(list())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().contains("signed by unknown authority"),
        "{refused:?}"
    );

    // A broken file is refused, and the node keeps serving the certificates in use.
    std::fs::write(certs.join("server-cert.pem"), "not a certificate").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !server
        .log()
        .contains("cannot be used, keeping the ones in use")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the broken file was not noticed; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client_as(&server, Some(&new_admin))
        .await
        .list_jobs(list())
        .await
        .expect("the certificates in use go on working");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reads_token_files_again() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ci-token");
    let first = "first-token-0123456789";
    let second = "second-token-0123456789";
    std::fs::write(&file, format!("{first}\n")).unwrap();
    let config = format!(
        "[auth.tokens.ci]\nrole = \"admin\"\ntoken = \"file:{}\"\n",
        file.display()
    );
    let server = Server::start_with_token(&redis.url(), &["hello"], &config, &[], first).await;
    let addr = server.http_addr.clone();
    let status_with = |token: &str| {
        let (addr, header) = (addr.clone(), format!("Bearer {token}"));
        async move {
            let auth = [("authorization", header.as_str())];
            common::receiver::http_request(&addr, "GET", "/v1/jobs", &auth, b"")
                .await
                .0
        }
    };
    assert_eq!(status_with(first).await, 200);

    // Rotated in place, then SIGHUP: the new token works and the old one no longer does.
    std::fs::write(&file, format!("{second}\n")).unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while status_with(second).await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the rotated token was never accepted; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status_with(first).await, 401);

    // A file that holds no usable token is refused, and the one in use is kept.
    std::fs::write(&file, "short\n").unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !server.log().contains("auth tokens cannot be read") {
        assert!(
            std::time::Instant::now() < deadline,
            "the bad token file was not reported; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !server.log().contains(second),
        "no token value in the log: {}",
        server.log()
    );
    assert_eq!(status_with(second).await, 200);
}
