//! TLS of the APIs: the server's certificate, client certificates (mTLS), and a listener
//! that completes handshakes off the accept loop.
//!
//! Client certificates are *requested* in the handshake but do not fail it: the chain is
//! verified once, right after the handshake, and the verdict travels with the connection
//! ([`ClientCertificate`]). A client without one, or with one the CA did not sign, still
//! connects, and its calls answer `UNAUTHENTICATED` / 401 with the reason ("certificate has
//! expired") instead of a bare handshake failure; [`super::auth`] decides what the verdict
//! means. The handshake still proves that the client holds the certificate's private key.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::places::{Place, Places};
use jobhost_config::TlsConfig;

/// Errors loading the TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A required file is not configured.
    #[error(
        "TLS is on (tls.enabled) but tls.{0} is not set: run `jobhost certs init DIR` for \
         development certificates and set tls.cert_file, tls.key_file and tls.client_ca_file \
         (see README), or serve plaintext with `serve --dev` or tls.enabled = false"
    )]
    Missing(&'static str),
    /// A file cannot be read or holds no usable PEM.
    #[error("tls.{knob} ({path}): {reason}")]
    File {
        /// The config knob naming the file.
        knob: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the combination (e.g. the key does not match the certificate).
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; connections beyond it are closed at once, so a flood of
/// silent clients cannot hold every file descriptor.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// Connections one API keeps open at once; more are closed as they arrive, so clients that
/// never finish cannot use up the node's file descriptors (Redis needs some too).
const MAX_CONNECTIONS: usize = 2048;

/// Most certificates a client may present (leaf and intermediates): bounds the work of
/// verifying a chain the client chose.
const MAX_CLIENT_CHAIN: usize = 4;

/// The server side of TLS: the certificate, key and client CA of `[tls]`, read at start and
/// again whenever the files change ([`ServerTls::watch`]), so certificates rotate without a
/// restart. Clones share the same, current files; a connection keeps the ones it started
/// with.
#[derive(Clone)]
pub struct ServerTls {
    config: TlsConfig,
    loaded: Arc<std::sync::RwLock<Arc<Loaded>>>,
    /// Readings made so far: each reload counts one, so a connection verified against
    /// earlier files is known by its number.
    readings: Arc<std::sync::atomic::AtomicU64>,
    /// What the files looked like when last read.
    stamps: Arc<std::sync::Mutex<Vec<Option<FileStamp>>>>,
}

/// One reading of the TLS files.
struct Loaded {
    /// Which reading this is (counted by `ServerTls::readings`).
    generation: u64,
    grpc: TlsAcceptor,
    http: TlsAcceptor,
    client_verifier: Arc<dyn ClientCertVerifier>,
}

/// A file's modification time and size: when either changes, the file is read again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// Reads the certificate, key and client CA named in `config`.
    pub fn load(config: &TlsConfig) -> Result<ServerTls, TlsError> {
        // Stamped before reading: a change made while reading is seen at the next check.
        let stamps = file_stamps(config);
        let loaded = Loaded::read(config, 0)?;
        Ok(ServerTls {
            config: config.clone(),
            loaded: Arc::new(std::sync::RwLock::new(Arc::new(loaded))),
            readings: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            stamps: Arc::new(std::sync::Mutex::new(stamps)),
        })
    }

    /// The files as last read.
    fn current(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the files again if any changed since they were last read: `Ok(true)` when new
    /// ones are now in use, `Ok(false)` when nothing changed. Files that changed but cannot
    /// be used (a rotation half done, a key that does not match) leave the current ones in
    /// use; they are tried again once they change again.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamps = file_stamps(&self.config);
        {
            let mut last = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
            if *last == stamps {
                return Ok(false);
            }
            *last = stamps;
        }
        let generation = self
            .readings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let loaded = Loaded::read(&self.config, generation)?;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        Ok(true)
    }

    /// `certificate` verified again against the client CA in use now, if it was verified
    /// against earlier files (`None`: its verdict stands). A connection opened before a
    /// rotation thus loses access when its CA is rotated out, as a new one would.
    pub fn recheck(&self, certificate: &ClientCertificate) -> Option<ClientCertificate> {
        let loaded = self.current();
        (loaded.generation != certificate.generation)
            .then(|| loaded.check_client(&certificate.chain))
    }

    /// Checks the files every `every` until `stop`, and puts changed ones in use.
    pub async fn watch(self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
            match self.reload_if_changed() {
                Ok(true) => tracing::info!("TLS certificate, key or client CA changed: reloaded"),
                Ok(false) => {}
                Err(e) => tracing::error!(
                    "TLS files changed but cannot be used, keeping the ones in use: {e}"
                ),
            }
        }
    }
}

/// The stamps of the certificate, key and client CA files (`None`: missing).
fn file_stamps(config: &TlsConfig) -> Vec<Option<FileStamp>> {
    [&config.cert_file, &config.key_file, &config.client_ca_file]
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(path.as_deref()?).ok()?;
            Some(FileStamp {
                modified: meta.modified().ok(),
                len: meta.len(),
            })
        })
        .collect()
}

impl Loaded {
    /// Reads the certificate, key and client CA named in `config`, as reading `generation`.
    fn read(config: &TlsConfig, generation: u64) -> Result<Loaded, TlsError> {
        let cert_file = config
            .cert_file
            .as_deref()
            .ok_or(TlsError::Missing("cert_file"))?;
        let key_file = config
            .key_file
            .as_deref()
            .ok_or(TlsError::Missing("key_file"))?;
        let ca_file = config
            .client_ca_file
            .as_deref()
            .ok_or(TlsError::Missing("client_ca_file"))?;
        let chain = read_certs("cert_file", cert_file)?;
        let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::File {
            knob: "key_file",
            path: key_file.to_owned(),
            reason: format!("no private key: {e}"),
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in read_certs("client_ca_file", ca_file)? {
            roots.add(ca).map_err(|e| TlsError::File {
                knob: "client_ca_file",
                path: ca_file.to_owned(),
                reason: format!("not a CA certificate: {e}"),
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Setup(e.to_string()))?;
        let deferred = Arc::new(DeferredClientVerifier(client_verifier.clone()));
        let server_config = |alpn: &[&[u8]]| -> Result<TlsAcceptor, TlsError> {
            let mut server = ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Setup(e.to_string()))?
                .with_client_cert_verifier(deferred.clone())
                .with_single_cert(chain.clone(), key.clone_key())
                .map_err(|e| TlsError::Setup(format!("tls.cert_file and tls.key_file: {e}")))?;
            server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(TlsAcceptor::from(Arc::new(server)))
        };
        Ok(Loaded {
            generation,
            grpc: server_config(&[b"h2"])?,
            http: server_config(&[b"http/1.1"])?,
            client_verifier,
        })
    }

    /// Verifies a client's certificate chain against `tls.client_ca_file`, now, and reads
    /// its subject.
    fn check_client(&self, chain: &[CertificateDer<'static>]) -> ClientCertificate {
        let verdict = if chain.len() > MAX_CLIENT_CHAIN {
            Err(format!(
                "certificate verify failed: {} certificates presented, at most {MAX_CLIENT_CHAIN}",
                chain.len()
            ))
        } else {
            let (end_entity, intermediates) = chain.split_first().expect("a presented chain");
            self.client_verifier
                .verify_client_cert(end_entity, intermediates, UnixTime::now())
                .map(|_| ())
                .map_err(|e| format!("certificate verify failed: {}", explain(&e)))
        };
        let parsed = x509_parser::parse_x509_certificate(&chain[0]).ok();
        let subject = parsed.as_ref().map(|(_, cert)| cert.subject());
        let common_name = subject
            .and_then(|s| s.iter_common_name().find_map(|cn| cn.as_str().ok()))
            .map(str::to_owned);
        let units = subject
            .map(|s| {
                s.iter_organizational_unit()
                    .filter_map(|ou| ou.as_str().ok().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let not_after = parsed
            .as_ref()
            .map(|(_, cert)| cert.validity().not_after.timestamp())
            .and_then(|secs| u64::try_from(secs).ok())
            .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        ClientCertificate {
            verdict,
            common_name,
            units,
            not_after,
            chain: chain.to_vec(),
            generation: self.generation,
        }
    }
}

/// Words for the certificate errors a client can do something about.
fn explain(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match error {
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "certificate has expired".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "certificate is not valid yet".into()
        }
        // A bad signature under an issuer of the right name: another CA of the same name
        // (e.g. one rotated out) signed it.
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "certificate signed by unknown authority (not tls.client_ca_file)".into()
        }
        rustls::Error::InvalidCertificate(C::InvalidPurpose | C::InvalidPurposeContext { .. }) => {
            "certificate is not for client authentication".into()
        }
        rustls::Error::InvalidCertificate(C::Revoked) => "certificate is revoked".into(),
        other => other.to_string(),
    }
}

/// A client certificate as verified once per connection, right after the handshake.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    /// `Ok` if the chain leads to `tls.client_ca_file` and was valid at the handshake;
    /// otherwise why not.
    pub verdict: Result<(), String>,
    /// The subject's CN.
    pub common_name: Option<String>,
    /// The subject's OUs, in order.
    pub units: Vec<String>,
    /// When the leaf expires: a connection outliving it is refused from then on.
    pub not_after: Option<SystemTime>,
    /// The chain as presented, to verify again after the client CA changes.
    chain: Vec<CertificateDer<'static>>,
    /// The reading of the TLS files it was verified against.
    generation: u64,
}

fn read_certs(knob: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |reason: String| TlsError::File {
        knob,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// Asks for a client certificate and checks the handshake signature (possession of the
/// key), but leaves the chain to the check [`ApiListener`] makes right after the handshake.
#[derive(Debug)]
struct DeferredClientVerifier(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for DeferredClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Which API a listener serves (they differ in ALPN: gRPC needs HTTP/2).
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// The gRPC API (h2).
    Grpc,
    /// The HTTP API (http/1.1).
    Http,
}

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
                        let loaded = server.current();
                        let acceptor = match self.protocol {
                            Protocol::Grpc => loaded.grpc.clone(),
                            Protocol::Http => loaded.http.clone(),
                        };
                        if self.handshakes.len() >= MAX_PENDING_HANDSHAKES {
                            tracing::warn!(%addr, "too many TLS handshakes in progress: connection closed");
                            continue;
                        }
                        self.handshakes.spawn(handshake(acceptor, loaded, tcp, addr, held));
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
    acceptor: TlsAcceptor,
    server: Arc<Loaded>,
    tcp: TcpStream,
    addr: SocketAddr,
    held: Held,
) -> Option<ApiStream> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let chain: Option<Vec<CertificateDer<'static>>> = stream
                .get_ref()
                .1
                .peer_certificates()
                .filter(|chain| !chain.is_empty())
                .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect());
            let certificate = chain.map(|chain| Arc::new(server.check_client(&chain)));
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
