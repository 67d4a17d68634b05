//! `[redis]`: the Redis every node shares.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The Redis shared by every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://...`; empty: none configured
    /// (`serve --dev` then starts a local one).
    pub url: String,
    /// Prefix of every key (and Redis Cluster hash tag); separates deployments on one Redis.
    pub prefix: String,
    /// How long FAILED, CANCELLED and DEAD jobs (record, attempts, log) are kept, in
    /// seconds.
    pub retention_secs: u64,
    /// How long SUCCEEDED jobs are kept, in seconds: short, so a steady load does not fill
    /// Redis.
    pub succeeded_retention_secs: u64,
    /// Most SUCCEEDED jobs kept (the oldest are deleted beyond it), whatever their age.
    pub succeeded_max: u64,
    /// How long an idempotency key returns its job, in seconds.
    pub idempotency_ttl_secs: u64,
    /// Most entries kept in one job's log stream.
    pub log_max_entries: usize,
    /// State folder of the local Redis started by `serve --dev`.
    pub dev_dir: PathBuf,
    /// CA certificate (PEM) for `rediss://` servers signed by a private CA.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for Redis servers that require client authentication.
    pub tls_cert_file: Option<PathBuf>,
    /// Client private key (PEM), with `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: String::new(),
            prefix: "jobhost".into(),
            retention_secs: 7 * 24 * 3600,
            succeeded_retention_secs: 3600,
            succeeded_max: 100_000,
            idempotency_ttl_secs: 24 * 3600,
            log_max_entries: 100_000,
            dev_dir: PathBuf::from(".jobhost/redis"),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl RedisConfig {
    /// Checks `[redis]`: the URL's scheme and a prefix fit for keys and hash tags.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.succeeded_retention_secs == 0 || self.succeeded_max == 0 {
            return Err(ConfigError::invalid(
                "redis.succeeded_retention_secs and redis.succeeded_max must be at least 1",
            ));
        }
        if !(self.url.is_empty()
            || self.url.starts_with("redis://")
            || self.url.starts_with("rediss://"))
        {
            return Err(ConfigError::invalid(
                "redis.url must start with redis:// or rediss://",
            ));
        }
        let prefix_ok = !self.prefix.is_empty()
            && self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !prefix_ok {
            return Err(ConfigError::invalid(format!(
                "redis.prefix {:?} must be letters, digits, '-', '_' or '.'",
                self.prefix
            )));
        }
        Ok(())
    }
}
