//! `[worker]` and `[job_types.<type>]`: how a node takes and runs jobs, and per-type
//! limits enforced cluster-wide.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Limits of one job type, enforced cluster-wide in Redis (every node sharing the Redis
/// should have the same `[job_types]`). Unset: no limit; 0 is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobTypeConfig {
    /// The id of the only plugin that may serve the type (its file name without `.wasm`);
    /// any other plugin claiming it is refused. Unset: the plugin that claims it serves it,
    /// and if two do, neither does until this names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Most jobs of the type RUNNING at once across all nodes; more stay QUEUED until a
    /// place frees (other types are not held up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    /// Most jobs of the type waiting (QUEUED + SCHEDULED, i.e. delayed or backing off before
    /// a retry); a new job beyond it is refused with RESOURCE_EXHAUSTED / 429. Overrides
    /// `worker.max_queued_per_type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued: Option<u64>,
}

/// How a node takes and runs jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Jobs this node runs at once; 0 means `runtime.max_instances`.
    pub concurrency: u32,
    /// Lease on a claimed job, in ms: if the node does not renew it (it died, or lost
    /// Redis) within this time, another node re-queues the job.
    pub lease_ms: u64,
    /// Interval of node heartbeats, in ms; the registration expires after three missed.
    pub heartbeat_ms: u64,
    /// On SIGTERM, time running jobs get to finish before they are stopped and re-queued.
    pub shutdown_grace_ms: u64,
    /// Fallback poll interval for new work when no notification arrives, in ms.
    pub poll_ms: u64,
    /// Queue limit (QUEUED + SCHEDULED jobs) of every job type without its own
    /// `job_types.<type>.max_queued`; unset: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_per_type: Option<u64>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 0,
            lease_ms: 30_000,
            heartbeat_ms: 5_000,
            shutdown_grace_ms: 10_000,
            poll_ms: 1_000,
            max_queued_per_type: None,
        }
    }
}

impl WorkerConfig {
    /// Checks `[worker]`.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.lease_ms < 1_000 || self.heartbeat_ms == 0 || self.poll_ms == 0 {
            return Err(ConfigError::invalid(
                "worker.lease_ms must be at least 1000; heartbeat_ms and poll_ms at least 1",
            ));
        }
        if self.max_queued_per_type == Some(0) {
            return Err(ConfigError::invalid(
                "worker.max_queued_per_type must be at least 1 (leave it out for no limit)",
            ));
        }
        Ok(())
    }
}

/// Whether `job_type` is a valid job type name: 1-64 characters of `a-z 0-9 - _ .`. Plugins
/// that describe another are refused at load, jobs of another at submission.
pub fn is_valid_job_type(job_type: &str) -> bool {
    (1..=64).contains(&job_type.len())
        && job_type.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.')
        })
}

impl JobTypeConfig {
    /// Checks `[job_types.<job_type>]`: a real type name, limits of at least 1, a plugin id
    /// if one is named.
    pub fn check(&self, job_type: &str) -> Result<(), ConfigError> {
        if !is_valid_job_type(job_type) {
            return Err(ConfigError::invalid(format!(
                "job_types: {job_type:?} is not a job type name (1-64 characters of a-z, 0-9, \
                 '-', '_', '.')"
            )));
        }
        if let Some(plugin) = &self.plugin
            && (plugin.is_empty() || plugin.chars().any(|c| c.is_control() || c == '/'))
        {
            return Err(ConfigError::invalid(format!(
                "job_types.{job_type}.plugin: {plugin:?} is not a plugin id (a file name in the \
                 plugins folder, without .wasm)"
            )));
        }
        for (knob, value) in [
            ("max_concurrent", self.max_concurrent),
            ("max_queued", self.max_queued),
        ] {
            if value == Some(0) {
                return Err(ConfigError::invalid(format!(
                    "job_types.{job_type}.{knob} must be at least 1 (leave it out for no limit)"
                )));
            }
        }
        Ok(())
    }
}
