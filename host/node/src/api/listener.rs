//! The listener of both APIs: accepts connections (plain or TLS), completes TLS handshakes
//! off the accept loop, and holds the node's connection limits (in all, per address, and
//! handshakes in progress), so a flood of silent or slow clients cannot starve the node.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;

use super::places::{Place, Places};
pub use super::tls::Protocol;
use super::tls::{ClientCertificate, Handshake, ServerTls};

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; connections beyond it are closed at once, so a flood of
/// silent clients cannot hold every file descriptor.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// Connections one API keeps open at once; more are closed as they arrive, so clients that
/// never finish cannot use up the node's file descriptors (Redis needs some too).
const MAX_CONNECTIONS: usize = 2048;

/// Who is on the other end of a connection: its address and, over TLS, the certificate it
/// presented, verified.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The client's address.
    pub addr: SocketAddr,
    /// The client's certificate, if it sent one.
    pub certificate: Option<Arc<ClientCertificate>>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An accepted connection, plain or TLS, with its [`PeerInfo`].
pub struct ApiStream {
    io: Io,
    peer: PeerInfo,
    /// This connection's place among [`MAX_CONNECTIONS`], given back when it closes.
    _slot: tokio::sync::OwnedSemaphorePermit,
    /// Its place among its address's connections, if those are limited.
    _address_place: Option<Place>,
    /// Until the client's first bytes arrive: when it must have sent them. A client that
    /// connects (and completes a handshake) but never speaks is cut off then.
    first_bytes: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ApiStream {
    /// Who is on the other end.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl AsyncRead for ApiStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        if let Some(deadline) = &mut this.first_bytes {
            match read {
                Poll::Ready(Ok(())) if buf.filled().len() > before => this.first_bytes = None,
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent nothing in time (api.http_header_timeout_ms)",
                    )));
                }
                _ => {}
            }
        }
        read
    }
}

impl AsyncWrite for ApiStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

impl tonic::transport::server::Connected for ApiStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

/// Accepts connections and, with TLS, completes their handshakes concurrently, so one slow
/// or silent client does not hold up the others.
pub struct ApiListener {
    tcp: TcpListener,
    protocol: Protocol,
    tls: Option<ServerTls>,
    handshakes: JoinSet<Option<ApiStream>>,
    connections: Arc<tokio::sync::Semaphore>,
    /// Connections per client address (`api.max_connections_per_address`; `None`: no limit).
    per_address: Option<Arc<Places>>,
    /// How long a client has to send its first bytes once connected.
    first_bytes: Duration,
}

/// How an [`ApiListener`] limits its clients.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections one address may hold at once (0: no limit).
    pub per_address: usize,
    /// How long a client has to send its first bytes once connected (and handshaken).
    pub first_bytes: Duration,
}

impl ConnectionLimits {
    /// The limits of `api`.
    pub fn of(api: &jobhost_config::ApiConfig) -> ConnectionLimits {
        ConnectionLimits {
            per_address: api.max_connections_per_address,
            first_bytes: Duration::from_millis(api.http_header_timeout_ms),
        }
    }
}

impl ApiListener {
    /// Serves `protocol` on `tcp`, over TLS when `tls` is given, within `limits`.
    pub fn new(
        tcp: TcpListener,
        tls: Option<&ServerTls>,
        protocol: Protocol,
        limits: ConnectionLimits,
    ) -> ApiListener {
        ApiListener {
            tcp,
            protocol,
            tls: tls.cloned(),
            handshakes: JoinSet::new(),
            connections: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
            per_address: (limits.per_address > 0).then(|| Places::new(limits.per_address)),
            first_bytes: limits.first_bytes,
        }
    }

    /// A place for a connection from `addr`, or `Err` when its address holds all it may.
    fn address_place(&self, addr: &SocketAddr) -> Result<Option<Place>, ()> {
        let Some(places) = &self.per_address else {
            return Ok(None);
        };
        places.open(&addr.ip().to_string()).map(Some).ok_or(())
    }

    /// The next connection ready to serve.
    pub async fn next(&mut self) -> ApiStream {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        let Ok(address_place) = self.address_place(&addr) else {
                            tracing::warn!(%addr, "the address holds api.max_connections_per_address connections: connection closed");
                            continue;
                        };
                        let Ok(slot) = self.connections.clone().try_acquire_owned() else {
                            tracing::warn!(%addr, "{MAX_CONNECTIONS} connections open: connection closed");
                            continue;
                        };
                        let _ = tcp.set_nodelay(true);
                        let held = Held { slot, address_place, first_bytes: self.first_bytes };
                        let Some(server) = &self.tls else {
                            let peer = PeerInfo { addr, certificate: None };
                            return held.stream(Io::Plain(tcp), peer);
                        };
                        // The files in use now: a rotation applies to new connections.
                        let tls = server.handshake(self.protocol);
                        if self.handshakes.len() >= MAX_PENDING_HANDSHAKES {
                            tracing::warn!(%addr, "too many TLS handshakes in progress: connection closed");
                            continue;
                        }
                        self.handshakes.spawn(handshake(tls, tcp, addr, held));
                    }
                    // Out of file descriptors and the like: back off rather than spin.
                    Err(e) => {
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(stream)) = done {
                        return stream;
                    }
                }
            }
        }
    }
}

/// What an accepted connection holds until it closes, and how long it may stay silent.
struct Held {
    slot: tokio::sync::OwnedSemaphorePermit,
    address_place: Option<Place>,
    first_bytes: Duration,
}

impl Held {
    /// The connection over `io`, from `peer`, holding these places; its first-bytes
    /// deadline starts now (after any TLS handshake).
    fn stream(self, io: Io, peer: PeerInfo) -> ApiStream {
        ApiStream {
            io,
            peer,
            _slot: self.slot,
            _address_place: self.address_place,
            first_bytes: Some(Box::pin(tokio::time::sleep(self.first_bytes))),
        }
    }
}

async fn handshake(
    tls: Handshake,
    tcp: TcpStream,
    addr: SocketAddr,
    held: Held,
) -> Option<ApiStream> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
        Ok(Ok((stream, certificate))) => {
            let peer = PeerInfo { addr, certificate };
            Some(held.stream(Io::Tls(Box::new(stream)), peer))
        }
        Ok(Err(e)) => {
            tracing::debug!(%addr, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(%addr, "TLS handshake timed out");
            None
        }
    }
}
