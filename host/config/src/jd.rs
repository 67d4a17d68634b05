//! `[jd]`: the Chainlink Job Distributor API and delivery of approved specs.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
        }
    }
}
