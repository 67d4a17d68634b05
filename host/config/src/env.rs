//! `JOBHOST_*` environment overrides (and the names kept from the services jobhost replaces:
//! `JD_PORT`, `PORT`, `NODE_RPC_PORT`, `JD_LOG_LEVEL`, `CSA_KEY_ENCRYPTION_SECRET`).

use std::path::PathBuf;

use crate::{Config, ConfigError, LogFormat};

impl Config {
    /// Applies environment overrides, reading variables through `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = var("JOBHOST_REDIS_URL") {
            self.redis.url = v;
        }
        if let Some(v) = var("JOBHOST_HISTORY_URL") {
            self.history.postgres_url = v;
        }
        if let Some(v) = var("JOBHOST_REDIS_PREFIX") {
            self.redis.prefix = v;
        }
        if let Some(v) = var("JOBHOST_GRPC_ADDR") {
            self.api.grpc_addr = v;
        }
        if let Some(v) = var("JOBHOST_HTTP_ADDR") {
            self.api.http_addr = v;
        }
        if let Some(v) = var("JOBHOST_JD_WSRPC_ADDR") {
            self.jd.wsrpc_addr = v;
        }
        if let Some(v) = var("JOBHOST_LOG_FORMAT") {
            self.log.format = match v.trim().to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                _ => {
                    return Err(ConfigError::Env {
                        name: "JOBHOST_LOG_FORMAT",
                        value: v,
                        reason: "text or json",
                    });
                }
            };
        }
        if let Some(v) = var("JOBHOST_LOG")
            .or_else(|| var("RUST_LOG"))
            .or_else(|| var("JD_LOG_LEVEL"))
        {
            self.log.level = Some(v);
        }
        if let Some(v) = var("JOBHOST_RATE_LIMIT_PER_SEC") {
            self.api.rate_limit_per_sec = parse_env("JOBHOST_RATE_LIMIT_PER_SEC", v)?;
        }
        if let Some(v) = var("JOBHOST_TLS_ENABLED") {
            self.tls.enabled = parse_env("JOBHOST_TLS_ENABLED", v)?;
        }
        if let Some(v) = var("JOBHOST_TLS_CERT_FILE") {
            self.tls.cert_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("JOBHOST_TLS_KEY_FILE") {
            self.tls.key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("JOBHOST_TLS_CLIENT_CA_FILE") {
            self.tls.client_ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("JOBHOST_TLS_RELOAD_INTERVAL_MS") {
            self.tls.reload_interval_ms = parse_env("JOBHOST_TLS_RELOAD_INTERVAL_MS", v)?;
        }
        if let Some(v) = var("JOBHOST_CONCURRENCY") {
            self.worker.concurrency = parse_env("JOBHOST_CONCURRENCY", v)?;
        }
        if let Some(v) = var("JOBHOST_MAX_QUEUED_PER_TYPE") {
            self.worker.max_queued_per_type = Some(parse_env("JOBHOST_MAX_QUEUED_PER_TYPE", v)?);
        }
        let rt = &mut self.runtime;
        if let Some(v) = var("JOBHOST_PLUGINS_DIR") {
            rt.plugins_dir = PathBuf::from(v);
        }
        if let Some(v) = var("JOBHOST_CACHE") {
            rt.cache = parse_env("JOBHOST_CACHE", v)?;
        }
        if let Some(v) = var("JOBHOST_CACHE_DIR") {
            rt.cache_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = var("JOBHOST_DEFAULT_TIMEOUT_MS") {
            rt.default_timeout_ms = parse_env("JOBHOST_DEFAULT_TIMEOUT_MS", v)?;
        }
        if let Some(v) = var("JOBHOST_MEMORY_LIMIT_MB") {
            rt.memory_limit_mb = parse_env("JOBHOST_MEMORY_LIMIT_MB", v)?;
        }
        if let Some(v) = var("JOBHOST_MAX_INSTANCES") {
            rt.max_instances = parse_env("JOBHOST_MAX_INSTANCES", v)?;
        }
        if let Some(v) = var("JOBHOST_POOLING") {
            rt.pooling = parse_env("JOBHOST_POOLING", v)?;
        }
        Ok(())
    }
}

pub(crate) fn parse_env<T: std::str::FromStr>(
    name: &'static str,
    value: String,
) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Env {
        name,
        value,
        reason: std::any::type_name::<T>(),
    })
}
