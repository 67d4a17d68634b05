//! No secret leaks: a full run of a real server with every kind of configured secret (a
//! webhook signing secret, a hook token, a Chainlink node's login from the JD nodes file),
//! then every log line (JSON, debug level), API answer, job log and metric is searched for
//! the secret values.

use crate::common;

use common::TestRedis;
use common::chainlink::ChainlinkNode;
use common::receiver::{Receiver, http_request};
use common::server::{Server, wait_state};
use jobhost_proto::api::job::v1 as jd_job;
use jobhost_proto::api::node::v1 as jd_node;
use jobhost_proto::scheduler::{JobState, ListJobsRequest, ScheduleJobRequest};

const SIGNING: &str = "S1gning-Secret-Value-7c1";
const HOOK_TOKEN: &str = "H00k-Token-Value-2b9";
const NODE_EMAIL: &str = "n0de-login@secret.example";
const NODE_PASSWORD: &str = "N0de-Password-Value-5d3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_api_answers_job_logs_or_metrics() {
    let redis = TestRedis::start().await;
    let receiver = Receiver::start(vec![]).await;
    let chainlink = ChainlinkNode::start(NODE_EMAIL, NODE_PASSWORD).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("hook.token");
    std::fs::write(&token_file, HOOK_TOKEN).unwrap();
    let nodes_file = dir.path().join("nodes.yaml");
    std::fs::write(
        &nodes_file,
        format!(
            "nodes:\n  - name: node-1\n    chainlink_url: \"{}\"\n    chainlink_email: \"{NODE_EMAIL}\"\n    chainlink_password: \"{NODE_PASSWORD}\"\n",
            chainlink.url()
        ),
    )
    .unwrap();
    let config = format!(
        r#"[jd]
nodes_file = "{nodes}"
[plugins.webhook]
grants = ["http"]
allowed_hosts = ["http://127.0.0.1:{port}"]
secrets = {{ signing = "env:TEST_SIGNING_SECRET" }}
[plugins.ccip-submit]
grants = ["http"]
allowed_hosts = ["{cl}"]
[hooks.deploy]
job_type = "hello"
token = "file:{token}"
"#,
        nodes = nodes_file.display(),
        port = receiver.port,
        cl = chainlink.url(),
        token = token_file.display(),
    );
    let env = [
        ("JOBHOST_LOG", "debug"),
        ("JOBHOST_LOG_FORMAT", "json"),
        ("TEST_SIGNING_SECRET", SIGNING),
    ];
    let server = Server::start_with_env(
        &redis.url(),
        &["hello", "webhook", "ccip-submit"],
        &config,
        &env,
    )
    .await;
    let http = server.http_addr.clone();
    let mut seen = Vec::<String>::new();

    // A signed webhook delivery.
    let mut client = server.client().await;
    let spec = format!(
        r#"{{"url": "{}", "body": "{{}}", "signing": {{"secret": "signing"}}}}"#,
        receiver.url("/")
    );
    let webhook = client
        .schedule_job(ScheduleJobRequest {
            job_type: "webhook".into(),
            spec,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    let done = wait_state(&mut client, &webhook.id, JobState::Succeeded).await;
    seen.push(format!("{done:?}"));
    assert!(
        receiver.received()[0]
            .header("x-jobhost-signature")
            .is_some()
    );

    // The hook, with the right token and with a wrong one.
    let (status, body) = http_request(
        &http,
        "POST",
        "/v1/hooks/deploy",
        &[("authorization", &format!("Bearer {HOOK_TOKEN}"))],
        br#"{"name": "hook"}"#,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    seen.push(body);
    let (status, body) = http_request(
        &http,
        "POST",
        "/v1/hooks/deploy",
        &[("authorization", &format!("Bearer {HOOK_TOKEN}x"))],
        b"{}",
    )
    .await;
    assert_eq!(status, 401);
    seen.push(body);

    // A Job Distributor proposal delivered with the node's login.
    let channel = server.channel().await;
    let mut nodes = jd_node::node_service_client::NodeServiceClient::new(channel.clone());
    let mut jobs = jd_job::job_service_client::JobServiceClient::new(channel);
    let node = nodes
        .register_node(jd_node::RegisterNodeRequest {
            name: "node-1".into(),
            public_key: "ab01".into(),
            labels: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    let proposal = jobs
        .propose_job(jd_job::ProposeJobRequest {
            node_id: node.id.clone(),
            spec: "type = \"offchainreporting2\"\nschemaVersion = 1\nexternalJobID = \"0b0b0b0b-1111-4111-8111-111111111111\"\n".into(),
            labels: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .proposal
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let p = jobs
            .get_proposal(jd_job::GetProposalRequest {
                id: proposal.id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .proposal
            .unwrap();
        seen.push(format!("{p:?}"));
        if p.delivery_status() == jd_job::ProposalDeliveryStatus::Delivered {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{p:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A wrong password too: its failure is reported without the credentials.
    std::fs::write(
        &nodes_file,
        format!(
            "nodes:\n  - name: node-1\n    chainlink_url: \"{}\"\n    chainlink_email: \"{NODE_EMAIL}\"\n    chainlink_password: \"{NODE_PASSWORD}-wrong\"\n",
            chainlink.url()
        ),
    )
    .unwrap();
    let refused = jobs
        .propose_job(jd_job::ProposeJobRequest {
            node_id: node.id.clone(),
            spec: "type = \"offchainreporting2\"\nschemaVersion = 1\nexternalJobID = \"0b0b0b0b-2222-4222-8222-222222222222\"\n".into(),
            labels: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .proposal
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let (_, body) = http_request(
            &http,
            "GET",
            &format!("/v1/jd/proposals/{}", refused.id),
            &[],
            b"",
        )
        .await;
        let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
        seen.push(body.clone());
        if shown["delivery_status"] == "FAILED" {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Everything the APIs answer, every job's log, the metrics.
    let all = client
        .list_jobs(ListJobsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .jobs;
    assert!(all.len() >= 4, "{all:?}");
    seen.push(format!("{all:?}"));
    for job in &all {
        let (_, logs) = http_request(
            &http,
            "GET",
            &format!("/v1/jobs/{}/logs?follow=false", job.id),
            &[],
            b"",
        )
        .await;
        seen.push(logs);
    }
    for path in [
        "/v1/jobs?page_size=1000",
        "/v1/plugins",
        "/v1/nodes",
        "/v1/overview",
        "/metrics",
        "/openapi.json",
    ] {
        let (status, body) = http_request(&http, "GET", path, &[], b"").await;
        assert_eq!(status, 200, "{path}");
        seen.push(body);
    }
    let log = server.log();
    assert!(
        log.lines().count() > 10,
        "the server logged at debug: {log}"
    );
    seen.push(log);

    for text in &seen {
        for secret in [SIGNING, HOOK_TOKEN, NODE_EMAIL, NODE_PASSWORD] {
            if let Some(at) = text.find(secret) {
                let from = at.saturating_sub(200);
                panic!(
                    "secret {secret:?} leaked: ...{}...",
                    &text[from..(at + secret.len() + 100).min(text.len())]
                );
            }
        }
    }
}
