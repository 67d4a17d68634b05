//! Who may call the APIs: authentication (a client certificate whose subject OU is the role,
//! as in the Job Worker this replaces, or a bearer token), authorization (admin may do
//! everything, viewer only reads) a rate limit per caller and a cap on its open streams.
//!
//! The transports only translate: [`super::grpc`] answers `UNAUTHENTICATED`,
//! `PERMISSION_DENIED` and `RESOURCE_EXHAUSTED`, [`super::http`] 401, 403 and 429.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::listener::PeerInfo;
use super::places::{Place, Places};
use super::ratelimit::RateLimiter;
use super::tls::{ClientCertificate, ServerTls, TlsError};
use jobhost_config::{Config, SecretSource};

/// What a caller may do (admin: everything; viewer: only reads), as configured.
pub use jobhost_config::Role;

/// Whether `role` may perform an operation of `access`.
fn allows(role: Role, access: Access) -> bool {
    match (role, access) {
        (Role::Admin, _) | (Role::Viewer, Access::Read) => true,
        (Role::Viewer, Access::Write) => false,
    }
}

/// Whether an operation changes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Get, list, stream, health.
    Read,
    /// Everything else.
    Write,
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A client certificate signed by `tls.client_ca_file`.
    Certificate,
    /// A bearer token from `[auth.tokens]`.
    Token,
    /// Nothing: a plaintext API without tokens lets everyone in.
    Anonymous,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Certificate CN, token name, or `anonymous@<address>`.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// How it authenticated.
    pub credential: Credential,
}

impl Identity {
    /// The caller as the audit trail records it (a job's `submitted_by`, a cancel's
    /// reason): `certificate:<CN>`, `token:<name>` or `anonymous:<address>`.
    pub fn principal(&self) -> String {
        match self.credential {
            Credential::Certificate => format!("certificate:{}", self.name),
            Credential::Token => format!("token:{}", self.name),
            Credential::Anonymous => {
                let addr = self.name.strip_prefix("anonymous@").unwrap_or(&self.name);
                format!("anonymous:{addr}")
            }
        }
    }
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    /// No credential, or one that does not check out.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but the role does not allow the operation (or the certificate names
    /// no role).
    #[error("{0}")]
    PermissionDenied(String),
    /// Over the caller's rate limit.
    #[error(
        "rate limit exceeded for {client}: at most {per_sec} requests per second \
         (api.rate_limit_per_sec); retry in {} ms",
        retry_after.as_millis()
    )]
    RateLimited {
        /// The caller.
        client: String,
        /// The configured rate.
        per_sec: f64,
        /// When a request will be allowed again.
        retry_after: Duration,
    },
    /// The caller already holds as many long-lived streams as it may.
    #[error(
        "too many open streams for {client}: at most {limit} at once \
         (api.max_streams_per_client); close one first"
    )]
    TooManyStreams {
        /// The caller.
        client: String,
        /// The configured limit.
        limit: usize,
    },
}

/// The token of an `authorization: Bearer <token>` header value (scheme in any case,
/// surrounding blanks trimmed), if it is one.
pub fn bearer_token(header: &str) -> Option<&str> {
    header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

/// A configured token: its name and role, found by the SHA-256 of its value.
#[derive(Debug, Clone)]
struct Token {
    name: String,
    role: Role,
}

/// Authenticates and authorizes API calls; one per node, shared by gRPC and HTTP.
pub struct Gate {
    tls: Option<ServerTls>,
    /// The tokens by digest, as last read ([`Gate::reload_tokens`] reads them again).
    tokens: std::sync::RwLock<HashMap<[u8; 32], Token>>,
    /// The configured tokens, to read again.
    token_config: std::collections::BTreeMap<String, jobhost_config::TokenConfig>,
    limiter: Option<RateLimiter>,
    /// Open streams per client; `None` when `api.max_streams_per_client` is 0 (no limit).
    streams: Option<Arc<Places>>,
    rate_per_sec: f64,
}

impl std::fmt::Debug for Gate {
    // Token digests stay out of debug output: a weak token could be guessed from one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("tls", &self.tls.is_some())
            .field("tokens", &self.token_config.len())
            .field("rate_per_sec", &self.rate_per_sec)
            .finish()
    }
}

/// Errors building the [`Gate`] at start.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// TLS files missing or unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A token's source has no value.
    #[error("auth.tokens.{name}: {reason}")]
    Token {
        /// The token's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

impl Gate {
    /// Builds the gate from `config`. Plaintext when `tls.enabled = false`, or with `dev`
    /// when no certificate is configured; the caller warns about it.
    pub fn from_config(config: &Config, dev: bool) -> Result<Gate, GateError> {
        let plaintext = !config.tls.enabled || (dev && config.tls.cert_file.is_none());
        let tls = if plaintext {
            None
        } else {
            Some(ServerTls::load(&config.tls)?)
        };
        let tokens = read_tokens(&config.auth.tokens)?;
        let api = &config.api;
        let limiter = (api.rate_limit_per_sec > 0.0)
            .then(|| RateLimiter::new(api.rate_limit_per_sec, api.rate_limit_burst));
        let streams =
            (api.max_streams_per_client > 0).then(|| Places::new(api.max_streams_per_client));
        Ok(Gate {
            tls,
            tokens: std::sync::RwLock::new(tokens),
            token_config: config.auth.tokens.clone(),
            limiter,
            streams,
            rate_per_sec: api.rate_limit_per_sec,
        })
    }

    /// Reads the configured tokens again (a `file:` token rotated in place) and answers how
    /// many there are. A token that has no usable value now fails the whole reading and the
    /// tokens in use are kept.
    pub fn reload_tokens(&self) -> Result<usize, GateError> {
        let tokens = read_tokens(&self.token_config)?;
        let count = tokens.len();
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = tokens;
        Ok(count)
    }

    /// The server's TLS, or `None` when the APIs are plaintext.
    pub fn tls(&self) -> Option<&ServerTls> {
        self.tls.as_ref()
    }

    /// Who is calling: from a bearer token in `authorization` if there is one, else from the
    /// connection's client certificate; plaintext without tokens lets everyone in as admin.
    pub fn authenticate(
        &self,
        peer: Option<&PeerInfo>,
        authorization: Option<&str>,
    ) -> Result<Identity, AuthError> {
        if let Some(header) = authorization {
            return self.token_identity(header);
        }
        let certificate = peer.and_then(|p| p.certificate.as_deref());
        if let (Some(tls), Some(certificate)) = (&self.tls, certificate) {
            // Verified against files since replaced: verify again against the current ones.
            return match tls.recheck(certificate) {
                Some(current) => certificate_identity(&current),
                None => certificate_identity(certificate),
            };
        }
        if self.tls.is_none() && self.token_config.is_empty() {
            let name = match peer {
                Some(peer) => format!("anonymous@{}", peer.addr.ip()),
                None => "anonymous".to_owned(),
            };
            return Ok(Identity {
                name,
                role: Role::Admin,
                credential: Credential::Anonymous,
            });
        }
        let expected = if self.tls.is_some() {
            "no client certificate or bearer token (present a certificate signed by \
             tls.client_ca_file, or send authorization: Bearer <token>)"
        } else {
            "no bearer token (send authorization: Bearer <token>; see auth.tokens)"
        };
        Err(AuthError::Unauthenticated(format!(
            "failed to extract client role: {expected}"
        )))
    }

    fn token_identity(&self, header: &str) -> Result<Identity, AuthError> {
        let token = bearer_token(header).ok_or_else(|| {
            AuthError::Unauthenticated("the authorization header must be `Bearer <token>`".into())
        })?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // The map is keyed by digest: looking one up compares digests, not the secret.
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        let found = tokens
            .get(&digest)
            .ok_or_else(|| AuthError::Unauthenticated("invalid bearer token".into()))?;
        Ok(Identity {
            name: found.name.clone(),
            role: found.role,
            credential: Credential::Token,
        })
    }

    /// Refuses `identity` an operation its role does not allow.
    pub fn authorize(
        &self,
        identity: &Identity,
        operation: &str,
        access: Access,
    ) -> Result<(), AuthError> {
        if allows(identity.role, access) {
            return Ok(());
        }
        Err(AuthError::PermissionDenied(format!(
            "role {} is not allowed to perform operation {operation} ({} {})",
            identity.role.as_str(),
            match identity.credential {
                Credential::Certificate => "certificate",
                Credential::Token => "token",
                Credential::Anonymous => "caller",
            },
            identity.name
        )))
    }

    /// Takes one request from `identity`'s allowance.
    pub fn admit(&self, identity: &Identity) -> Result<(), AuthError> {
        // Certificates and tokens are separate namespaces: a token named like a CN must not
        // use up that certificate's allowance.
        let kind = match identity.credential {
            Credential::Certificate => "certificate",
            Credential::Token => "token",
            Credential::Anonymous => "anonymous",
        };
        self.take(&format!("{kind}:{}", identity.name), &identity.name)
    }

    fn take(&self, bucket: &str, client: &str) -> Result<(), AuthError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .take(bucket)
            .map_err(|retry_after| AuthError::RateLimited {
                client: client.to_owned(),
                per_sec: self.rate_per_sec,
                retry_after,
            })
    }

    /// Takes a place for a long-lived stream (see [`crate::api::places`]) of `identity`,
    /// to be held as long as the stream is open; `None` when streams are not limited.
    fn open_stream(&self, identity: &Identity) -> Result<Option<Place>, AuthError> {
        let Some(streams) = &self.streams else {
            return Ok(None);
        };
        match streams.open(&identity.principal()) {
            Some(slot) => Ok(Some(slot)),
            None => Err(AuthError::TooManyStreams {
                client: identity.principal(),
                limit: streams.limit(),
            }),
        }
    }

    /// Takes one request from the allowance of an unauthenticated caller of an open
    /// endpoint that does its own checks (a webhook trigger), by address.
    pub fn admit_address(&self, peer: Option<&PeerInfo>) -> Result<(), AuthError> {
        let addr = peer.map_or("unknown".to_owned(), |p| p.addr.ip().to_string());
        self.take(&format!("open@{addr}"), &addr)
    }

    /// Authenticates, authorizes and rate-limits `call`; for a streaming call, also takes a
    /// stream place, to be held as long as its answer streams.
    pub fn check(
        &self,
        peer: Option<&PeerInfo>,
        authorization: Option<&str>,
        call: &Call<'_>,
    ) -> Result<(Identity, Option<Place>), AuthError> {
        let identity = match self.authenticate(peer, authorization) {
            Ok(identity) => identity,
            Err(refusal) => {
                // Failed attempts use up the address's allowance, so guessing is slow.
                let addr = peer.map_or("unknown".to_owned(), |p| p.addr.ip().to_string());
                self.take(&format!("failed@{addr}"), &addr)?;
                return Err(refusal);
            }
        };
        self.authorize(&identity, call.operation, call.access)?;
        if call.counted {
            self.admit(&identity)?;
        }
        let place = if call.streaming {
            self.open_stream(&identity)?
        } else {
            None
        };
        Ok((identity, place))
    }
}

/// Reads the configured tokens' values (from their `env:` or `file:` sources) and keys them
/// by digest; fails naming the first token that has no usable value or repeats another.
fn read_tokens(
    configured: &std::collections::BTreeMap<String, jobhost_config::TokenConfig>,
) -> Result<HashMap<[u8; 32], Token>, GateError> {
    let mut tokens = HashMap::new();
    for (name, token) in configured {
        let token_error = |reason: String| GateError::Token {
            name: name.clone(),
            reason,
        };
        let digest: [u8; 32] = match (&token.token, &token.sha256) {
            (Some(source), _) => {
                let source = SecretSource::parse(source).map_err(token_error)?;
                let value = source.read().ok_or_else(|| {
                    token_error(format!("{} has no value", describe_source(&source)))
                })?;
                // As the request side does: a secret file's trailing newline is not part
                // of the token.
                let value = value.trim();
                if value.len() < 16 {
                    return Err(token_error(
                        "the token is shorter than 16 characters; use e.g. `openssl rand -hex 32`"
                            .into(),
                    ));
                }
                Sha256::digest(value.as_bytes()).into()
            }
            (None, Some(hex_digest)) => {
                let bytes = hex::decode(hex_digest).map_err(|e| token_error(e.to_string()))?;
                bytes
                    .try_into()
                    .map_err(|_| token_error("sha256 must be 32 bytes".into()))?
            }
            (None, None) => return Err(token_error("no token or sha256".into())),
        };
        let entry = Token {
            name: name.clone(),
            role: token.role,
        };
        if let Some(other) = tokens.insert(digest, entry) {
            return Err(token_error(format!(
                "the same token as auth.tokens.{}: give each client its own",
                other.name
            )));
        }
    }
    Ok(tokens)
}

/// One call as the transports describe it to [`Gate::check`].
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// What it does, for messages: `JobScheduler/schedule_job`, `POST /v1/jobs`.
    pub operation: &'a str,
    /// Whether it only reads.
    pub access: Access,
    /// Whether it uses up the caller's rate-limit allowance (health checks do not).
    pub counted: bool,
    /// Whether its answer streams for as long as the client wants (it then holds one of the
    /// caller's stream places).
    pub streaming: bool,
}

fn describe_source(source: &SecretSource) -> String {
    match source {
        SecretSource::Env(name) => format!("environment variable {name}"),
        SecretSource::File(path) => format!("file {}", path.display()),
    }
}

/// The identity in a verified certificate: CN is the name, the first OU naming a role is
/// the role.
fn certificate_identity(certificate: &ClientCertificate) -> Result<Identity, AuthError> {
    certificate
        .verdict
        .clone()
        .map_err(AuthError::Unauthenticated)?;
    if certificate.not_after.is_some_and(|t| SystemTime::now() > t) {
        return Err(AuthError::Unauthenticated(
            "certificate verify failed: certificate has expired (since the connection opened)"
                .into(),
        ));
    }
    let name = certificate
        .common_name
        .clone()
        .unwrap_or_else(|| "(no CN)".into());
    match certificate.units.iter().find_map(|ou| Role::from_ou(ou)) {
        Some(role) => Ok(Identity {
            name,
            role,
            credential: Credential::Certificate,
        }),
        None => Err(AuthError::PermissionDenied(format!(
            "failed to extract client role: certificate {name:?} has no role \
             (its subject OU must be admin or viewer)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(config: &str, dev: bool) -> Gate {
        let config = Config::from_toml(config).unwrap();
        Gate::from_config(&config, dev).unwrap()
    }

    #[test]
    fn roles_come_from_the_ou() {
        assert_eq!(Role::from_ou("admin"), Some(Role::Admin));
        assert_eq!(Role::from_ou(" Viewer "), Some(Role::Viewer));
        assert_eq!(Role::from_ou("operator"), None);
    }

    #[test]
    fn tls_without_files_names_the_missing_knob() {
        let config = Config::default();
        let err = Gate::from_config(&config, false).unwrap_err().to_string();
        assert!(
            err.contains("tls.cert_file") && err.contains("certs init"),
            "{err}"
        );
        // --dev without certificates serves plaintext.
        assert!(Gate::from_config(&config, true).unwrap().tls().is_none());
    }

    #[test]
    fn plaintext_without_tokens_is_anonymous_admin_and_with_tokens_requires_one() {
        let open = gate("[tls]\nenabled = false\n", false);
        let who = open.authenticate(None, None).unwrap();
        assert_eq!(
            (who.role, who.credential),
            (Role::Admin, Credential::Anonymous)
        );

        let digest = hex::encode(Sha256::digest(b"0123456789abcdef-viewer"));
        let closed = gate(
            &format!(
                "[tls]\nenabled = false\n[auth.tokens.grafana]\nrole = \"viewer\"\nsha256 = \"{digest}\"\n"
            ),
            false,
        );
        let err = closed.authenticate(None, None).unwrap_err();
        assert!(matches!(err, AuthError::Unauthenticated(_)), "{err}");
        let err = closed
            .authenticate(None, Some("Bearer wrong-token-value"))
            .unwrap_err();
        assert_eq!(
            err,
            AuthError::Unauthenticated("invalid bearer token".into())
        );
        let who = closed
            .authenticate(None, Some("Bearer 0123456789abcdef-viewer"))
            .unwrap();
        assert_eq!((who.name.as_str(), who.role), ("grafana", Role::Viewer));
        let err = closed
            .authorize(&who, "schedule_job", Access::Write)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "role viewer is not allowed to perform operation schedule_job (token grafana)"
        );
        closed.authorize(&who, "list_jobs", Access::Read).unwrap();
    }

    #[test]
    fn short_or_missing_token_values_are_refused_at_start() {
        let config = Config::from_toml(
            "[tls]\nenabled = false\n[auth.tokens.ci]\nrole = \"admin\"\ntoken = \"env:JOBHOST_TEST_NO_SUCH_VARIABLE\"\n",
        )
        .unwrap();
        let err = Gate::from_config(&config, false).unwrap_err().to_string();
        assert!(
            err.contains("auth.tokens.ci") && err.contains("JOBHOST_TEST_NO_SUCH_VARIABLE"),
            "{err}"
        );
    }
}
