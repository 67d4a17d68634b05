//! `[jd]`: the Chainlink Job Distributor API and delivery of approved specs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, SecretSource};

/// The Chainlink Job Distributor API (`api.job.v1`, `api.node.v1`, `api.csa.v1` on the
/// gRPC port) and delivery of approved job specs to nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JdConfig {
    /// Serve the Job Distributor services.
    pub enabled: bool,
    /// Approve proposals at once (and deliver them); off: they wait as PENDING.
    pub auto_approve: bool,
    /// The operator's nodes file (YAML, like the CCIP deployer's nodes.yaml): each node's
    /// `chainlink_url`, `chainlink_email`, `chainlink_password`, optional `chain_configs`.
    pub nodes_file: Option<PathBuf>,
    /// Job type (and plugin id) that delivers specs to nodes; that plugin alone may read
    /// the nodes' credentials as secrets `chainlink/<node>/email|password`.
    pub delivery_job_type: String,
    /// Delivery attempts in all before it is FAILED for good.
    pub delivery_max_attempts: u32,
    /// Delay before the second delivery attempt, doubling after each.
    pub delivery_backoff_ms: u64,
    /// Longest delay between delivery attempts.
    pub delivery_backoff_max_ms: u64,
    /// How often each node's HTTP API is probed (`GET /health`) for `is_connected`.
    pub probe_interval_ms: u64,
    /// Where Chainlink nodes dial in (wsrpc: websocket over mutual TLS 1.3 with Ed25519 keys)
    /// to receive proposals and answer them; "" serves no channel. `NODE_RPC_PORT` sets the
    /// port where the file does not.
    pub wsrpc_addr: String,
    /// Where the secret that encrypts the JD's CSA private key in Redis is: `env:NAME` or
    /// `file:/path`. Unset: `CSA_KEY_ENCRYPTION_SECRET` if that variable is set, else the
    /// key is stored unencrypted (with a warning at every start).
    pub csa_key_secret: Option<String>,
    /// Largest wsrpc message a node may send; a larger one ends its session.
    pub wsrpc_max_message_bytes: usize,
    /// How long a call to a node waits for its answer before the session is dropped (the
    /// call is made again when the node reconnects).
    pub wsrpc_call_timeout_ms: u64,
    /// How often the JD pings each connected node.
    pub wsrpc_ping_interval_ms: u64,
    /// A node that answers no ping for this long is disconnected.
    pub wsrpc_pong_timeout_ms: u64,
}

impl Default for JdConfig {
    fn default() -> Self {
        JdConfig {
            enabled: true,
            auto_approve: true,
            nodes_file: None,
            delivery_job_type: "ccip-submit".into(),
            delivery_max_attempts: 10,
            delivery_backoff_ms: 1_000,
            delivery_backoff_max_ms: 60_000,
            probe_interval_ms: 10_000,
            wsrpc_addr: "0.0.0.0:42243".into(),
            csa_key_secret: None,
            wsrpc_max_message_bytes: 10 << 20,
            wsrpc_call_timeout_ms: 10_000,
            wsrpc_ping_interval_ms: 18_000,
            wsrpc_pong_timeout_ms: 20_000,
        }
    }
}

impl JdConfig {
    /// Checks `[jd]`: the channel's address, limits and the key secret's source.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if !self.wsrpc_addr.is_empty() && self.wsrpc_addr.parse::<std::net::SocketAddr>().is_err() {
            return invalid(format!(
                "jd.wsrpc_addr {:?} must be an address like 0.0.0.0:42243 (or \"\" for none)",
                self.wsrpc_addr
            ));
        }
        if let Some(source) = &self.csa_key_secret
            && let Err(e) = SecretSource::parse(source)
        {
            return invalid(format!("jd.csa_key_secret {e}"));
        }
        if !(1024..=(256 << 20)).contains(&self.wsrpc_max_message_bytes) {
            return invalid("jd.wsrpc_max_message_bytes must be 1024..=268435456".into());
        }
        for (knob, value) in [
            ("wsrpc_call_timeout_ms", self.wsrpc_call_timeout_ms),
            ("wsrpc_ping_interval_ms", self.wsrpc_ping_interval_ms),
            ("wsrpc_pong_timeout_ms", self.wsrpc_pong_timeout_ms),
        ] {
            if !(100..=3_600_000).contains(&value) {
                return invalid(format!("jd.{knob} must be 100..=3600000"));
            }
        }
        // As in wsrpc (18 s / 20 s): the deadline runs from the last pong, so a ping must go
        // out before it.
        if self.wsrpc_pong_timeout_ms <= self.wsrpc_ping_interval_ms {
            return invalid(format!(
                "jd.wsrpc_pong_timeout_ms ({}) must be longer than jd.wsrpc_ping_interval_ms ({}): \
                 a node is dropped when no pong came for that long since the last one",
                self.wsrpc_pong_timeout_ms, self.wsrpc_ping_interval_ms
            ));
        }
        Ok(())
    }

    /// Where the CSA key's secret comes from: `csa_key_secret`, else the real JD's
    /// `CSA_KEY_ENCRYPTION_SECRET` variable when `var` has it; `None`: no secret.
    pub fn csa_secret_source(&self, var: impl Fn(&str) -> Option<String>) -> Option<SecretSource> {
        match &self.csa_key_secret {
            Some(source) => SecretSource::parse(source).ok(),
            None => var("CSA_KEY_ENCRYPTION_SECRET")
                .map(|_| SecretSource::Env("CSA_KEY_ENCRYPTION_SECRET".into())),
        }
    }
}
