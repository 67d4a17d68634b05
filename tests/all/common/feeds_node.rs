//! A fake Chainlink node for tests: the node's (client's) side of the wsrpc "feeds manager"
//! channel a real Chainlink node dials to reach its Job Distributor (JD). jobhost is the JD.
//!
//! Modelled on smartcontractkit/wsrpc (`client.go`, `credentials/tls.go`,
//! `internal/transport/websocket_client.go`, `internal/message/message.go`) and
//! smartcontractkit/chainlink `core/services/feeds` (`connection_manager.go`,
//! `rpc_handlers.go`, `service.go`, `orm.go`):
//!
//! - Transport: the node dials `wss://HOST:PORT/` (a plain websocket upgrade of `GET /`, no
//!   subprotocol, no compression, no auth header) over TLS 1.3 only, no ALPN, no SNI (the
//!   host is an IP address). Each side presents one self-signed Ed25519 certificate; the
//!   node's carries its CSA key (serial 0, empty subject and issuer, validity
//!   0001-01-01..0001-01-01, no extensions: what Go's `x509.CreateCertificate` makes of an
//!   empty template). The node checks the JD's certificate by its key alone (exactly one
//!   certificate, an Ed25519 key equal to the expected one); chains, names and dates are not
//!   looked at.
//! - Framing: one binary websocket message per call or answer, holding a wsrpc `Message`.
//!   A request carries the bare method name, a UUIDv4 call id and the encoded request; the
//!   answer echoes the call id and carries the encoded response, or a non-empty `error`
//!   (then an empty payload). Frames that do not decode are ignored; text frames are read
//!   as binary ones (gorilla's `ReadMessage` does not tell them apart for wsrpc).
//! - Node → JD (`cfm.FeedsManager`): `UpdateNode` first, right after connecting (and on
//!   demand), `ApprovedJob`, `RejectedJob`, `CancelledJob` (`{uuid, version}`, the uuid in
//!   lower-case canonical form) and `Healthcheck`. Each call waits [`CALL_TIMEOUT`] for its
//!   answer.
//! - JD → node (`cfm.NodeService`), each request handled in its own task as wsrpc does:
//!   `ProposeJob`, `RevokeJob`, `DeleteJob` and `GetJobRuns`, with the node's rules (see
//!   [`FeedsNode`]). A request for any other method, or whose payload does not decode, gets
//!   no answer at all (wsrpc drops it).
//! - Keepalive: pings from the JD are answered with pongs, flushed at once. Like wsrpc's
//!   client, the node also pings the JD every [`Tuning::ping_period`] (18 s) and drops the
//!   connection when no pong came for [`Tuning::pong_wait`] (20 s; gorilla's read deadline,
//!   extended by each pong).
//!
//! Not modelled: reconnection with backoff (a real node redials forever; a test calls
//! [`FeedsNode::connect`] again), the retry of a failed `UpdateNode` (the real node retries
//! with backoff for a day), validation of job specs (the real node parses the TOML, refuses
//! unknown job types and multiaddrs on non-OCR jobs, and auto-approves workflow and
//! CRE-settings specs), the approval rules of the node's operator UI ([`FeedsNode::approve`]
//! and friends send whatever they are asked to, so tests can probe the JD), job runs
//! (`GetJobRuns` answers an empty list), the `CancelledJob` a real node sends when deleting an
//! approved workflow job, and several feeds managers per node. Error texts for duplicate
//! versions and unknown proposals are the short ones of [`ERR_VERSION_EXISTS`] and
//! [`ERR_NOT_FOUND`]; the current node words them longer (`external job id ...: version
//! conflict: ...`, `GetJobProposalByRemoteUUID did not find any proposals to ...`).
//!
//! Tests steer it with [`Options`] (auto-approval, the first `UpdateNode`, a method to crash
//! on), [`Tuning`] (approval before the answer, keepalive timing),
//! [`FeedsNode::decide_locally`], [`FeedsNode::stop_answering_pings`], [`FeedsNode::send_frame`],
//! [`FeedsNode::drop_connection`] and [`FeedsNode::close`], and read what it saw with
//! [`FeedsNode::proposals`], [`FeedsNode::requests`] and [`FeedsNode::pings`].

// Test support: integration tests use only part of it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use jobhost_proto::cfm;
use jobhost_proto::wsrpc::{self, message::Exchange};
use prost::Message as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

/// How long a node → JD call waits for its answer before failing with `call timeout`.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer to a `ProposeJob` whose (id, version) the node already holds.
pub const ERR_VERSION_EXISTS: &str = "proposed job spec version already exists";

/// The answer to a `RevokeJob` or `DeleteJob` for an id the node holds no live proposal of.
pub const ERR_NOT_FOUND: &str = "job proposal not found";

/// The answer to a `RevokeJob` whose latest spec is neither pending nor cancelled.
pub const ERR_NOT_REVOCABLE: &str = "only pending job specs can be revoked";

/// The largest message the node reads (wsrpc's default read limit, 100 MB).
pub const READ_LIMIT: usize = 100_000_000;

/// How long the TCP connect, TLS handshake and websocket upgrade may take together.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The Ed25519 OID (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

/// The websocket the node speaks over.
type WsStream = WebSocketStream<TlsStream<TcpStream>>;

/// A node's CSA key: an Ed25519 key pair (PKCS#8 v2, as ring makes them).
#[derive(Clone)]
pub struct NodeKey {
    pkcs8: Vec<u8>,
    public: [u8; 32],
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey")
            .field("public", &self.public_hex())
            .finish_non_exhaustive()
    }
}

impl NodeKey {
    /// A fresh random key.
    pub fn generate() -> NodeKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .expect("an Ed25519 key is generated");
        NodeKey::from_pkcs8(pkcs8.as_ref()).expect("a fresh key parses")
    }

    /// The key in `pkcs8` (DER, v1 or v2).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<NodeKey, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))?;
        let public = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| "an Ed25519 public key is 32 bytes".to_string())?;
        Ok(NodeKey {
            pkcs8: pkcs8.to_vec(),
            public,
        })
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// The public key as lower-case hex (how the JD's API shows a node's CSA key).
    pub fn public_hex(&self) -> String {
        hex::encode(self.public)
    }

    /// The private key, PKCS#8 DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The self-signed certificate wsrpc makes for this key: serial 0, empty subject and
    /// issuer, validity 0001-01-01..0001-01-01 (Go's zero time), no extensions.
    pub fn certificate(&self) -> CertificateDer<'static> {
        let pkcs8 = PrivatePkcs8KeyDer::from(self.pkcs8.as_slice());
        let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
            .expect("rcgen takes the Ed25519 key");
        let mut params = rcgen::CertificateParams::default();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0]));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.not_before = rcgen::date_time_ymd(1, 1, 1);
        params.not_after = rcgen::date_time_ymd(1, 1, 1);
        let cert = params
            .self_signed(&key)
            .expect("the minimal certificate is made");
        cert.der().clone()
    }
}

/// The raw Ed25519 key of a DER certificate, or why there is none (wsrpc's own wording:
/// `requires an ed25519 public key`).
pub fn ed25519_key_of(certificate: &[u8]) -> Result<[u8; 32], String> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| format!("x509: cannot parse the certificate: {e}"))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != ED25519_OID {
        return Err("requires an ed25519 public key".into());
    }
    spki.subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| "invalid ed25519 public key".to_string())
}

/// The status of one spec (one version of a proposal) as the node holds it. `Deleted`
/// marks every spec of a proposal the JD deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecStatus {
    /// Proposed, waiting for the operator.
    Pending,
    /// Approved (the JD accepted the `ApprovedJob`).
    Approved,
    /// Rejected (the JD accepted the `RejectedJob`).
    Rejected,
    /// Cancelled (by `cancel`, or replaced by the approval of another version).
    Cancelled,
    /// Revoked by the JD.
    Revoked,
    /// Its proposal was deleted by the JD.
    Deleted,
}

/// One `ProposeJob` the node accepted: one version of a proposal.
#[derive(Clone, Debug)]
pub struct ReceivedProposal {
    /// The proposal's remote id: the UUID the JD proposed with, lower-case canonical form.
    pub id: String,
    /// The job spec (TOML), as received.
    pub spec: String,
    /// The spec's version. The real node keeps it as an int32, so this is the proposed
    /// version truncated to 32 bits (what it reports back in `ApprovedJob` and friends).
    pub version: i64,
    /// Bootstrap multiaddrs, as received.
    pub multiaddrs: Vec<String>,
    /// Where the spec stands now.
    pub status: SpecStatus,
}

/// How the fake node behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// After answering a `ProposeJob` it accepted, send `ApprovedJob` for it (a refusal by
    /// the JD leaves the spec pending).
    pub auto_approve: bool,
    /// The `UpdateNode` sent first, right after connecting.
    pub update: cfm::UpdateNodeRequest,
    /// On the first JD → node request with this method, drop the TCP connection at once
    /// without answering (a node crashing mid-call).
    pub crash_on: Option<String>,
}

impl Default for Options {
    /// No auto-approval, an `UpdateNode` with only a version, no crash.
    fn default() -> Options {
        Options {
            auto_approve: false,
            update: cfm::UpdateNodeRequest {
                version: "2.0.0-fake".into(),
                ..Default::default()
            },
            crash_on: None,
        }
    }
}

/// Less common knobs, for [`FeedsNode::connect_with`].
#[derive(Clone, Debug)]
pub struct Tuning {
    /// With [`Options::auto_approve`]: approve *before* answering the `ProposeJob`, as a real
    /// node does for the specs it auto-approves (workflow, CRE settings): the JD then gets
    /// `ApprovedJob` while its `ProposeJob` is still in flight, and if the JD refuses it the
    /// `ProposeJob` fails with `failed to approve spec N: could not approve job proposal:
    /// <the JD's error>`.
    pub approve_before_reply: bool,
    /// How often the node pings the JD (wsrpc: 18 s).
    pub ping_period: Duration,
    /// How long the node goes without a pong before it drops the connection (wsrpc: 20 s;
    /// counted from the connection's start, then from the last pong).
    pub pong_wait: Duration,
}

impl Default for Tuning {
    /// wsrpc's: approval after the answer, a ping every 18 s, 20 s for a pong.
    fn default() -> Tuning {
        Tuning {
            approve_before_reply: false,
            ping_period: Duration::from_secs(18),
            pong_wait: Duration::from_secs(20),
        }
    }
}

/// A connected fake Chainlink node. Dropping it drops the connection abruptly and stops its
/// tasks.
///
/// How it serves the JD's requests (chainlink `core/services/feeds`):
/// - `ProposeJob {id, spec, multiaddrs, version}`: `id` must parse as a UUID (else Go's
///   `uuid.Parse` error, `invalid UUID length: N` / `invalid UUID format`). An (id, version)
///   the node already holds, deleted or not, is refused with [`ERR_VERSION_EXISTS`];
///   otherwise the spec is recorded as [`SpecStatus::Pending`] and the answer is an empty
///   `ProposeJobResponse`.
/// - `RevokeJob {id}`: with no live (non-deleted) proposal of that id, [`ERR_NOT_FOUND`];
///   the latest spec (highest version) must be pending or cancelled (the node's
///   `isRevokable`), else [`ERR_NOT_REVOCABLE`]; it becomes [`SpecStatus::Revoked`].
/// - `DeleteJob {id}`: with no live proposal of that id, [`ERR_NOT_FOUND`]; else every spec
///   of it becomes [`SpecStatus::Deleted`] (the proposal is soft-deleted: a later
///   `ProposeJob` of the same id and a new version is recorded, but revoke and delete no
///   longer find it).
/// - `GetJobRuns {id}`: an empty `GetJobRunsResponse` (or `unable to parse request id`).
pub struct FeedsNode {
    inner: Arc<Inner>,
}

/// What goes to the io task.
enum Outgoing {
    /// A frame to write; the sender, if any, learns when it was written.
    Frame(WsMessage, Option<oneshot::Sender<()>>),
    /// Close the websocket cleanly (close frame 1000, as wsrpc's client does on `Close`).
    Close,
}

/// What the node knows and saw.
#[derive(Default)]
struct State {
    proposals: Vec<ReceivedProposal>,
    /// Ids of proposals the JD deleted.
    deleted: HashSet<String>,
    requests: Vec<(String, Instant)>,
    pings: Vec<Instant>,
    pongs: Vec<Instant>,
    update_node_sent_at: Option<Instant>,
    first_update_response: Option<cfm::UpdateNodeResponse>,
    /// Calls waiting for their answer, by call id.
    pending: HashMap<String, oneshot::Sender<wsrpc::Response>>,
    /// The method to crash on; taken when it fires.
    crash_on: Option<String>,
}

/// Shared by the handle, the io task and the request handlers.
struct Inner {
    state: Mutex<State>,
    out: mpsc::UnboundedSender<Outgoing>,
    closed: watch::Sender<bool>,
    /// Stops every task (and drops the connection).
    cancel: CancellationToken,
    /// Stops reading the websocket (no pongs, no frames in or out).
    hang: CancellationToken,
    auto_approve: bool,
    approve_before_reply: bool,
}

impl FeedsNode {
    /// Dials the JD at `addr` as the node holding `key`, accepting only a JD whose key is
    /// `jd_public_key_hex`; sends `options.update` as the first `UpdateNode` and waits for
    /// its answer. `Err` names the stage that failed: `tcp: `, `tls: ` (e.g. the JD's key is
    /// not the expected one), `websocket upgrade: ` (with TLS 1.3 a JD that refuses the
    /// node's key is seen here, as the server checks the client's certificate after the
    /// client finished its handshake), or `UpdateNode: ` (the JD's error, `call timeout`, or
    /// `connection closed`).
    pub async fn connect(
        addr: SocketAddr,
        key: &NodeKey,
        jd_public_key_hex: &str,
        options: Options,
    ) -> Result<FeedsNode, String> {
        FeedsNode::connect_with(addr, key, jd_public_key_hex, options, Tuning::default()).await
    }

    /// [`FeedsNode::connect`] with [`Tuning`].
    pub async fn connect_with(
        addr: SocketAddr,
        key: &NodeKey,
        jd_public_key_hex: &str,
        options: Options,
        tuning: Tuning,
    ) -> Result<FeedsNode, String> {
        let jd_key: [u8; 32] = hex::decode(jd_public_key_hex.trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                format!("the JD key must be 32 bytes of hex, got {jd_public_key_hex:?}")
            })?;
        let config = client_config(key, jd_key)?;
        let ws = tokio::time::timeout(DIAL_TIMEOUT, dial(addr, config))
            .await
            .map_err(|_| format!("dial timeout: no connection within {DIAL_TIMEOUT:?}"))??;

        let (out, rx) = mpsc::unbounded_channel();
        let (closed, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                crash_on: options.crash_on,
                ..Default::default()
            }),
            out,
            closed,
            cancel: CancellationToken::new(),
            hang: CancellationToken::new(),
            auto_approve: options.auto_approve,
            approve_before_reply: tuning.approve_before_reply,
        });
        tokio::spawn(run_io(
            inner.clone(),
            ws,
            rx,
            tuning.ping_period,
            tuning.pong_wait,
        ));
        let node = FeedsNode { inner };

        node.inner.lock().update_node_sent_at = Some(Instant::now());
        let first = node
            .update_node(options.update)
            .await
            .map_err(|e| format!("UpdateNode: {e}"))?;
        node.inner.lock().first_update_response = Some(first);
        Ok(node)
    }

    /// Every spec the node accepted, in the order the `ProposeJob`s came, with its status
    /// now.
    pub fn proposals(&self) -> Vec<ReceivedProposal> {
        self.inner.lock().proposals.clone()
    }

    /// The spec (`id`, `version`) if the node holds it (`id` in any form Go's UUID parser
    /// takes).
    pub fn proposal(&self, id: &str, version: i64) -> Option<ReceivedProposal> {
        let id = canonical_uuid(id).unwrap_or_else(|_| id.to_ascii_lowercase());
        self.inner
            .lock()
            .proposals
            .iter()
            .find(|p| p.id == id && p.version == version)
            .cloned()
    }

    /// Waits until the node holds the spec (`id`, `version`); panics, listing what it holds,
    /// when it has not come within `within`.
    pub async fn wait_proposal(
        &self,
        id: &str,
        version: i64,
        within: Duration,
    ) -> ReceivedProposal {
        let deadline = Instant::now() + within;
        loop {
            if let Some(found) = self.proposal(id, version) {
                return found;
            }
            if Instant::now() >= deadline {
                let held: Vec<String> = self
                    .proposals()
                    .iter()
                    .map(|p| format!("{} v{} ({:?})", p.id, p.version, p.status))
                    .collect();
                panic!(
                    "the fake node got no proposal {id} v{version} within {within:?}; it holds [{}]; requests seen: {:?}",
                    held.join(", "),
                    self.requests()
                        .iter()
                        .map(|(m, _)| m.as_str())
                        .collect::<Vec<_>>(),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every JD → node request received (any method, answered or not), in order, with when
    /// it arrived.
    pub fn requests(&self) -> Vec<(String, Instant)> {
        self.inner.lock().requests.clone()
    }

    /// When each ping from the JD arrived.
    pub fn pings(&self) -> Vec<Instant> {
        self.inner.lock().pings.clone()
    }

    /// When each pong (to the node's own pings) arrived.
    pub fn pongs(&self) -> Vec<Instant> {
        self.inner.lock().pongs.clone()
    }

    /// When the first `UpdateNode` went out (right after the websocket upgrade).
    pub fn update_node_sent_at(&self) -> Option<Instant> {
        self.inner.lock().update_node_sent_at
    }

    /// The JD's answer to the first `UpdateNode` (its `chain_config_errors`: a real node
    /// logs them and retries the sync later, but stays connected).
    pub fn first_update_response(&self) -> Option<cfm::UpdateNodeResponse> {
        self.inner.lock().first_update_response.clone()
    }

    /// The operator approves spec (`id`, `version`): sends `ApprovedJob`; once the JD
    /// accepts it the spec is [`SpecStatus::Approved`] and any other approved spec of the
    /// same proposal [`SpecStatus::Cancelled`] (the node replaces the running job). No local
    /// rule is checked. `Err`: the JD's error, verbatim (then nothing changes locally, as
    /// the node's transaction rolls back), `call timeout` or `connection closed`.
    pub async fn approve(&self, id: &str, version: i64) -> Result<(), String> {
        self.inner.report(SpecStatus::Approved, id, version).await
    }

    /// The operator rejects spec (`id`, `version`): `RejectedJob`, then
    /// [`SpecStatus::Rejected`]. As [`FeedsNode::approve`] otherwise.
    pub async fn reject(&self, id: &str, version: i64) -> Result<(), String> {
        self.inner.report(SpecStatus::Rejected, id, version).await
    }

    /// The operator cancels spec (`id`, `version`): `CancelledJob`, then
    /// [`SpecStatus::Cancelled`]. As [`FeedsNode::approve`] otherwise.
    pub async fn cancel(&self, id: &str, version: i64) -> Result<(), String> {
        self.inner.report(SpecStatus::Cancelled, id, version).await
    }

    /// Sets spec (`id`, `version`)'s local status to `status` without telling the JD (a
    /// decision the JD has not heard of yet, or a state to provoke a refusal); false if the
    /// node does not hold that spec.
    pub fn decide_locally(&self, id: &str, version: i64, status: SpecStatus) -> bool {
        let id = canonical_uuid(id).unwrap_or_else(|_| id.to_ascii_lowercase());
        let mut state = self.inner.lock();
        match state
            .proposals
            .iter_mut()
            .find(|p| p.id == id && p.version == version)
        {
            Some(spec) => {
                spec.status = status;
                true
            }
            None => false,
        }
    }

    /// Sends `UpdateNode` (as the node does whenever its keys or chain configs change) and
    /// returns the JD's answer.
    pub async fn update_node(
        &self,
        req: cfm::UpdateNodeRequest,
    ) -> Result<cfm::UpdateNodeResponse, String> {
        let answer = self.inner.invoke("UpdateNode", req.encode_to_vec()).await?;
        decode_answer("UpdateNode", &answer)
    }

    /// Sends `Healthcheck`.
    pub async fn healthcheck(&self) -> Result<(), String> {
        let answer = self
            .inner
            .invoke("Healthcheck", cfm::HealthcheckRequest {}.encode_to_vec())
            .await?;
        decode_answer::<cfm::HealthcheckResponse>("Healthcheck", &answer).map(|_| ())
    }

    /// A raw call of `method` with `payload` (an encoded request, or anything): the answer's
    /// payload, or its error text; `None` when no answer comes within `within` (e.g. an
    /// unknown method) or the connection closes first.
    pub async fn call(
        &self,
        method: &str,
        payload: Vec<u8>,
        within: Duration,
    ) -> Option<Result<Vec<u8>, String>> {
        self.inner.call(method, payload, within).await
    }

    /// Writes `frame` as is (a malformed binary frame, an oversized one, a text frame...);
    /// returns once it was written, or at once if the connection is closed or the node
    /// stopped answering.
    pub async fn send_frame(&self, frame: WsMessage) {
        let (tx, rx) = oneshot::channel();
        if self
            .inner
            .out
            .send(Outgoing::Frame(frame, Some(tx)))
            .is_err()
        {
            return;
        }
        let mut closed = self.inner.closed.subscribe();
        tokio::select! {
            _ = rx => {}
            _ = self.inner.hang.cancelled() => {}
            _ = closed.wait_for(|c| *c) => {}
        }
    }

    /// The node hangs: it stops reading websocket frames, so it answers no more pings (and
    /// no requests), sends nothing (its own pings included) and drops nothing. The socket
    /// is still drained below the websocket layer, only to notice when the JD closes it
    /// ([`FeedsNode::wait_closed`]).
    pub fn stop_answering_pings(&self) {
        self.inner.hang.cancel();
    }

    /// Waits up to `within` for the connection to end (the JD closed it, or the node dropped
    /// it); whether it did.
    pub async fn wait_closed(&self, within: Duration) -> bool {
        let mut closed = self.inner.closed.subscribe();
        tokio::time::timeout(within, closed.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    /// The node crashes: the TCP connection just goes away (no close frame, no TLS
    /// close_notify).
    pub fn drop_connection(self) {
        drop(self);
    }

    /// The node disconnects cleanly, as wsrpc's `ClientConn.Close`: a close frame (1000),
    /// then up to a second for the JD to close its side, then the socket is closed.
    pub async fn close(self) {
        if self.inner.out.send(Outgoing::Close).is_ok() {
            self.wait_closed(Duration::from_secs(2)).await;
        }
    }
}

impl Drop for FeedsNode {
    fn drop(&mut self) {
        self.inner.cancel.cancel();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// One call: the answer's payload or error, or `None` without an answer in time.
    async fn call(
        &self,
        method: &str,
        payload: Vec<u8>,
        within: Duration,
    ) -> Option<Result<Vec<u8>, String>> {
        if self.is_closed() {
            return None;
        }
        let call_id = uuid_v4();
        let (tx, rx) = oneshot::channel();
        self.lock().pending.insert(call_id.clone(), tx);
        let frame = wsrpc::Message {
            exchange: Some(Exchange::Request(wsrpc::Request {
                method: method.to_owned(),
                call_id: call_id.clone(),
                payload,
            })),
        };
        let sent = self.out.send(Outgoing::Frame(
            WsMessage::binary(frame.encode_to_vec()),
            None,
        ));
        let answer = if sent.is_err() {
            None
        } else {
            let mut closed = self.closed.subscribe();
            tokio::select! {
                biased;
                answer = rx => answer.ok(),
                _ = tokio::time::sleep(within) => None,
                _ = closed.wait_for(|c| *c) => None,
            }
        };
        self.lock().pending.remove(&call_id);
        answer.map(|r| {
            if r.error.is_empty() {
                Ok(r.payload)
            } else {
                Err(r.error)
            }
        })
    }

    /// A node → JD call with the node's timeout: the answer's payload, or an error text.
    async fn invoke(&self, method: &str, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        match self.call(method, payload, CALL_TIMEOUT).await {
            Some(answer) => answer,
            None if self.is_closed() => Err("connection closed".into()),
            None => Err("call timeout".into()),
        }
    }

    /// Reports an operator's decision on spec (`id`, `version`) to the JD, then records it.
    async fn report(&self, status: SpecStatus, id: &str, version: i64) -> Result<(), String> {
        let uuid = canonical_uuid(id).unwrap_or_else(|_| id.to_owned());
        let (method, payload) = match status {
            SpecStatus::Approved => (
                "ApprovedJob",
                cfm::ApprovedJobRequest {
                    uuid: uuid.clone(),
                    version,
                }
                .encode_to_vec(),
            ),
            SpecStatus::Rejected => (
                "RejectedJob",
                cfm::RejectedJobRequest {
                    uuid: uuid.clone(),
                    version,
                }
                .encode_to_vec(),
            ),
            SpecStatus::Cancelled => (
                "CancelledJob",
                cfm::CancelledJobRequest {
                    uuid: uuid.clone(),
                    version,
                }
                .encode_to_vec(),
            ),
            other => unreachable!("the operator cannot set {other:?}"),
        };
        let answer = self.invoke(method, payload).await?;
        match status {
            SpecStatus::Approved => {
                decode_answer::<cfm::ApprovedJobResponse>(method, &answer)?;
            }
            SpecStatus::Rejected => {
                decode_answer::<cfm::RejectedJobResponse>(method, &answer)?;
            }
            _ => {
                decode_answer::<cfm::CancelledJobResponse>(method, &answer)?;
            }
        }

        let mut state = self.lock();
        for spec in state.proposals.iter_mut().filter(|p| p.id == uuid) {
            if spec.version == version {
                spec.status = status;
            } else if status == SpecStatus::Approved && spec.status == SpecStatus::Approved {
                spec.status = SpecStatus::Cancelled;
            }
        }
        Ok(())
    }

    /// Sends the answer to call `call_id`.
    fn reply(&self, call_id: &str, answer: Result<Vec<u8>, String>) {
        let (payload, error) = match answer {
            Ok(payload) => (payload, String::new()),
            Err(error) => (Vec::new(), error),
        };
        let frame = wsrpc::Message {
            exchange: Some(Exchange::Response(wsrpc::Response {
                call_id: call_id.to_owned(),
                payload,
                error,
            })),
        };
        let _ = self.out.send(Outgoing::Frame(
            WsMessage::binary(frame.encode_to_vec()),
            None,
        ));
    }

    /// `ProposeJob`: the answer, and the spec it recorded.
    async fn propose(
        &self,
        req: cfm::ProposeJobRequest,
    ) -> (Result<Vec<u8>, String>, Option<(String, i64)>) {
        let id = match canonical_uuid(&req.id) {
            Ok(id) => id,
            Err(e) => return (Err(e), None),
        };
        // The node keeps versions as int32.
        let version = i64::from(req.version as i32);
        let number = {
            let mut state = self.lock();
            if state
                .proposals
                .iter()
                .any(|p| p.id == id && p.version == version)
            {
                return (Err(ERR_VERSION_EXISTS.into()), None);
            }
            state.proposals.push(ReceivedProposal {
                id: id.clone(),
                spec: req.spec,
                version,
                multiaddrs: req.multiaddrs,
                status: SpecStatus::Pending,
            });
            // The node's local id of the proposal: its rank among the proposals it holds.
            let mut ids: Vec<&str> = Vec::new();
            for p in &state.proposals {
                if !ids.contains(&p.id.as_str()) {
                    ids.push(&p.id);
                }
            }
            ids.iter().position(|p| *p == id).unwrap_or(0) + 1
        };
        if self.auto_approve
            && self.approve_before_reply
            && let Err(e) = self.report(SpecStatus::Approved, &id, version).await
        {
            return (
                Err(format!(
                    "failed to approve spec {number}: could not approve job proposal: {e}"
                )),
                None,
            );
        }
        (
            Ok(cfm::ProposeJobResponse::default().encode_to_vec()),
            Some((id, version)),
        )
    }

    /// `RevokeJob`.
    fn revoke(&self, req: cfm::RevokeJobRequest) -> Result<Vec<u8>, String> {
        let id = canonical_uuid(&req.id)?;
        let mut state = self.lock();
        if state.deleted.contains(&id) {
            return Err(ERR_NOT_FOUND.into());
        }
        let latest = state
            .proposals
            .iter_mut()
            .filter(|p| p.id == id)
            .max_by_key(|p| p.version)
            .ok_or_else(|| ERR_NOT_FOUND.to_string())?;
        if !matches!(latest.status, SpecStatus::Pending | SpecStatus::Cancelled) {
            return Err(ERR_NOT_REVOCABLE.into());
        }
        latest.status = SpecStatus::Revoked;
        Ok(cfm::RevokeJobResponse::default().encode_to_vec())
    }

    /// `DeleteJob`.
    fn delete(&self, req: cfm::DeleteJobRequest) -> Result<Vec<u8>, String> {
        let id = canonical_uuid(&req.id)?;
        let mut state = self.lock();
        if state.deleted.contains(&id) || !state.proposals.iter().any(|p| p.id == id) {
            return Err(ERR_NOT_FOUND.into());
        }
        state.deleted.insert(id.clone());
        for spec in state.proposals.iter_mut().filter(|p| p.id == id) {
            spec.status = SpecStatus::Deleted;
        }
        Ok(cfm::DeleteJobResponse::default().encode_to_vec())
    }
}

/// Serves one JD → node request (in its own task).
async fn handle_request(inner: Arc<Inner>, req: wsrpc::Request) {
    let payload = req.payload.as_slice();
    match req.method.as_str() {
        "ProposeJob" => {
            let Ok(propose) = cfm::ProposeJobRequest::decode(payload) else {
                return;
            };
            let (answer, recorded) = inner.propose(propose).await;
            inner.reply(&req.call_id, answer);
            if let Some((id, version)) = recorded
                && inner.auto_approve
                && !inner.approve_before_reply
            {
                // A refusal leaves the spec pending, as for the operator's approval.
                let _ = inner.report(SpecStatus::Approved, &id, version).await;
            }
        }
        "RevokeJob" => {
            let Ok(revoke) = cfm::RevokeJobRequest::decode(payload) else {
                return;
            };
            let answer = inner.revoke(revoke);
            inner.reply(&req.call_id, answer);
        }
        "DeleteJob" => {
            let Ok(delete) = cfm::DeleteJobRequest::decode(payload) else {
                return;
            };
            let answer = inner.delete(delete);
            inner.reply(&req.call_id, answer);
        }
        "GetJobRuns" => {
            let Ok(runs) = cfm::GetJobRunsRequest::decode(payload) else {
                return;
            };
            let answer = canonical_uuid(&runs.id)
                .map(|_| cfm::GetJobRunsResponse::default().encode_to_vec())
                .map_err(|e| format!("unable to parse request id ({}): {e}", runs.id));
            inner.reply(&req.call_id, answer);
        }
        // wsrpc finds no handler and sends nothing.
        _ => {}
    }
}

/// Reads and writes the websocket until the connection ends or the node is dropped.
async fn run_io(
    inner: Arc<Inner>,
    mut ws: WsStream,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    ping_period: Duration,
    pong_wait: Duration,
) {
    let mut last_pong = tokio::time::Instant::now();
    let mut ping = tokio::time::interval_at(last_pong + ping_period, ping_period);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = inner.cancel.cancelled() => break,
            _ = inner.hang.cancelled() => {
                drain(&inner, &mut ws).await;
                break;
            }
            // gorilla's read deadline: no pong for `pong_wait`, the read fails.
            _ = tokio::time::sleep_until(last_pong + pong_wait) => break,
            out = rx.recv() => match out {
                Some(Outgoing::Frame(frame, written)) => {
                    let ok = ws.send(frame).await.is_ok();
                    if let Some(written) = written {
                        let _ = written.send(());
                    }
                    if !ok {
                        break;
                    }
                }
                Some(Outgoing::Close) => {
                    let _ = ws
                        .close(Some(CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        }))
                        .await;
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    break;
                }
                None => break,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(WsMessage::Binary(data))) => {
                    if on_frame(&inner, &data) {
                        break;
                    }
                }
                Some(Ok(WsMessage::Text(text))) => {
                    if on_frame(&inner, text.as_bytes()) {
                        break;
                    }
                }
                Some(Ok(WsMessage::Ping(_))) => {
                    inner.lock().pings.push(Instant::now());
                    // tungstenite queued the pong; write it out now.
                    if ws.flush().await.is_err() {
                        break;
                    }
                }
                Some(Ok(WsMessage::Pong(_))) => {
                    last_pong = tokio::time::Instant::now();
                    inner.lock().pongs.push(Instant::now());
                }
                Some(Ok(WsMessage::Close(_))) => {
                    // tungstenite queued the close reply; the stream ends after it.
                    let _ = ws.flush().await;
                }
                Some(Ok(WsMessage::Frame(_))) => {}
                Some(Err(_)) | None => break,
            },
            _ = ping.tick() => {
                if ws.send(WsMessage::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(ws);
    drop(rx);
    inner.lock().pending.clear();
    inner.closed.send_replace(true);
}

/// The hung node: reads the TLS stream raw (so no pong is made) until it ends.
async fn drain(inner: &Inner, ws: &mut WsStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            read = ws.get_mut().read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
        }
    }
}

/// Handles one incoming frame; true when the node must crash now.
fn on_frame(inner: &Arc<Inner>, data: &[u8]) -> bool {
    let Ok(message) = wsrpc::Message::decode(data) else {
        return false;
    };
    match message.exchange {
        Some(Exchange::Request(req)) => {
            let crash = {
                let mut state = inner.lock();
                state.requests.push((req.method.clone(), Instant::now()));
                if state.crash_on.as_deref() == Some(req.method.as_str()) {
                    state.crash_on = None;
                    true
                } else {
                    false
                }
            };
            if crash {
                return true;
            }
            let (task, cancel) = (inner.clone(), inner.cancel.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = handle_request(task, req) => {}
                }
            });
        }
        Some(Exchange::Response(resp)) => {
            let waiting = inner.lock().pending.remove(&resp.call_id);
            if let Some(waiting) = waiting {
                let _ = waiting.send(resp);
            }
        }
        None => {}
    }
    false
}

/// Decodes an answer's payload as `R`.
fn decode_answer<R: prost::Message + Default>(method: &str, payload: &[u8]) -> Result<R, String> {
    R::decode(payload).map_err(|e| format!("cannot decode the {method} answer: {e}"))
}

/// TCP, TLS and the websocket upgrade.
async fn dial(addr: SocketAddr, config: rustls::ClientConfig) -> Result<WsStream, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("tcp: {e}"))?;
    let _ = tcp.set_nodelay(true);
    // An IP address: no SNI goes out, as with Go's TLS client dialing an IP.
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(READ_LIMIT))
        .max_frame_size(Some(READ_LIMIT));
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(format!("wss://{addr}/"), tls, Some(ws_config))
            .await
            .map_err(|e| format!("websocket upgrade: {e}"))?;
    Ok(ws)
}

/// wsrpc's client TLS: 1.3 only, the node's minimal certificate, the JD known by its key.
fn client_config(key: &NodeKey, jd_key: [u8; 32]) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = JdKeyVerifier {
        expected: jd_key,
        algorithms: provider.signature_verification_algorithms,
    };
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("tls: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(
            vec![key.certificate()],
            PrivateKeyDer::Pkcs8(key.pkcs8.clone().into()),
        )
        .map_err(|e| format!("tls: the node's certificate: {e}"))
}

/// Accepts the JD when it presents exactly one certificate holding the expected Ed25519 key
/// (wsrpc's `VerifyPeerCertificate`) and proves it holds the key.
#[derive(Debug)]
struct JdKeyVerifier {
    expected: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for JdKeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General(
                "required exactly one client certificate".into(),
            ));
        }
        let key = ed25519_key_of(end_entity).map_err(rustls::Error::General)?;
        if key != self.expected {
            return Err(rustls::Error::General(format!(
                "unknown public key on cert {}",
                hex::encode(key)
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("wsrpc is TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// A random (version 4) UUID, lower-case canonical form, as `uuid.NewString()` makes call
/// ids.
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format_uuid(&b)
}

/// `b` as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
fn format_uuid(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parses a UUID as Go's `uuid.Parse` does (canonical, `urn:uuid:`-prefixed, braced or 32
/// bare hex digits, any case) and gives its lower-case canonical form; errors as Go words
/// them.
pub fn canonical_uuid(s: &str) -> Result<String, String> {
    let hex_part: String = match s.len() {
        36 => dashed(s)?,
        45 => {
            let prefix = s.get(..9).ok_or("invalid UUID format")?;
            if !prefix.eq_ignore_ascii_case("urn:uuid:") {
                return Err(format!("invalid urn prefix: {prefix:?}"));
            }
            dashed(&s[9..])?
        }
        38 => {
            if !s.starts_with('{') || !s.ends_with('}') {
                return Err("invalid UUID format".into());
            }
            dashed(&s[1..37])?
        }
        32 => s.to_owned(),
        n => return Err(format!("invalid UUID length: {n}")),
    };
    let bytes: [u8; 16] = hex::decode(&hex_part)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("invalid UUID format")?;
    Ok(format_uuid(&bytes))
}

/// The 32 hex digits of a dashed 36-character UUID.
fn dashed(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return Err("invalid UUID format".into());
    }
    Ok(s.chars().filter(|c| *c != '-').collect())
}
