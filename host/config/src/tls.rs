//! `[tls]`: TLS of the gRPC and HTTP APIs, with client certificates (mTLS).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// TLS of the APIs. Clients authenticate with a certificate signed by `client_ca_file`
/// (its subject OU is the role) or with a bearer token from `[auth.tokens]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Serve TLS. `false` (or `serve --dev` without certificates) serves plaintext, with a
    /// warning at start.
    pub enabled: bool,
    /// The server's certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// The server's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// The CA that signs client certificates (PEM).
    pub client_ca_file: Option<PathBuf>,
    /// How often the three files are checked for changes, in milliseconds; changed files are
    /// read again and used for new connections (0: read only at start).
    pub reload_interval_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: true,
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            reload_interval_ms: 30_000,
        }
    }
}

impl TlsConfig {
    /// Checks `[tls]`.
    pub fn check(&self) -> Result<(), ConfigError> {
        let reload = self.reload_interval_ms;
        if reload != 0 && reload < 100 {
            return Err(ConfigError::invalid(
                "tls.reload_interval_ms must be 0 (read at start only) or at least 100",
            ));
        }
        Ok(())
    }
}
