//! The Chainlink Job Distributor API of a real `jobhost serve`, through the generated
//! clients of `proto/v1/` (the wire the CCIP deployer speaks): nodes, selectors, paging,
//! proposals and revisions, revoke, delete, update, and the CSA key.

use crate::common;

use common::TestRedis;
use common::server::Server;
use jobhost_proto::api::csa::v1 as csa;
use jobhost_proto::api::job::v1 as job;
use jobhost_proto::api::label::{Label, Selector, SelectorOp};
use jobhost_proto::api::node::v1 as node;
use tonic::Code;
use tonic::transport::Channel;

type Nodes = node::node_service_client::NodeServiceClient<Channel>;
type Jobs = job::job_service_client::JobServiceClient<Channel>;

fn label(key: &str, value: &str) -> Label {
    Label {
        key: key.into(),
        value: Some(value.into()),
    }
}

fn spec(uuid: &str, extra: &str) -> String {
    format!("type = \"offchainreporting2\"\nschemaVersion = 1\nexternalJobID = \"{uuid}\"\n{extra}")
}

async fn register(nodes: &mut Nodes, name: &str, key: &str, labels: Vec<Label>) -> node::Node {
    nodes
        .register_node(node::RegisterNodeRequest {
            name: name.into(),
            public_key: key.into(),
            labels,
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap()
}

async fn list(
    nodes: &mut Nodes,
    selectors: Vec<Selector>,
    size: i32,
    page: i32,
) -> (Vec<String>, i32) {
    let answer = nodes
        .list_nodes(node::ListNodesRequest {
            filter: Some(node::list_nodes_request::Filter {
                selectors,
                ..Default::default()
            }),
            page_size: size,
            page,
        })
        .await
        .unwrap()
        .into_inner();
    (
        answer.nodes.into_iter().map(|n| n.name).collect(),
        answer.total_count,
    )
}

fn selector(key: &str, op: SelectorOp, value: Option<&str>) -> Selector {
    Selector {
        key: key.into(),
        op: op.into(),
        value: value.map(str::to_owned),
    }
}

#[tokio::test]
async fn nodes_register_once_and_are_found_by_selectors_and_pages() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let mut nodes = Nodes::new(server.channel().await);

    let empty = list(&mut nodes, vec![], 0, 0).await;
    assert_eq!(empty, (vec![], 0), "the JD starts empty");
    let a = register(
        &mut nodes,
        "node-a",
        "aa01",
        vec![label("env", "prod"), label("role", "ccip")],
    )
    .await;
    let b = register(&mut nodes, "node-b", "bb02", vec![label("env", "dev")]).await;
    assert!(!a.id.is_empty() && a.id != b.id);
    assert!(a.is_enabled, "new nodes are enabled");

    let duplicate = nodes
        .register_node(node::RegisterNodeRequest {
            name: "again".into(),
            public_key: "aa01".into(),
            labels: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists, "{duplicate:?}");

    let by_key = nodes
        .get_node(node::GetNodeRequest {
            id: String::new(),
            public_key: Some("bb02".into()),
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert_eq!(by_key.id, b.id);
    let by_id = nodes
        .get_node(node::GetNodeRequest {
            id: a.id.clone(),
            public_key: None,
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert_eq!(by_id.name, "node-a");
    let missing = nodes
        .get_node(node::GetNodeRequest {
            id: "nope".into(),
            public_key: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let eq = list(
        &mut nodes,
        vec![selector("env", SelectorOp::Eq, Some("prod"))],
        0,
        0,
    )
    .await;
    assert_eq!(eq, (vec!["node-a".to_owned()], 1));
    let within = list(
        &mut nodes,
        vec![selector("env", SelectorOp::In, Some("dev, prod"))],
        0,
        0,
    )
    .await;
    assert_eq!(within.1, 2, "IN takes a comma-separated list: {within:?}");
    let exists = list(
        &mut nodes,
        vec![selector("role", SelectorOp::Exist, None)],
        0,
        0,
    )
    .await;
    assert_eq!(exists, (vec!["node-a".to_owned()], 1));
    let both = list(
        &mut nodes,
        vec![
            selector("env", SelectorOp::In, Some("dev,prod")),
            selector("role", SelectorOp::NotExist, None),
        ],
        0,
        0,
    )
    .await;
    assert_eq!(
        both,
        (vec!["node-b".to_owned()], 1),
        "all selectors must match"
    );
    let page2 = list(&mut nodes, vec![], 1, 2).await;
    assert_eq!(
        page2,
        (vec!["node-b".to_owned()], 2),
        "page is 1-based; total counts all"
    );

    let bad = nodes
        .register_node(node::RegisterNodeRequest {
            name: "bad".into(),
            public_key: "cc03".into(),
            labels: vec![label("-bad", "x")],
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");

    let disabled = nodes
        .disable_node(node::DisableNodeRequest { id: b.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert!(!disabled.is_enabled);
    let enabled_only = nodes
        .list_nodes(node::ListNodesRequest {
            filter: Some(node::list_nodes_request::Filter {
                enabled: node::EnableState::Enabled.into(),
                ..Default::default()
            }),
            page_size: 0,
            page: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enabled_only.total_count, 1);

    let renamed = nodes
        .update_node(node::UpdateNodeRequest {
            id: a.id.clone(),
            name: "node-a2".into(),
            public_key: String::new(),
            labels: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap();
    assert_eq!(renamed.name, "node-a2");
    assert_eq!(renamed.public_key, "aa01", "empty fields are left alone");
    assert_eq!(
        renamed.labels.len(),
        2,
        "labels are left alone when none are given"
    );
}

#[tokio::test]
async fn proposals_revise_jobs_and_are_revoked_deleted_and_updated() {
    let redis = TestRedis::start().await;
    // Without auto-approve, proposals wait as PENDING (and nothing is delivered).
    let server = Server::start_with(&redis.url(), &["noop"], "[jd]\nauto_approve = false\n").await;
    let mut nodes = Nodes::new(server.channel().await);
    let mut jobs = Jobs::new(server.channel().await);
    let a = register(&mut nodes, "node-a", "aa01", vec![]).await;
    let b = register(&mut nodes, "node-b", "bb02", vec![]).await;

    let first_spec = spec("7c9a2b1e-0000-4000-8000-000000000001", "# first\n");
    let first = jobs
        .propose_job(job::ProposeJobRequest {
            node_id: a.id.clone(),
            spec: first_spec.clone(),
            labels: vec![label("product", "ccip")],
        })
        .await
        .unwrap()
        .into_inner()
        .proposal
        .unwrap();
    assert_eq!(first.spec, first_spec, "the spec comes back byte for byte");
    assert_eq!(first.revision, 1);
    assert_eq!(first.status(), job::ProposalStatus::Pending);
    let second_spec = spec("7c9a2b1e-0000-4000-8000-000000000001", "# second\n");
    let second = propose(&mut jobs, &a.id, second_spec).await;
    assert_eq!(
        second.job_id, first.job_id,
        "same uuid, same node: same job"
    );
    assert_eq!(second.revision, 2);

    let the_job = jobs
        .get_job(job::GetJobRequest {
            id_oneof: Some(job::get_job_request::IdOneof::Id(first.job_id.clone())),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(the_job.uuid, "7c9a2b1e-0000-4000-8000-000000000001");
    assert_eq!(
        the_job.proposal_ids,
        vec![first.id.clone(), second.id.clone()]
    );
    assert_eq!(the_job.labels, vec![label("product", "ccip")]);

    for (bad, code) in [
        ("type = \"x\"\n".to_owned(), Code::InvalidArgument),
        ("not toml = = =".to_owned(), Code::InvalidArgument),
    ] {
        let err = jobs
            .propose_job(job::ProposeJobRequest {
                node_id: a.id.clone(),
                spec: bad,
                labels: vec![],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
    }
    let unknown = jobs
        .propose_job(job::ProposeJobRequest {
            node_id: "no-such-node".into(),
            spec: first_spec.clone(),
            labels: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    nodes
        .disable_node(node::DisableNodeRequest { id: b.id.clone() })
        .await
        .unwrap();
    let disabled = jobs
        .propose_job(job::ProposeJobRequest {
            node_id: b.id.clone(),
            spec: first_spec.clone(),
            labels: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(disabled.code(), Code::FailedPrecondition);

    let batch = jobs
        .batch_propose_job(job::BatchProposeJobRequest {
            node_ids: vec![a.id.clone(), "ghost".into()],
            spec: spec("7c9a2b1e-0000-4000-8000-000000000002", ""),
            labels: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(batch.success_responses.contains_key(&a.id), "{batch:?}");
    assert!(
        batch.failed_responses["ghost"]
            .error_message
            .contains("ghost"),
        "{batch:?}"
    );

    let revoked = jobs
        .revoke_job(job::RevokeJobRequest {
            id_oneof: Some(job::revoke_job_request::IdOneof::Id(first.job_id.clone())),
        })
        .await
        .unwrap()
        .into_inner()
        .proposal
        .unwrap();
    assert_eq!(revoked.id, second.id, "the latest proposal is revoked");
    assert_eq!(revoked.status(), job::ProposalStatus::Revoked);
    let again = jobs
        .revoke_job(job::RevokeJobRequest {
            id_oneof: Some(job::revoke_job_request::IdOneof::Id(first.job_id.clone())),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");

    let listed = jobs
        .list_proposals(job::ListProposalsRequest {
            filter: Some(job::list_proposals_request::Filter {
                ids: vec![],
                job_ids: vec![first.job_id.clone()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .proposals;
    assert_eq!(listed.len(), 2);

    let updated = jobs
        .update_job(job::UpdateJobRequest {
            id_oneof: Some(job::update_job_request::IdOneof::Id(first.job_id.clone())),
            labels: vec![label("product", "data-feeds")],
            rollback_policy_id: Some(7),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(updated.labels, vec![label("product", "data-feeds")]);
    assert_eq!(updated.rollback_policy_id, Some(7));

    let deleted = jobs
        .delete_job(job::DeleteJobRequest {
            id_oneof: Some(job::delete_job_request::IdOneof::Id(first.job_id.clone())),
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert!(deleted.deleted_at.is_some());
    let count = |include_deleted| {
        let mut jobs = jobs.clone();
        async move {
            jobs.list_jobs(job::ListJobsRequest {
                filter: Some(job::list_jobs_request::Filter {
                    include_deleted,
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .jobs
            .len()
        }
    };
    assert_eq!(count(false).await, 1, "deleted jobs are hidden");
    assert_eq!(count(true).await, 2, "unless asked for");
}

#[tokio::test]
async fn the_csa_key_is_created_once_and_kept_across_restarts() {
    let redis = TestRedis::start().await;
    let first = {
        let server = Server::start(&redis.url(), &["noop"]).await;
        let mut csa = csa::csa_service_client::CsaServiceClient::new(server.channel().await);
        let listed = csa
            .list_keypairs(csa::ListKeypairsRequest {})
            .await
            .unwrap()
            .into_inner()
            .keypairs;
        assert_eq!(listed.len(), 1, "never empty");
        listed[0].public_key.clone()
    };
    assert_eq!(first.len(), 64, "ed25519 public key in hex: {first}");
    assert!(
        first
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let server = Server::start(&redis.url(), &["noop"]).await;
    let mut csa = csa::csa_service_client::CsaServiceClient::new(server.channel().await);
    let again = csa
        .get_keypair(csa::GetKeypairRequest {})
        .await
        .unwrap()
        .into_inner()
        .keypair
        .unwrap();
    assert_eq!(again.public_key, first, "the same key after a restart");
}

/// Proposes `spec` (no labels) to node `node_id`; the proposal.
async fn propose(jobs: &mut Jobs, node_id: &str, spec: impl Into<String>) -> job::Proposal {
    jobs.propose_job(job::ProposeJobRequest {
        node_id: node_id.into(),
        spec: spec.into(),
        labels: vec![],
    })
    .await
    .unwrap()
    .into_inner()
    .proposal
    .unwrap()
}

/// `ListNodeChainConfigs` of node `id`.
pub(crate) async fn chain_configs(nodes: &mut Nodes, id: &str) -> Vec<node::ChainConfig> {
    nodes
        .list_node_chain_configs(node::ListNodeChainConfigsRequest {
            filter: Some(node::list_node_chain_configs_request::Filter {
                node_ids: vec![id.to_owned()],
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .chain_configs
}

/// Polls `GetProposal` until `done` holds for it (30 s at most).
pub(crate) async fn wait_proposal(
    jobs: &mut Jobs,
    id: &str,
    done: impl Fn(&job::Proposal) -> bool,
) -> job::Proposal {
    let start = std::time::Instant::now();
    loop {
        let p = jobs
            .get_proposal(job::GetProposalRequest { id: id.into() })
            .await
            .unwrap()
            .into_inner()
            .proposal
            .unwrap();
        if done(&p) {
            return p;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "proposal never got there: {p:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Polls `GetNode` until node `id`'s `is_connected` is `want` (15 s at most).
pub(crate) async fn wait_connected(nodes: &mut Nodes, id: &str, want: bool) {
    let start = std::time::Instant::now();
    loop {
        let node = nodes
            .get_node(node::GetNodeRequest {
                id: id.into(),
                public_key: None,
            })
            .await
            .unwrap()
            .into_inner()
            .node
            .unwrap();
        if node.is_connected == want {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "is_connected never became {want}: {node:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A node whose Job Distributor delivers through `ccip-submit` to `chainlink`: its nodes
/// file (in `dir`) lists `nodes` (YAML entries), and `jd` goes into its `[jd]` section.
async fn delivering_server(
    redis: &TestRedis,
    chainlink: &common::chainlink::ChainlinkNode,
    dir: &std::path::Path,
    nodes: &str,
    jd: &str,
) -> Server {
    let nodes_file = dir.join("nodes.yaml");
    std::fs::write(&nodes_file, format!("nodes:\n{nodes}")).unwrap();
    let config = format!(
        "[jd]\nnodes_file = \"{}\"\n{jd}\n[plugins.ccip-submit]\ngrants = [\"http\"]\nallowed_hosts = [\"{}\"]\n",
        nodes_file.display(),
        chainlink.url()
    );
    Server::start_with(&redis.url(), &["ccip-submit"], &config).await
}

fn delivered(p: &job::Proposal) -> bool {
    p.delivery_status() == job::ProposalDeliveryStatus::Delivered
}

fn failed(p: &job::Proposal) -> bool {
    p.delivery_status() == job::ProposalDeliveryStatus::Failed
}

#[tokio::test]
async fn approved_proposals_are_delivered_to_chainlink_nodes_and_deleted_from_them() {
    use common::chainlink::ChainlinkNode;
    let redis = TestRedis::start().await;
    let chainlink = ChainlinkNode::start("admin@node1.com", "node1-password").await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = format!(
        "  - name: node-1\n    chainlink_url: \"{url}\"\n    chainlink_email: admin@node1.com\n    chainlink_password: node1-password\n    chain_configs:\n      - chain_id: \"11155111\"\n        chain_type: evm\n        account_address: \"0xabc\"\n        admin_address: \"0xdef\"\n        ocr2: {{enabled: true, peer_id: \"12D3KooWpeer\", bundle_id: \"b1\", plugins: [commit, execute]}}\n  - name: node-2\n    chainlink_url: \"{url}\"\n",
        url = chainlink.url()
    );
    let jd = "delivery_backoff_ms = 100\ndelivery_backoff_max_ms = 300\nprobe_interval_ms = 100\n";
    let server = delivering_server(&redis, &chainlink, dir.path(), &nodes, jd).await;
    let mut nodes = Nodes::new(server.channel().await);
    let mut jobs = Jobs::new(server.channel().await);
    let one = register(&mut nodes, "node-1", "aa01", vec![]).await;
    let two = register(&mut nodes, "node-2", "bb02", vec![]).await;

    // Chain configs come from the nodes file, under the registered node's id.
    let configs = chain_configs(&mut nodes, &one.id).await;
    assert_eq!(configs.len(), 1, "{configs:?}");
    let config = &configs[0];
    assert_eq!(config.node_id, one.id);
    let chain = config.chain.as_ref().unwrap();
    assert_eq!(
        (chain.id.as_str(), chain.r#type()),
        ("11155111", node::ChainType::Evm)
    );
    assert_eq!(config.account_address, "0xabc");
    let ocr2 = config.ocr2_config.as_ref().unwrap();
    assert!(ocr2.enabled);
    assert_eq!(
        ocr2.p2p_key_bundle.as_ref().unwrap().peer_id,
        "12D3KooWpeer"
    );
    let plugins = ocr2.plugins.as_ref().unwrap();
    assert!(plugins.commit && plugins.execute && !plugins.median);

    // Approved at once, then delivered: the node holds the exact TOML.
    let toml = spec(
        "5b1a1a1a-1111-4111-8111-111111111111",
        "name = \"ccip commit\"\n",
    );
    let proposal = propose(&mut jobs, &one.id, toml.clone()).await;
    assert_eq!(proposal.status(), job::ProposalStatus::Approved);
    // The outcome is settled into the stored proposal without anyone reading it (so it
    // outlives the delivery job's retention): read the raw record, which does not settle.
    let store = redis.store().await;
    let start = std::time::Instant::now();
    loop {
        let raw = store
            .jd_get(jobhost_store::RecordKind::Proposals, &proposal.id)
            .await
            .unwrap()
            .unwrap();
        let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
        if raw["delivery"] == "DELIVERED" {
            assert!(raw["node_job_id"].is_string(), "{raw}");
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{raw}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let done = wait_proposal(&mut jobs, &proposal.id, delivered).await;
    assert!(done.response_received_at.is_some());
    let held: Vec<String> = chainlink.jobs().into_values().collect();
    assert_eq!(
        held,
        vec![toml.clone()],
        "the node got the spec byte for byte"
    );

    // A revision is delivered as well.
    let revised = spec(
        "5b1a1a1a-1111-4111-8111-111111111111",
        "name = \"ccip commit v2\"\n",
    );
    let second = propose(&mut jobs, &one.id, revised.clone()).await;
    assert_eq!(second.revision, 2);
    wait_proposal(&mut jobs, &second.id, delivered).await;
    let held: Vec<String> = chainlink.jobs().into_values().collect();
    assert_eq!(held, vec![revised], "the revision replaced the node's job");

    // No credentials for node-2: delivery fails, saying so.
    let orphan = propose(
        &mut jobs,
        &two.id,
        spec("5b1a1a1a-2222-4222-8222-222222222222", ""),
    )
    .await;
    assert!(failed(&orphan), "{orphan:?}");
    let jd = jobhost::jd::Distributor::new(store, jobhost_config::JdConfig::default()).unwrap();
    let recorded = jd.proposal(&orphan.id).await.unwrap();
    assert_eq!(
        recorded.delivery_error.as_deref(),
        Some("no credentials configured for node node-2")
    );
    // Visible to operators through the HTTP API too.
    let (status, body) = common::receiver::http_request(
        &server.http_addr,
        "GET",
        &format!("/v1/jd/proposals/{}", orphan.id),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let shown: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(shown["delivery_status"], "FAILED");
    assert_eq!(
        shown["delivery_error"],
        "no credentials configured for node node-2"
    );

    // The node's API answers its health probe: connected.
    wait_connected(&mut nodes, &one.id, true).await;

    // The node goes down: delivery fails (with the reason), is retried, and succeeds once
    // the node is back.
    chainlink.stop().await;
    let later = propose(
        &mut jobs,
        &one.id,
        spec("5b1a1a1a-3333-4333-8333-333333333333", ""),
    )
    .await;
    wait_proposal(&mut jobs, &later.id, failed).await;
    let reason = jd
        .proposal(&later.id)
        .await
        .unwrap()
        .delivery_error
        .unwrap_or_default();
    assert!(
        reason.contains("node-1"),
        "the reason names the node: {reason}"
    );
    wait_connected(&mut nodes, &one.id, false).await;
    // A revision proposed meanwhile supersedes the retrying delivery of the first: once the
    // node is back, only the revision lands there.
    let revision = spec(
        "5b1a1a1a-3333-4333-8333-333333333333",
        "name = \"while down, v2\"\n",
    );
    let later2 = propose(&mut jobs, &one.id, revision.clone()).await;
    assert_eq!(later2.revision, 2);
    chainlink.restart().await;
    wait_proposal(&mut jobs, &later2.id, delivered).await;
    let first_try = wait_proposal(&mut jobs, &later.id, |p| p.response_received_at.is_some()).await;
    assert!(
        failed(&first_try),
        "the superseded delivery ends FAILED: {first_try:?}"
    );
    let held: Vec<String> = chainlink.jobs().into_values().collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.contains(&revision), "{held:?}");

    // DeleteJob removes the job from the node (by the id the node gave it).
    let before = chainlink.jobs();
    jobs.delete_job(job::DeleteJobRequest {
        id_oneof: Some(job::delete_job_request::IdOneof::Id(later.job_id.clone())),
    })
    .await
    .unwrap();
    let start = std::time::Instant::now();
    while chainlink.jobs().len() == before.len() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "never deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        chainlink
            .calls()
            .iter()
            .any(|(method, path)| method == "DELETE" && path.starts_with("/v2/jobs/")),
        "{:?}",
        chainlink.calls()
    );
}

/// `POST /v1/jd/proposals/{id}/approve` on `server`: the status and JSON answer.
async fn approve(server: &Server, id: &str) -> (u16, serde_json::Value) {
    let (status, body) = common::receiver::http_request(
        &server.http_addr,
        "POST",
        &format!("/v1/jd/proposals/{id}/approve"),
        &[],
        b"",
    )
    .await;
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, body)
}

#[tokio::test]
async fn pending_proposals_are_delivered_once_approved() {
    use common::chainlink::ChainlinkNode;
    let redis = TestRedis::start().await;
    let chainlink = ChainlinkNode::start("admin@node1.com", "node1-password").await;
    let dir = tempfile::tempdir().unwrap();
    let nodes = format!(
        "  - name: node-1\n    chainlink_url: \"{url}\"\n    chainlink_email: admin@node1.com\n    chainlink_password: node1-password\n",
        url = chainlink.url()
    );
    let server = delivering_server(
        &redis,
        &chainlink,
        dir.path(),
        &nodes,
        "auto_approve = false\n",
    )
    .await;
    let mut nodes = Nodes::new(server.channel().await);
    let mut jobs = Jobs::new(server.channel().await);
    let one = register(&mut nodes, "node-1", "aa01", vec![]).await;
    let uuid = "5b1a1a1a-4444-4444-8444-444444444444";

    // Proposed, it waits: nothing reaches the node.
    let first = propose(&mut jobs, &one.id, spec(uuid, "name = \"v1\"\n")).await;
    assert_eq!(first.status(), job::ProposalStatus::Pending);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(chainlink.jobs().is_empty(), "{:?}", chainlink.jobs());

    // Approved, it is delivered.
    let (status, answer) = approve(&server, &first.id).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "APPROVED");
    assert!(answer["delivery_job"].is_string(), "{answer}");
    assert_eq!(answer["approved_by"], "anonymous:127.0.0.1");
    let done = wait_proposal(&mut jobs, &first.id, delivered).await;
    assert_eq!(done.status(), job::ProposalStatus::Approved);
    let held: Vec<String> = chainlink.jobs().into_values().collect();
    assert_eq!(held, vec![spec(uuid, "name = \"v1\"\n")]);

    // Once only.
    let (status, answer) = approve(&server, &first.id).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "FAILED_PRECONDITION");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("only a PENDING proposal can be approved"),
        "{answer}"
    );

    // Of two pending revisions only the latest can be approved; it replaces the node's job.
    let second = propose(&mut jobs, &one.id, spec(uuid, "name = \"v2\"\n")).await;
    let third = propose(&mut jobs, &one.id, spec(uuid, "name = \"v3\"\n")).await;
    let (status, answer) = approve(&server, &second.id).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("only its latest revision (3) can be approved"),
        "{answer}"
    );
    let (status, answer) = approve(&server, &third.id).await;
    assert_eq!(status, 200, "{answer}");
    wait_proposal(&mut jobs, &third.id, delivered).await;
    let held: Vec<String> = chainlink.jobs().into_values().collect();
    assert_eq!(held, vec![spec(uuid, "name = \"v3\"\n")], "v3 replaced v1");

    let (status, answer) = approve(&server, "no-such-proposal").await;
    assert_eq!(status, 404, "{answer}");
}

#[tokio::test]
async fn jd_port_sets_the_grpc_port_when_jobhost_config_does_not() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    common::install(&plugins, &["noop"]);
    let config = dir.path().join("jobhost.toml");
    std::fs::write(&config, "").unwrap();
    let port = jobhost_store::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("JOBHOST_TLS_ENABLED", "false")
        .args(["--plugins-dir", plugins.to_str().unwrap()])
        .args(["--redis-url", &redis.url(), "--http-addr", "127.0.0.1:0"])
        .env("JD_PORT", port.to_string())
        .env_remove("JOBHOST_GRPC_ADDR")
        .env("JOBHOST_CACHE", "false")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let key = loop {
        let answer = async {
            let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .ok()?
                .connect()
                .await
                .ok()?;
            let mut csa = csa::csa_service_client::CsaServiceClient::new(channel);
            csa.get_keypair(csa::GetKeypairRequest {}).await.ok()
        }
        .await;
        if let Some(answer) = answer {
            break answer.into_inner().keypair.unwrap().public_key;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "nothing answered on JD_PORT {port}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(key.len(), 64);
}
