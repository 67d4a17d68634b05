//! TLS of the APIs: the server's certificate, client certificates (mTLS), reloaded when
//! their files change; [`super::listener`] does the handshakes.
//!
//! Client certificates are *requested* in the handshake but do not fail it: the chain is
//! verified once, right after the handshake, and the verdict travels with the connection
//! ([`ClientCertificate`]). A client without one, or with one the CA did not sign, still
//! connects, and its calls answer `UNAUTHENTICATED` / 401 with the reason ("certificate has
//! expired") instead of a bare handshake failure; [`super::auth`] decides what the verdict
//! means. The handshake still proves that the client holds the certificate's private key.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

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

/// Most certificates a client may present (leaf and intermediates): bounds the work of
/// verifying a chain the client chose.
const MAX_CLIENT_CHAIN: usize = 4;

/// Which API a listener serves (they differ in ALPN: gRPC needs HTTP/2).
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// The gRPC API (h2).
    Grpc,
    /// The HTTP API (http/1.1).
    Http,
}

/// One connection's TLS handshake, with the certificates in use when the connection came.
pub struct Handshake {
    acceptor: TlsAcceptor,
    loaded: Arc<Loaded>,
}

impl Handshake {
    /// Completes the handshake on `tcp`: the stream, and the client's certificate if it sent
    /// one, verified (the verdict travels with the connection; it never fails the handshake).
    pub async fn accept(
        self,
        tcp: TcpStream,
    ) -> io::Result<(TlsStream<TcpStream>, Option<Arc<ClientCertificate>>)> {
        let stream = self.acceptor.accept(tcp).await?;
        let chain: Option<Vec<CertificateDer<'static>>> = stream
            .get_ref()
            .1
            .peer_certificates()
            .filter(|chain| !chain.is_empty())
            .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect());
        let certificate = chain.map(|chain| Arc::new(self.loaded.check_client(&chain)));
        Ok((stream, certificate))
    }
}

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

    /// The handshake of a new connection to `protocol`'s API, with the files as last read.
    pub fn handshake(&self, protocol: Protocol) -> Handshake {
        let loaded = self.current();
        let acceptor = match protocol {
            Protocol::Grpc => loaded.grpc.clone(),
            Protocol::Http => loaded.http.clone(),
        };
        Handshake { acceptor, loaded }
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
