//! The Job Distributor's node channel: Chainlink nodes dial in over wsrpc (a websocket over
//! mutual TLS 1.3, each side known by its Ed25519 key; smartcontractkit/wsrpc), send
//! `UpdateNode`, receive `ProposeJob` / `RevokeJob` / `DeleteJob`, and answer
//! `ApprovedJob` / `RejectedJob` / `CancelledJob` (chainlink-protos `cfm`).
//!
//! `tls`: the handshake and the peer's key; `session`: one node's connection (framing,
//! call ids both ways, keepalive, its outbox). This module accepts connections, lets in
//! keys of registered, enabled nodes, and keeps the sessions this jobhost node holds. Which
//! jobhost node holds a Chainlink node's session is in the store, so a proposal made on any
//! of them reaches the node: it is queued in the node's outbox, and the store's `jd` event
//! wakes the holder.

mod session;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use jobhost_store::Event;

use crate::jd::Distributor;

/// How long a node may take over its TLS handshake and websocket upgrade.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; connections beyond it are closed at once, so a flood of
/// silent clients cannot hold the node's file descriptors.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// Binds the channel's port (`jd.wsrpc_addr`), so a taken port fails the start.
pub async fn bind(addr: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on jd.wsrpc_addr {addr} (the Job Distributor's node channel): {e}"
        )
    })?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// The sessions this jobhost node holds, by Chainlink node id.
#[derive(Clone, Default)]
pub(crate) struct Sessions {
    inner: Arc<Mutex<HashMap<String, Local>>>,
}

/// A session held here.
struct Local {
    id: String,
    stop: CancellationToken,
    wake: Arc<Notify>,
}

impl Sessions {
    /// Adds session `id` for `node`, ending the one it replaces (a reconnect while the old
    /// connection is still half-open).
    fn open(&self, node: &str, id: &str, stop: CancellationToken, wake: Arc<Notify>) {
        let old = self.lock().insert(
            node.to_owned(),
            Local {
                id: id.to_owned(),
                stop,
                wake,
            },
        );
        if let Some(old) = old {
            old.stop.cancel();
        }
    }

    /// Removes session `id` of `node`, unless a newer one replaced it.
    fn close(&self, node: &str, id: &str) {
        let mut sessions = self.lock();
        if sessions.get(node).is_some_and(|s| s.id == id) {
            sessions.remove(node);
        }
    }

    /// Wakes `node`'s session, if held here, to send what its outbox has.
    fn wake(&self, node: &str) {
        if let Some(s) = self.lock().get(node) {
            s.wake.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Local>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves the channel on `listener` until `stop`.
pub async fn serve(listener: TcpListener, jd: Distributor, stop: CancellationToken) {
    let key = match jd.csa_key().await {
        Ok(key) => key,
        Err(e) => {
            tracing::error!("the Job Distributor's node channel cannot start: {e}");
            return;
        }
    };
    let acceptor = match tls::server_config(key.pkcs8()) {
        Ok(config) => TlsAcceptor::from(config),
        Err(e) => {
            tracing::error!("the Job Distributor's node channel cannot start: {e}");
            return;
        }
    };
    let sessions = Sessions::default();
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    tokio::spawn(wake_on_events(jd.clone(), sessions.clone(), stop.clone()));
    loop {
        let (tcp, addr) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("wsrpc accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(place) = handshakes.clone().try_acquire_owned() else {
            tracing::debug!(peer = %addr, "wsrpc: too many handshakes in progress; closed");
            continue;
        };
        let (jd, acceptor, sessions, stop) =
            (jd.clone(), acceptor.clone(), sessions.clone(), stop.clone());
        tokio::spawn(async move {
            if let Err(reason) = connect(tcp, acceptor, jd, sessions, stop, place).await {
                tracing::info!(peer = %addr, "wsrpc connection refused: {reason}");
            }
        });
    }
}

/// Wakes the sessions held here when something is queued for their nodes.
async fn wake_on_events(jd: Distributor, sessions: Sessions, stop: CancellationToken) {
    loop {
        match jd.store().events().await {
            Ok(events) => {
                let mut events = std::pin::pin!(events);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        event = events.next() => match event {
                            Some(Event::JdOutbox(node)) => sessions.wake(&node),
                            Some(_) => {}
                            None => break,
                        },
                    }
                }
            }
            // The store reports an outage once; this retries quietly until it ends.
            Err(e) => tracing::debug!("wsrpc: cannot subscribe to store events: {e}"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Completes the handshake of one connection, lets in a registered, enabled node's key,
/// and runs its session.
async fn connect(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    jd: Distributor,
    sessions: Sessions,
    stop: CancellationToken,
    handshake_place: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), String> {
    let _ = tcp.set_nodelay(true);
    let handshake = async {
        let tls = acceptor
            .accept(tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let key = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| tls::ed25519_key(cert))
            .ok_or("no Ed25519 client certificate")?;
        let public_key = hex::encode(key);
        let node = match jd.node_by_key(&public_key).await {
            Ok(node) if node.enabled => Ok(node),
            Ok(node) => Err(format!("node {} ({public_key}) is disabled", node.id)),
            Err(crate::jd::JdError::NotFound(_)) => {
                Err(format!("no registered node has public key {public_key}"))
            }
            Err(e) => Err(format!("cannot check public key {public_key} now: {e}")),
        };
        let refusal = node.as_ref().err().cloned();
        let config = WebSocketConfig::default()
            .max_message_size(Some(jd.config().wsrpc_max_message_bytes))
            .max_frame_size(Some(jd.config().wsrpc_max_message_bytes));
        // The callback's signature is tungstenite's (its error is a whole HTTP response).
        #[allow(clippy::result_large_err)]
        let answer = |_: &Request, response: Response| match &refusal {
            None => Ok(response),
            Some(reason) => {
                let mut refused = ErrorResponse::new(Some(reason.clone()));
                *refused.status_mut() = StatusCode::UNAUTHORIZED;
                Err(refused)
            }
        };
        let ws = tokio_tungstenite::accept_hdr_async_with_config(tls, answer, Some(config))
            .await
            .map_err(|e| format!("websocket upgrade: {e}"));
        let node = node?;
        Ok::<_, String>((ws?, node))
    };
    let (ws, node) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| "handshake timed out".to_owned())??;
    drop(handshake_place);
    session::run(ws, node, jd, sessions, stop).await;
    Ok(())
}
