//! A plugin's policy: the grants and limits its instances get, read from its config
//! section once, at load.

use std::sync::Arc;
use std::time::Duration;

use jobhost_config::{Config, SecretSource};

use crate::capabilities;
use crate::capabilities::destinations::parse_network;
use crate::capabilities::http::HostPattern;
use crate::capabilities::kv::KvLimits;

/// The sandbox a plugin's instances get: grants and limits from config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginPolicy {
    /// The plugin id (its config section).
    pub id: String,
    /// Granted capability names.
    pub grants: Vec<String>,
    /// Where it may send HTTP requests.
    pub allowed_hosts: Arc<[HostPattern]>,
    /// Loopback and private networks it may reach (`plugins.<id>.allow_private`).
    pub allow_private: Arc<[ipnet::IpNet]>,
    /// Connect and response timeout of its HTTP requests.
    pub http_timeout: Duration,
    /// Largest HTTP response body it may receive.
    pub http_max_response_bytes: u64,
    /// Executables it may start (empty: any).
    pub executables: Arc<[String]>,
    /// Where its secrets come from, by name.
    pub secrets: Arc<std::collections::BTreeMap<String, SecretSource>>,
    /// Limits of its key-value state.
    pub kv_limits: KvLimits,
    /// Memory cap of one instance, in bytes.
    pub memory_bytes: usize,
    /// Default deadline of one job attempt.
    pub timeout: Duration,
    /// Job attempts one instance may serve (`plugins.<id>.reuse`; 1: a fresh one each).
    pub reuse: u32,
}

impl PluginPolicy {
    /// The policy of plugin `id` under `config`.
    pub fn from_config(config: &Config, id: &str) -> Self {
        let plugin = config.plugin(id);
        let kv_limits = KvLimits::of(&plugin);
        let reuse = plugin.reuse();
        let mb = plugin
            .memory_limit_mb
            .unwrap_or(config.runtime.memory_limit_mb);
        PluginPolicy {
            id: id.to_owned(),
            grants: plugin.grants,
            // Patterns were checked with the config; a bad one here is simply dropped.
            allowed_hosts: plugin
                .allowed_hosts
                .iter()
                .filter_map(|p| HostPattern::parse(p).ok())
                .collect(),
            allow_private: plugin
                .allow_private
                .iter()
                .filter_map(|n| parse_network(n).ok())
                .collect(),
            http_timeout: Duration::from_millis(config.runtime.http_timeout_ms),
            http_max_response_bytes: config.runtime.http_max_response_bytes,
            executables: plugin.executables.iter().cloned().collect(),
            secrets: Arc::new(
                plugin
                    .secrets
                    .iter()
                    .filter_map(|(name, source)| {
                        Some((name.clone(), SecretSource::parse(source).ok()?))
                    })
                    .collect(),
            ),
            kv_limits,
            reuse,
            memory_bytes: usize::try_from(mb * 1024 * 1024).unwrap_or(usize::MAX),
            timeout: Duration::from_millis(
                plugin
                    .timeout_ms
                    .unwrap_or(config.runtime.default_timeout_ms),
            ),
        }
    }

    /// True if the capability `name` is granted (always-granted ones included).
    pub fn is_granted(&self, name: &str) -> bool {
        capabilities::ALL
            .iter()
            .any(|c| c.name() == name && c.always_granted())
            || self.grants.iter().any(|g| g == name)
    }
}
