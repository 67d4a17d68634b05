//! `[plugins.<id>]`: what one plugin is granted and its limits. The capabilities check
//! their own fields (grant names, host patterns, key-value limits) when the runtime starts;
//! this module checks what is not a capability's (secret sources, memory, instance reuse).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, SecretSource};

/// What one plugin is granted, beyond the basics every plugin gets (logging, progress,
/// clocks, random, and WASI with nothing opened).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Capabilities granted, by name (the runtime's capabilities: `http`, `network`,
    /// `process`, `kv`); empty denies all.
    pub grants: Vec<String>,
    /// Memory cap of one instance in MiB (overrides `runtime.memory_limit_mb`).
    pub memory_limit_mb: Option<u64>,
    /// Deadline of one attempt in ms (overrides `runtime.default_timeout_ms`).
    pub timeout_ms: Option<u64>,
    /// Hosts the plugin may send HTTP requests to (with the `http` grant): `*`,
    /// `example.com`, `https://*.example.com`, `http://127.0.0.1:8080`. Empty denies all.
    pub allowed_hosts: Vec<String>,
    /// Loopback and private networks the plugin may reach (with `network` or `http`), e.g.
    /// `10.0.0.0/8` or `127.0.0.1`; empty: none. The node's own services, link-local and
    /// cloud metadata addresses stay refused whatever this says.
    pub allow_private: Vec<String>,
    /// Secrets the plugin may read by name: `env:VARIABLE` or `file:/path` (never the value
    /// itself, so config files can be shared and logged).
    pub secrets: BTreeMap<String, String>,
    /// Executables the plugin may start (with the `process` grant); empty allows any.
    pub executables: Vec<String>,
    /// Most keys the plugin may keep in its key-value state (with the `kv` grant); unset:
    /// 1000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_max_keys: Option<u64>,
    /// Largest value, in bytes, the plugin may store under one key (with the `kv` grant);
    /// unset: 64 KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_max_value_bytes: Option<u64>,
    /// Job attempts one instance may serve, 1 to [`MAX_REUSE`]; unset or 1: a fresh instance
    /// per attempt. Above 1 an instance is kept between attempts (its memory, globals and
    /// caches with it) and replaced after that many, or at once after a trap, deadline,
    /// cancellation or memory-limit hit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse: Option<u32>,
}

/// Upper bound of `plugins.<id>.reuse`: an instance is replaced at least this often.
pub const MAX_REUSE: u32 = 1_000_000;

impl PluginConfig {
    /// Job attempts one instance may serve (`reuse`, 1 when unset).
    pub fn reuse(&self) -> u32 {
        self.reuse.unwrap_or(1)
    }

    /// Checks what of `[plugins.<id>]` is not a capability's own: secret sources, the
    /// memory cap and instance reuse. (Each capability checks its fields when the runtime
    /// is built.)
    pub fn check(&self, id: &str) -> Result<(), ConfigError> {
        for (name, source) in &self.secrets {
            SecretSource::parse(source)
                .map_err(|e| ConfigError::invalid(format!("plugins.{id}.secrets.{name}: {e}")))?;
        }
        if let Some(mb) = self.memory_limit_mb {
            crate::runtime::check_memory_limit(&format!("plugins.{id}.memory_limit_mb"), mb)?;
        }
        if let Some(reuse) = self.reuse
            && !(1..=MAX_REUSE).contains(&reuse)
        {
            return Err(ConfigError::invalid(format!(
                "plugins.{id}.reuse must be between 1 and {MAX_REUSE} (1: a fresh instance \
                 per attempt), got {reuse}"
            )));
        }
        Ok(())
    }
}
