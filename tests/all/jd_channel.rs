//! The Job Distributor's node channel (wsrpc) of a real `jobhost serve`, against a fake
//! Chainlink node that speaks the node side of the protocol (`common::feeds_node`): who may
//! connect, the devenv flow end to end, the proposal lifecycle both ways, delivery through
//! another jobhost node, reconnects, keepalive, crashes, bad frames, and the CSA key at rest.

use std::time::Duration;

use crate::common;
use crate::jd::{chain_configs, wait_connected, wait_proposal};

use common::TestRedis;
use common::feeds_node::{FeedsNode, NodeKey, Options, SpecStatus, Tuning};
use common::server::Server;
use jobhost_proto::api::app::v1 as app;
use jobhost_proto::api::csa::v1 as csa;
use jobhost_proto::api::job::v1 as job;
use jobhost_proto::api::node::v1 as node;
use jobhost_proto::cfm;
use tonic::Code;
use tonic::transport::Channel;

type Nodes = node::node_service_client::NodeServiceClient<Channel>;
type Jobs = job::job_service_client::JobServiceClient<Channel>;

/// A spec whose externalJobID is `uuid`.
fn spec(uuid: &str) -> String {
    format!("type = \"offchainreporting2\"\nschemaVersion = 1\nexternalJobID = \"{uuid}\"\n")
}

/// The JD's CSA public key, as `GetKeypair` gives it.
async fn jd_key(server: &Server) -> String {
    csa::csa_service_client::CsaServiceClient::new(server.channel().await)
        .get_keypair(csa::GetKeypairRequest {})
        .await
        .unwrap()
        .into_inner()
        .keypair
        .unwrap()
        .public_key
}

async fn register(nodes: &mut Nodes, name: &str, key: &NodeKey) -> node::Node {
    nodes
        .register_node(node::RegisterNodeRequest {
            name: name.into(),
            public_key: key.public_hex(),
            labels: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap()
}

async fn get_node(nodes: &mut Nodes, id: &str) -> node::Node {
    nodes
        .get_node(node::GetNodeRequest {
            id: id.into(),
            public_key: None,
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap()
}

async fn propose(jobs: &mut Jobs, node_id: &str, uuid: &str) -> job::Proposal {
    jobs.propose_job(job::ProposeJobRequest {
        node_id: node_id.into(),
        spec: spec(uuid),
        labels: vec![],
    })
    .await
    .unwrap()
    .into_inner()
    .proposal
    .unwrap()
}

async fn get_proposal(jobs: &mut Jobs, id: &str) -> job::Proposal {
    jobs.get_proposal(job::GetProposalRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .proposal
        .unwrap()
}

fn acknowledged(p: &job::Proposal) -> bool {
    p.delivery_status() == job::ProposalDeliveryStatus::Acknowledged
}

/// What a node says of itself: one EVM chain with OCR2, a workflow key, a P2P bundle.
fn update() -> cfm::UpdateNodeRequest {
    cfm::UpdateNodeRequest {
        version: "2.19.0@abc123".into(),
        workflow_key: Some("wf-key-1".into()),
        nop_friendly_name: "NOP one".into(),
        p2p_key_bundles: vec![cfm::P2pKeyBundle {
            peer_id: "12D3KooWpeer".into(),
            public_key: "p2p-pub".into(),
        }],
        chain_configs: vec![cfm::ChainConfig {
            chain: Some(cfm::Chain {
                id: "11155111".into(),
                r#type: cfm::ChainType::Evm.into(),
            }),
            account_address: "0xaccount".into(),
            admin_address: "0xadmin".into(),
            ocr2_config: Some(cfm::Ocr2Config {
                enabled: true,
                multiaddr: "/ip4/10.0.0.1/tcp/6690".into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn options() -> Options {
    Options {
        auto_approve: false,
        update: update(),
        crash_on: None,
    }
}

fn socket(server: &Server) -> std::net::SocketAddr {
    server.wsrpc_addr.parse().unwrap()
}

/// A server, its JD clients and key.
struct Jd {
    _redis: TestRedis,
    server: Server,
    nodes: Nodes,
    jobs: Jobs,
    key: String,
}

async fn start(config: &str) -> Jd {
    let redis = TestRedis::start().await;
    let server = Server::start_with(&redis.url(), &["noop"], config).await;
    Jd {
        nodes: Nodes::new(server.channel().await),
        jobs: Jobs::new(server.channel().await),
        key: jd_key(&server).await,
        server,
        _redis: redis,
    }
}

impl Jd {
    async fn connect(&self, key: &NodeKey, options: Options) -> FeedsNode {
        FeedsNode::connect(socket(&self.server), key, &self.key, options)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn registered_enabled_keys_connect_and_others_are_refused() {
    let mut jd = start("").await;
    let (known, unknown, disabled) = (
        NodeKey::generate(),
        NodeKey::generate(),
        NodeKey::generate(),
    );
    let n = register(&mut jd.nodes, "node-1", &known).await;
    let d = register(&mut jd.nodes, "node-2", &disabled).await;
    jd.nodes
        .disable_node(node::DisableNodeRequest { id: d.id.clone() })
        .await
        .unwrap();
    assert!(!get_node(&mut jd.nodes, &n.id).await.is_connected);

    let connected = jd.connect(&known, options()).await;
    wait_connected(&mut jd.nodes, &n.id, true).await;
    connected.healthcheck().await.unwrap();
    for (key, why) in [(&unknown, "unknown"), (&disabled, "disabled")] {
        let refused = FeedsNode::connect(socket(&jd.server), key, &jd.key, options()).await;
        assert!(refused.is_err(), "a {why} key must be refused");
    }
    // The node checks the JD's key too: a JD with another key is not its JD.
    let other_jd = NodeKey::generate().public_hex();
    assert!(
        FeedsNode::connect(socket(&jd.server), &known, &other_jd, options())
            .await
            .is_err()
    );

    connected.drop_connection();
    wait_connected(&mut jd.nodes, &n.id, false).await;

    // Disabling a connected node ends its session.
    let connected = jd.connect(&known, options()).await;
    wait_connected(&mut jd.nodes, &n.id, true).await;
    jd.nodes
        .disable_node(node::DisableNodeRequest { id: n.id.clone() })
        .await
        .unwrap();
    assert!(connected.wait_closed(Duration::from_secs(10)).await);
    wait_connected(&mut jd.nodes, &n.id, false).await;
}

#[tokio::test]
async fn the_devenv_flow_proposes_and_the_node_approves_rejects_and_cancels() {
    let mut jd = start("").await;
    let key = NodeKey::generate();
    let n = register(&mut jd.nodes, "node-1", &key).await;
    let feeds = jd.connect(&key, options()).await;
    wait_connected(&mut jd.nodes, &n.id, true).await;

    // What the node said in UpdateNode shows on the node and as its chain configs.
    let shown = get_node(&mut jd.nodes, &n.id).await;
    assert_eq!(shown.version, "2.19.0@abc123");
    assert_eq!(shown.workflow_key.as_deref(), Some("wf-key-1"));
    assert_eq!(shown.nop_friendly_name, "NOP one");
    assert_eq!(shown.p2p_key_bundles[0].peer_id, "12D3KooWpeer");
    let configs = chain_configs(&mut jd.nodes, &n.id).await;
    assert_eq!(configs.len(), 1, "{configs:?}");
    assert_eq!(configs[0].node_id, n.id);
    assert_eq!(configs[0].chain.as_ref().unwrap().id, "11155111");
    assert_eq!(configs[0].account_address, "0xaccount");
    let ocr2 = configs[0].ocr2_config.as_ref().unwrap();
    assert!(ocr2.enabled);
    assert_eq!(ocr2.multiaddr, "/ip4/10.0.0.1/tcp/6690");

    // Proposed, sent, acknowledged; the node approves.
    let uuid = "7C9A2B1E-0000-4000-8000-0000000000A1";
    let p = propose(&mut jd.jobs, &n.id, uuid).await;
    assert_eq!(p.status(), job::ProposalStatus::Proposed);
    let remote = uuid.to_ascii_lowercase();
    let received = feeds
        .wait_proposal(&remote, 1, Duration::from_secs(10))
        .await;
    assert_eq!(received.spec, spec(uuid), "the spec byte for byte");
    let p = wait_proposal(&mut jd.jobs, &p.id, acknowledged).await;
    assert!(p.acked_at.is_some());
    assert!(p.response_received_at.is_none());
    feeds.approve(&remote, 1).await.unwrap();
    let p = get_proposal(&mut jd.jobs, &p.id).await;
    assert_eq!(p.status(), job::ProposalStatus::Approved);
    assert!(p.response_received_at.is_some());

    // The same decision again (the node's earlier answer lost) is accepted as it is; one
    // that does not fit the proposal's state is refused with the reason.
    feeds.approve(&remote, 1).await.unwrap();
    let wrong = feeds.reject(&remote, 1).await.unwrap_err();
    assert!(
        wrong.contains("Approved") && wrong.contains("Rejected"),
        "{wrong}"
    );
    let unknown = feeds
        .approve("00000000-0000-4000-8000-000000000000", 1)
        .await
        .unwrap_err();
    assert!(unknown.contains("not found"), "{unknown}");

    // Cancelled after approval, and approved again (the latest version may be).
    feeds.cancel(&remote, 1).await.unwrap();
    assert_eq!(
        get_proposal(&mut jd.jobs, &p.id).await.status(),
        job::ProposalStatus::Cancelled
    );
    feeds.approve(&remote, 1).await.unwrap();
    assert_eq!(
        get_proposal(&mut jd.jobs, &p.id).await.status(),
        job::ProposalStatus::Approved
    );

    // A second job, rejected.
    let uuid2 = "7c9a2b1e-0000-4000-8000-0000000000a2";
    let p2 = propose(&mut jd.jobs, &n.id, uuid2).await;
    feeds.wait_proposal(uuid2, 1, Duration::from_secs(10)).await;
    wait_proposal(&mut jd.jobs, &p2.id, acknowledged).await;
    feeds.reject(uuid2, 1).await.unwrap();
    assert_eq!(
        get_proposal(&mut jd.jobs, &p2.id).await.status(),
        job::ProposalStatus::Rejected
    );

    // A spec whose externalJobID is no UUID cannot go to a node on the channel.
    let err = jd
        .jobs
        .propose_job(job::ProposeJobRequest {
            node_id: n.id.clone(),
            spec: spec("not-a-uuid"),
            labels: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("UUID"), "{err:?}");
}

#[tokio::test]
async fn revoke_and_delete_reach_the_node_and_its_refusals_are_reported() {
    let mut jd = start("").await;
    let key = NodeKey::generate();
    let n = register(&mut jd.nodes, "node-1", &key).await;
    let feeds = jd.connect(&key, options()).await;
    wait_connected(&mut jd.nodes, &n.id, true).await;

    // Revoked while pending on the node.
    let uuid = "11111111-0000-4000-8000-000000000001";
    let p = propose(&mut jd.jobs, &n.id, uuid).await;
    feeds.wait_proposal(uuid, 1, Duration::from_secs(10)).await;
    wait_proposal(&mut jd.jobs, &p.id, acknowledged).await;
    let revoked = jd
        .jobs
        .revoke_job(job::RevokeJobRequest {
            id_oneof: Some(job::revoke_job_request::IdOneof::Id(p.job_id.clone())),
        })
        .await
        .unwrap()
        .into_inner()
        .proposal
        .unwrap();
    assert_eq!(revoked.status(), job::ProposalStatus::Revoked);
    wait_node_status(&feeds, uuid, SpecStatus::Revoked).await;

    // Deleted after the node approved it.
    let uuid2 = "11111111-0000-4000-8000-000000000002";
    let p2 = propose(&mut jd.jobs, &n.id, uuid2).await;
    feeds.wait_proposal(uuid2, 1, Duration::from_secs(10)).await;
    wait_proposal(&mut jd.jobs, &p2.id, acknowledged).await;
    feeds.approve(uuid2, 1).await.unwrap();
    jd.jobs
        .delete_job(job::DeleteJobRequest {
            id_oneof: Some(job::delete_job_request::IdOneof::Id(p2.job_id.clone())),
        })
        .await
        .unwrap();
    wait_node_status(&feeds, uuid2, SpecStatus::Deleted).await;

    // The node refuses to revoke what it approved already (the JD has not heard yet):
    // the refusal is on the proposal, not swallowed.
    let uuid3 = "11111111-0000-4000-8000-000000000003";
    let p3 = propose(&mut jd.jobs, &n.id, uuid3).await;
    feeds.wait_proposal(uuid3, 1, Duration::from_secs(10)).await;
    wait_proposal(&mut jd.jobs, &p3.id, acknowledged).await;
    feeds.decide_locally(uuid3, 1, SpecStatus::Approved);
    jd.jobs
        .revoke_job(job::RevokeJobRequest {
            id_oneof: Some(job::revoke_job_request::IdOneof::Id(p3.job_id.clone())),
        })
        .await
        .unwrap();
    let path = format!("/v1/jd/proposals/{}", p3.id);
    let start = std::time::Instant::now();
    let mut body = http_get(&jd.server, &path).await;
    while !body.contains("only pending job specs can be revoked") {
        assert!(start.elapsed() < Duration::from_secs(15), "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        body = http_get(&jd.server, &path).await;
    }
}

/// `GET path` on the server's HTTP API; the body.
async fn http_get(server: &Server, path: &str) -> String {
    common::receiver::http_request(&server.http_addr, "GET", path, &[], b"")
        .await
        .1
}

async fn wait_node_status(feeds: &FeedsNode, id: &str, want: SpecStatus) {
    let start = std::time::Instant::now();
    loop {
        let now = feeds
            .proposals()
            .into_iter()
            .rev()
            .find(|p| p.id == id)
            .map(|p| p.status);
        if now.as_ref() == Some(&want) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the node's proposal {id} is {now:?}, never {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_proposal_made_on_one_jobhost_node_is_sent_by_the_one_holding_the_session() {
    let redis = TestRedis::start().await;
    let a = Server::start(&redis.url(), &["noop"]).await;
    let b = Server::start(&redis.url(), &["noop"]).await;
    let (mut nodes_b, mut jobs_b) = (Nodes::new(b.channel().await), Jobs::new(b.channel().await));
    let jd_public = jd_key(&a).await;
    assert_eq!(jd_key(&b).await, jd_public, "one key for the deployment");
    let key = NodeKey::generate();
    let n = register(&mut nodes_b, "node-1", &key).await;
    let feeds = FeedsNode::connect(socket(&a), &key, &jd_public, options())
        .await
        .unwrap();
    wait_connected(&mut nodes_b, &n.id, true).await;
    let uuid = "22222222-0000-4000-8000-000000000001";
    let p = propose(&mut jobs_b, &n.id, uuid).await;
    feeds.wait_proposal(uuid, 1, Duration::from_secs(10)).await;
    wait_proposal(&mut jobs_b, &p.id, acknowledged).await;
    feeds.approve(uuid, 1).await.unwrap();
    assert_eq!(
        get_proposal(&mut jobs_b, &p.id).await.status(),
        job::ProposalStatus::Approved
    );
}

#[tokio::test]
async fn proposals_made_while_a_node_is_away_are_sent_when_it_reconnects() {
    let mut jd = start("").await;
    let key = NodeKey::generate();
    let n = register(&mut jd.nodes, "node-1", &key).await;
    jd.connect(&key, options()).await.drop_connection();
    wait_connected(&mut jd.nodes, &n.id, false).await;

    let uuid = "33333333-0000-4000-8000-000000000001";
    let p = propose(&mut jd.jobs, &n.id, uuid).await;
    assert_eq!(p.status(), job::ProposalStatus::Proposed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get_proposal(&mut jd.jobs, &p.id).await.delivery_status(),
        job::ProposalDeliveryStatus::Unspecified,
        "nothing is sent to a node that is away"
    );
    let feeds = jd.connect(&key, options()).await;
    feeds.wait_proposal(uuid, 1, Duration::from_secs(10)).await;
    wait_proposal(&mut jd.jobs, &p.id, acknowledged).await;
    // Calls wait for the node's first UpdateNode.
    let sent = feeds.update_node_sent_at().unwrap();
    assert!(feeds.requests().iter().all(|(_, at)| *at >= sent));
}

#[tokio::test]
async fn a_node_that_crashes_mid_call_gets_the_call_again_and_a_reconnect_takes_over() {
    let mut jd = start("").await;
    let key = NodeKey::generate();
    let n = register(&mut jd.nodes, "node-1", &key).await;
    let crashing = jd
        .connect(
            &key,
            Options {
                crash_on: Some("ProposeJob".into()),
                ..options()
            },
        )
        .await;
    wait_connected(&mut jd.nodes, &n.id, true).await;
    let uuid = "44444444-0000-4000-8000-000000000001";
    let p = propose(&mut jd.jobs, &n.id, uuid).await;
    assert!(crashing.wait_closed(Duration::from_secs(10)).await);

    let first = jd.connect(&key, options()).await;
    first.wait_proposal(uuid, 1, Duration::from_secs(10)).await;
    wait_proposal(&mut jd.jobs, &p.id, acknowledged).await;

    // A reconnect while the old connection is still open takes the session over.
    let second = jd.connect(&key, options()).await;
    assert!(
        first.wait_closed(Duration::from_secs(10)).await,
        "the older connection is closed"
    );
    let uuid2 = "44444444-0000-4000-8000-000000000002";
    propose(&mut jd.jobs, &n.id, uuid2).await;
    second
        .wait_proposal(uuid2, 1, Duration::from_secs(10))
        .await;
    wait_connected(&mut jd.nodes, &n.id, true).await;
}

#[tokio::test]
async fn a_node_that_answers_no_ping_is_dropped() {
    let mut jd = start("[jd]\nwsrpc_ping_interval_ms = 200\nwsrpc_pong_timeout_ms = 700\n").await;
    let key = NodeKey::generate();
    let n = register(&mut jd.nodes, "node-1", &key).await;
    // The node pings the JD too (wsrpc clients do, and drop a JD that does not answer).
    let tuning = Tuning {
        ping_period: Duration::from_millis(150),
        pong_wait: Duration::from_millis(600),
        ..Tuning::default()
    };
    let alive = FeedsNode::connect_with(socket(&jd.server), &key, &jd.key, options(), tuning)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!alive.is_closed(), "a node that answers pings stays");
    assert!(
        alive.pings().len() >= 3,
        "the JD pings: {:?}",
        alive.pings()
    );
    assert!(alive.pongs().len() >= 3, "the JD answers the node's pings");
    alive.stop_answering_pings();
    assert!(alive.wait_closed(Duration::from_secs(10)).await);
    wait_connected(&mut jd.nodes, &n.id, false).await;
}

#[tokio::test]
async fn bad_frames_end_the_session_and_the_jd_keeps_serving() {
    use tokio_tungstenite::tungstenite::Message as Frame;
    let mut jd = start("[jd]\nwsrpc_max_message_bytes = 4096\n").await;
    let key = NodeKey::generate();
    let n = register(&mut jd.nodes, "node-1", &key).await;
    let frames = [
        Frame::Binary(vec![0xff, 0xff, 0xff, 0x01, 0x02].into()),
        Frame::Text("{\"method\": \"UpdateNode\"}".into()),
        Frame::Binary(vec![0x12; 64 * 1024].into()),
    ];
    for frame in frames {
        let feeds = jd.connect(&key, options()).await;
        feeds.send_frame(frame).await;
        assert!(feeds.wait_closed(Duration::from_secs(10)).await);
    }
    // An unknown method gets no answer at all; a known one is still served.
    let feeds = jd.connect(&key, options()).await;
    assert!(
        feeds
            .call("NoSuchMethod", Vec::new(), Duration::from_millis(500))
            .await
            .is_none()
    );
    feeds.healthcheck().await.unwrap();
    wait_connected(&mut jd.nodes, &n.id, true).await;
    let version = app::app_service_client::AppServiceClient::new(jd.server.channel().await)
        .version(app::VersionRequest {})
        .await
        .unwrap()
        .into_inner()
        .version;
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
}

/// The `jd:csa` record as stored in Redis.
async fn stored_key(redis: &TestRedis) -> String {
    let keys = redis.cli(&["KEYS", "*jd:csa"]);
    let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    redis.cli(&["GET", keys[0]])
}

/// Runs `jobhost serve` until it exits (within 30 s) or is serving; its log if it exited.
fn serve_fails(redis: &TestRedis, env: &[(&str, &str)]) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["serve", "--plugins-dir", plugins.to_str().unwrap()])
        .args(["--redis-url", &redis.url()])
        .args([
            "--grpc-addr",
            &format!("127.0.0.1:{}", jobhost_store::free_port()),
        ])
        .args([
            "--http-addr",
            &format!("127.0.0.1:{}", jobhost_store::free_port()),
        ])
        .env(
            "JOBHOST_JD_WSRPC_ADDR",
            format!("127.0.0.1:{}", jobhost_store::free_port()),
        )
        .env("JOBHOST_TLS_ENABLED", "false")
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Some(_status) = child.try_wait().unwrap() {
            let mut log = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
            return Some(log);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test]
async fn the_csa_key_is_sealed_at_rest_migrated_and_a_wrong_secret_stops_the_start() {
    let redis = TestRedis::start().await;
    // An older start without a secret stored the key unencrypted.
    let plain = Server::start_with_env(&redis.url(), &["noop"], "", &[]).await;
    let public = jd_key(&plain).await;
    drop(plain);
    let before = stored_key(&redis).await;
    assert!(before.contains("pkcs8"), "{before}");

    // With a secret, the same key is sealed.
    let secret = "correct horse battery staple";
    let sealed = Server::start_with_env(
        &redis.url(),
        &["noop"],
        "[jd]\ncsa_key_secret = \"env:JD_TEST_SECRET\"\n",
        &[("JD_TEST_SECRET", secret)],
    )
    .await;
    assert_eq!(jd_key(&sealed).await, public, "the same key, sealed");
    let at_rest = stored_key(&redis).await;
    assert!(
        !at_rest.contains("pkcs8") && at_rest.contains("sealed"),
        "{at_rest}"
    );
    drop(sealed);

    // The real JD's variable works too; a wrong secret or none stops the start, naming the
    // knob, never printing the secret, never making a new key.
    let log = serve_fails(&redis, &[("CSA_KEY_ENCRYPTION_SECRET", "wrong secret")])
        .expect("a wrong secret stops the start");
    assert!(log.contains("jd.csa_key_secret does not open"), "{log}");
    assert!(!log.contains("wrong secret"), "{log}");
    let log = serve_fails(&redis, &[]).expect("no secret for a sealed key stops the start");
    assert!(log.contains("is encrypted"), "{log}");
    assert_eq!(
        stored_key(&redis).await,
        at_rest,
        "the key was not replaced"
    );
    let right = Server::start_with_env(
        &redis.url(),
        &["noop"],
        "",
        &[("CSA_KEY_ENCRYPTION_SECRET", secret)],
    )
    .await;
    assert_eq!(jd_key(&right).await, public);
}
