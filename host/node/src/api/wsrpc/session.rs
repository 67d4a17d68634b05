//! One Chainlink node's wsrpc session: every call and answer is one binary websocket message
//! holding a `message.Message`; calls are matched to answers by their UUIDv4 call id, both
//! ways; the JD pings every `jd.wsrpc_ping_interval_ms` and drops a node that sends no pong
//! within `jd.wsrpc_pong_timeout_ms`. After the node's first `UpdateNode` (its library can
//! crash on a call that comes earlier) the session sends what the node's outbox holds, one
//! call at a time, removing each once answered; what is unanswered when the session ends is
//! sent again when the node reconnects.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_util::sync::CancellationToken;

use jobhost_proto::cfm;
use jobhost_proto::wsrpc::{Message, Request, Response, message::Exchange};

use super::Sessions;
use crate::jd::{ChainlinkNode, Decision, Distributor, JdError};

type Socket = WebSocketStream<TlsStream<TcpStream>>;

/// Calls from one node answered at once; more wait for one of them to finish.
const MAX_CALLS_IN_PROGRESS: usize = 64;

/// Longest a frame may take to be written (wsrpc's default write timeout).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls made to the node, waiting for their answers, by call id.
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Response>>>>;

/// What became of a call made to the node.
enum Outcome {
    /// It answered: its payload, or its error text.
    Answered(Result<Vec<u8>, String>),
    /// No answer within `jd.wsrpc_call_timeout_ms`.
    TimedOut,
    /// The session ended first.
    Gone,
}

/// What one session shares between its tasks.
struct Session {
    id: String,
    node: ChainlinkNode,
    jd: Distributor,
    out: mpsc::Sender<Frame>,
    pending: Pending,
    /// Set once the node's first `UpdateNode` was answered.
    ready: watch::Sender<bool>,
    wake: Arc<Notify>,
    /// Ends the session, from any of its tasks (or from a newer connection of the node).
    end: CancellationToken,
}

impl Session {
    /// Proves the session alive in the store (for `is_connected` on every jobhost node);
    /// the reason it must end instead: a newer connection of the node took over, or the
    /// node was disabled, re-keyed or removed (the set of keys changes at run time). A store
    /// that cannot be reached now ends nothing.
    async fn still_holds(&self) -> Result<(), String> {
        let name = &self.node.name;
        match self
            .jd
            .store()
            .jd_session_touch(&self.node.id, &self.id)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err("a newer connection of the node took over".into()),
            Err(e) => tracing::warn!(node = %name, "wsrpc: cannot keep the session: {e}"),
        }
        match self.jd.node(&self.node.id).await {
            Ok(node) if !node.enabled => Err("the node was disabled".into()),
            Ok(node) if node.public_key != self.node.public_key => {
                Err("the node's public key was changed".into())
            }
            Err(JdError::NotFound(_)) => Err("the node is no longer registered".into()),
            Err(e) => {
                tracing::warn!(node = %name, "wsrpc: cannot read the node: {e}");
                Ok(())
            }
            Ok(_) => Ok(()),
        }
    }
}

/// Runs `node`'s session on `ws` until it ends (the node leaves, breaks the protocol, stops
/// answering, or reconnects elsewhere) or `stop`.
pub(super) async fn run(
    ws: Socket,
    node: ChainlinkNode,
    jd: Distributor,
    sessions: Sessions,
    stop: CancellationToken,
) {
    let (sink, stream) = ws.split();
    let (out, outgoing) = mpsc::channel(64);
    let session = Arc::new(Session {
        id: jobhost_store::new_id(),
        node,
        jd,
        out,
        pending: Pending::default(),
        ready: watch::Sender::new(false),
        wake: Arc::new(Notify::new()),
        end: stop.child_token(),
    });
    let (node_id, id) = (session.node.id.clone(), session.id.clone());
    sessions.open(&node_id, &id, session.end.clone(), session.wake.clone());
    if let Err(e) = session.jd.store().jd_session_open(&node_id, &id).await {
        tracing::warn!(node = %session.node.name, "wsrpc: cannot record the session: {e}");
        sessions.close(&node_id, &id);
        return;
    }
    tracing::info!(node = %session.node.name, node_id, session = id, "wsrpc: node connected");
    let last_pong = Arc::new(Mutex::new(Instant::now()));
    let writer = tokio::spawn(write(sink, outgoing, session.end.clone()));
    let reason = tokio::select! {
        reason = read(session.clone(), stream, last_pong.clone()) => reason,
        reason = keepalive(session.clone(), last_pong) => reason,
        reason = send_outbox(session.clone()) => reason,
        () = session.end.cancelled() => "a newer connection of the node took over, or the node shut down".to_owned(),
    };
    session.end.cancel();
    let _ = writer.await;
    sessions.close(&node_id, &id);
    if let Err(e) = session.jd.store().jd_session_close(&node_id, &id).await {
        tracing::warn!(node = %session.node.name, "wsrpc: cannot clear the session: {e}");
    }
    tracing::info!(node = %session.node.name, node_id, session = id, "wsrpc: node disconnected: {reason}");
}

/// Writes frames until the session ends; then closes the socket.
async fn write(
    mut sink: futures::stream::SplitSink<Socket, Frame>,
    mut outgoing: mpsc::Receiver<Frame>,
    end: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            () = end.cancelled() => break,
            frame = outgoing.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        // A node that stops reading (a full TCP window) must not hold the session: a frame
        // not written within WRITE_TIMEOUT ends it, as wsrpc's write deadline does.
        let sent = tokio::select! {
            () = end.cancelled() => break,
            sent = tokio::time::timeout(WRITE_TIMEOUT, sink.send(frame)) => sent,
        };
        if !matches!(sent, Ok(Ok(()))) {
            end.cancel();
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

/// Reads frames until the node leaves or breaks the protocol; the reason.
async fn read(
    session: Arc<Session>,
    mut stream: futures::stream::SplitStream<Socket>,
    last_pong: Arc<Mutex<Instant>>,
) -> String {
    let mut handlers = tokio::task::JoinSet::new();
    loop {
        let frame = match stream.next().await {
            None => return "the connection closed".into(),
            Some(Err(e)) => return format!("the connection failed: {e}"),
            Some(Ok(frame)) => frame,
        };
        let bytes = match frame {
            Frame::Binary(bytes) => bytes,
            Frame::Pong(_) => {
                *last_pong.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                continue;
            }
            // Answered by the websocket layer.
            Frame::Ping(_) => continue,
            Frame::Close(_) => return "the node closed the connection".into(),
            Frame::Text(_) | Frame::Frame(_) => {
                return "protocol error: a frame that is not a binary message".into();
            }
        };
        let exchange = match Message::decode(bytes.as_ref()) {
            Ok(Message {
                exchange: Some(exchange),
            }) => exchange,
            _ => return "protocol error: a frame that is not a wsrpc message".into(),
        };
        match exchange {
            Exchange::Request(request) => {
                // wsrpc ignores a call whose id is not a UUIDv4 (it could not be answered).
                if !is_uuid_v4(&request.call_id) {
                    tracing::debug!(node = %session.node.name, "wsrpc: a call without a UUIDv4 call id; ignored");
                    continue;
                }
                // A node's calls are answered concurrently, a bounded number at a time.
                if handlers.len() >= MAX_CALLS_IN_PROGRESS {
                    handlers.join_next().await;
                }
                handlers.spawn(answer(session.clone(), request));
            }
            Exchange::Response(response) => {
                let waiting = session
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&response.call_id);
                match waiting {
                    Some(waiting) => {
                        let _ = waiting.send(response);
                    }
                    None => {
                        tracing::debug!(node = %session.node.name, call_id = response.call_id, "wsrpc: an answer to no call")
                    }
                }
            }
        }
        while handlers.try_join_next().is_some() {}
    }
}

/// Pings the node, drops it when no pong comes in time, and checks (and proves, for
/// `is_connected` on every jobhost node) that this session still holds the node.
async fn keepalive(session: Arc<Session>, last_pong: Arc<Mutex<Instant>>) -> String {
    let config = session.jd.config();
    let ping_every = Duration::from_millis(config.wsrpc_ping_interval_ms);
    let pong_within = Duration::from_millis(config.wsrpc_pong_timeout_ms);
    let touch_every = crate::jd::session_touch_interval(config);
    // Fine enough that a ping goes out close to its time: wsrpc's 18 s / 20 s leave a node
    // 2 s to answer.
    let tick = (ping_every.min(pong_within).min(touch_every) / 4)
        .clamp(Duration::from_millis(20), Duration::from_millis(200));
    let (mut next_ping, mut next_touch) = (Instant::now() + ping_every, Instant::now());
    loop {
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        let silent = now.duration_since(*last_pong.lock().unwrap_or_else(|e| e.into_inner()));
        if silent > pong_within {
            return format!("no pong for {} ms", silent.as_millis());
        }
        if now >= next_ping {
            next_ping = now + ping_every;
            // Never waits: a queue that stays full is a node that stopped reading, which
            // the pong deadline (and the writer's timeout) catch.
            if let Err(mpsc::error::TrySendError::Closed(_)) =
                session.out.try_send(Frame::Ping(Default::default()))
            {
                return "the connection closed".into();
            }
        }
        if now >= next_touch {
            next_touch = now + touch_every;
            if let Err(reason) = session.still_holds().await {
                return reason;
            }
        }
    }
}

/// Answers one call from the node (none for a method it does not know, as wsrpc does).
async fn answer(session: Arc<Session>, request: Request) {
    let Some(result) = dispatch(&session, &request).await else {
        tracing::debug!(node = %session.node.name, method = request.method, "wsrpc: no such method; not answered");
        return;
    };
    let answered_ok = result.is_ok();
    let response = match result {
        Ok(payload) => Response {
            call_id: request.call_id,
            payload,
            error: String::new(),
        },
        Err(error) => Response {
            call_id: request.call_id,
            payload: Vec::new(),
            error,
        },
    };
    let frame = Message {
        exchange: Some(Exchange::Response(response)),
    };
    let sent = session
        .out
        .send(Frame::Binary(frame.encode_to_vec().into()))
        .await;
    // Calls to the node start once its first UpdateNode is answered (queued ahead of them).
    if request.method == "UpdateNode" && answered_ok && sent.is_ok() {
        session.ready.send_replace(true);
        session.wake.notify_one();
    }
}

/// What the node's call `request` gets: its encoded answer or an error text; `None` for a
/// method `cfm.FeedsManager` does not have.
async fn dispatch(session: &Session, request: &Request) -> Option<Result<Vec<u8>, String>> {
    let (jd, node) = (&session.jd, &session.node.id);
    let payload = request.payload.as_slice();
    let decided = |decision| async move {
        let (uuid, version) = match decision {
            Decision::Approved => {
                decode::<cfm::ApprovedJobRequest>(payload).map(|r| (r.uuid, r.version))
            }
            Decision::Rejected => {
                decode::<cfm::RejectedJobRequest>(payload).map(|r| (r.uuid, r.version))
            }
            Decision::Cancelled => {
                decode::<cfm::CancelledJobRequest>(payload).map(|r| (r.uuid, r.version))
            }
        }?;
        jd.node_decided(node, &uuid, version, decision)
            .await
            .map_err(error_text)?;
        Ok(Vec::new())
    };
    Some(match request.method.as_str() {
        "UpdateNode" => match decode::<cfm::UpdateNodeRequest>(payload) {
            Ok(update) => jd
                .node_reported(node, &update)
                .await
                .map(|r| r.encode_to_vec())
                .map_err(error_text),
            Err(e) => Err(e),
        },
        "ApprovedJob" => decided(Decision::Approved).await,
        "RejectedJob" => decided(Decision::Rejected).await,
        "CancelledJob" => decided(Decision::Cancelled).await,
        "Healthcheck" => Ok(cfm::HealthcheckResponse {}.encode_to_vec()),
        _ => return None,
    })
}

fn decode<T: prost::Message + Default>(payload: &[u8]) -> Result<T, String> {
    T::decode(payload).map_err(|e| format!("cannot decode the request: {e}"))
}

fn error_text(e: JdError) -> String {
    if matches!(e, JdError::Store(_) | JdError::Corrupt(_)) {
        tracing::error!("wsrpc call failed: {e}");
    }
    e.to_string()
}

/// Sends what the node's outbox holds, once the node has sent `UpdateNode`; returns why the
/// session must end.
async fn send_outbox(session: Arc<Session>) -> String {
    let mut ready = session.ready.subscribe();
    if ready.wait_for(|r| *r).await.is_err() {
        return "the session ended".into();
    }
    loop {
        match send_next(&session).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(Stop(reason)) => return reason,
        }
        // Woken by the store's `jd` event; the poll covers a missed one.
        let _ = tokio::time::timeout(Duration::from_secs(2), session.wake.notified()).await;
    }
}

/// Why the outbox stops sending: the session must end.
struct Stop(String);

/// Sends the oldest call of the outbox and records its answer; false when there is none
/// (or the store cannot be read now).
async fn send_next(session: &Session) -> Result<bool, Stop> {
    let (jd, node) = (&session.jd, &session.node);
    let logged = |what: &str, e: JdError| {
        tracing::warn!(node = %node.name, "wsrpc: cannot {what}: {e}");
        Ok(false)
    };
    let (entry, text) = match jd.next_outgoing(&node.id).await {
        Ok(Some(next)) => next,
        Ok(None) => return Ok(false),
        Err(e) => return logged("read the outbox", e),
    };
    session.still_holds().await.map_err(Stop)?;
    let call = match jd.prepare_call(&entry).await {
        Ok(call) => call,
        Err(JdError::NotFound(_)) => None,
        Err(e) => return logged("prepare a call", e),
    };
    if let Some(call) = call {
        let answer = match invoke(session, call.method, call.payload).await {
            Outcome::Answered(answer) => answer.map(drop),
            Outcome::TimedOut => {
                return Err(Stop(format!(
                    "no answer to {} within {} ms",
                    call.method,
                    jd.config().wsrpc_call_timeout_ms
                )));
            }
            Outcome::Gone => return Err(Stop("the connection closed during a call".into())),
        };
        // A proposal sent again after a lost answer: the node has it already.
        let answer = match answer {
            Err(e) if call.resend && e.contains("already exists") => Ok(()),
            other => other,
        };
        if let Err(e) = jd.call_answered(node, &entry, answer).await {
            return logged("record the node's answer", e);
        }
    }
    if let Err(e) = jd.done_outgoing(&node.id, &text).await {
        return logged("update the outbox", e);
    }
    Ok(true)
}

/// Calls `method` on the node and waits for its answer.
async fn invoke(session: &Session, method: &str, payload: Vec<u8>) -> Outcome {
    let call_id = uuid_v4();
    let (tx, rx) = oneshot::channel();
    let pending = session.pending.clone();
    pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(call_id.clone(), tx);
    let frame = Message {
        exchange: Some(Exchange::Request(Request {
            method: method.to_owned(),
            call_id: call_id.clone(),
            payload,
        })),
    };
    let timeout = Duration::from_millis(session.jd.config().wsrpc_call_timeout_ms);
    let outcome = if session
        .out
        .send(Frame::Binary(frame.encode_to_vec().into()))
        .await
        .is_err()
    {
        Outcome::Gone
    } else {
        tokio::select! {
            answer = tokio::time::timeout(timeout, rx) => match answer {
                Ok(Ok(r)) if r.error.is_empty() => Outcome::Answered(Ok(r.payload)),
                Ok(Ok(r)) => Outcome::Answered(Err(r.error)),
                Ok(Err(_)) => Outcome::Gone,
                Err(_) => Outcome::TimedOut,
            },
            () = session.end.cancelled() => Outcome::Gone,
        }
    };
    pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&call_id);
    outcome
}

/// Whether `id` is a version 4 UUID, as wsrpc requires of call ids.
fn is_uuid_v4(id: &str) -> bool {
    crate::jd::canonical_uuid(id).is_some_and(|u| u.as_bytes()[14] == b'4')
}

/// A random (version 4) UUID, as wsrpc's call ids are.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::{is_uuid_v4, uuid_v4};

    #[test]
    fn call_ids_are_version_4_uuids() {
        for _ in 0..100 {
            assert!(is_uuid_v4(&uuid_v4()));
        }
        assert!(
            !is_uuid_v4("7c9a2b1e-0000-1000-8000-000000000001"),
            "version 1"
        );
        assert!(!is_uuid_v4("call-1"));
        assert!(!is_uuid_v4(""));
    }
}
