//! `[auth]`: bearer tokens and the roles callers have.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, SecretSource};

/// Bearer tokens (`authorization: Bearer <token>`), each mapped to a role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Tokens by name; the name identifies the caller in logs and rate limits.
    pub tokens: BTreeMap<String, TokenConfig>,
}

/// One bearer token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// What the token may do.
    pub role: Role,
    /// Where the token is read (at start, and again on SIGHUP): `env:NAME` or `file:/path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Or the token's SHA-256, hex, so the config holds no usable secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// What a caller may do: from a client certificate's subject OU, or a token's `role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Only reads: the calls the APIs list as reads (get, list, stream, health, reflection)
    /// and HTTP `GET`s.
    Viewer,
}

impl Role {
    /// The role a certificate's OU names, if any.
    pub fn from_ou(ou: &str) -> Option<Role> {
        match ou.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// `admin` or `viewer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

impl AuthConfig {
    /// Checks `[auth.tokens]`: each token has exactly one of a source and a digest.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (name, token) in &self.tokens {
            match (&token.token, &token.sha256) {
                (Some(source), None) => {
                    SecretSource::parse(source).map_err(|e| {
                        ConfigError::invalid(format!("auth.tokens.{name}.token: {e}"))
                    })?;
                }
                (None, Some(digest)) => {
                    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(ConfigError::invalid(format!(
                            "auth.tokens.{name}.sha256 must be 64 hex digits (sha256sum of the token)"
                        )));
                    }
                }
                _ => {
                    return Err(ConfigError::invalid(format!(
                        "auth.tokens.{name}: set exactly one of token (env:NAME or file:/path) and sha256"
                    )));
                }
            }
        }
        Ok(())
    }
}
