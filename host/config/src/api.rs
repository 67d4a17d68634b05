//! `[api]` and `[hooks.<name>]`: the APIs a node serves, their input limits, and inbound
//! webhook triggers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, SecretSource};

/// A job template started by `POST /v1/hooks/<name>`, with the request body as its spec.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HookConfig {
    /// The job type to start.
    pub job_type: String,
    /// Where the hook's bearer token comes from: `env:VARIABLE` or `file:/path`.
    pub token: String,
    /// Labels put on every job it starts.
    pub labels: BTreeMap<String, String>,
    /// Priority of its jobs (0-255).
    pub priority: u8,
    /// Attempts the plugin may end, lost ones not counted (0 means the default, 3).
    pub max_attempts: u32,
}

/// The APIs a node serves and their input limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the gRPC API.
    pub grpc_addr: String,
    /// Largest job spec accepted, in bytes.
    pub max_spec_bytes: usize,
    /// Most labels on one job.
    pub max_labels: usize,
    /// Most jobs in one batch submission (gRPC `ScheduleJobs`, REST `POST /v1/jobs:batch`).
    pub max_batch_jobs: usize,
    /// Address of the HTTP API (webhook triggers, health).
    pub http_addr: String,
    /// Largest request body a webhook trigger accepts, in bytes.
    pub max_hook_body_bytes: usize,
    /// Requests per second one client (certificate, token or address) may make on average;
    /// 0 turns rate limiting off.
    pub rate_limit_per_sec: f64,
    /// Requests one client may make at once after a quiet spell (the bucket's size).
    pub rate_limit_burst: u32,
    /// Long-lived streams (log follows, live snapshots, health watches) one client may keep
    /// open at once; 0 means no limit.
    pub max_streams_per_client: usize,
    /// How long an HTTP client has to send a request's headers, in milliseconds, counted
    /// from when its connection is ready for a request: slow senders and idle keep-alive
    /// connections are closed after it. Also how long any client (gRPC too) has to send its
    /// first bytes once connected.
    pub http_header_timeout_ms: u64,
    /// Connections one client address may hold open at once on each API; 0 means no limit.
    pub max_connections_per_address: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            grpc_addr: "0.0.0.0:50051".into(),
            max_spec_bytes: 1024 * 1024,
            max_labels: 64,
            max_batch_jobs: 1000,
            http_addr: "0.0.0.0:8080".into(),
            max_hook_body_bytes: 1024 * 1024,
            rate_limit_per_sec: 100.0,
            rate_limit_burst: 200,
            max_streams_per_client: 32,
            http_header_timeout_ms: 30_000,
            max_connections_per_address: 256,
        }
    }
}

impl ApiConfig {
    /// Checks `[api]`: listen addresses, rate limits and timeouts.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (knob, addr, example) in [
            ("grpc_addr", &self.grpc_addr, "0.0.0.0:50051"),
            ("http_addr", &self.http_addr, "0.0.0.0:8080"),
        ] {
            if addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::invalid(format!(
                    "api.{knob} {addr:?} must be an address like {example}"
                )));
            }
        }
        let rate = self.rate_limit_per_sec;
        if !(rate.is_finite() && (rate == 0.0 || rate >= 0.001)) {
            return Err(ConfigError::invalid(
                "api.rate_limit_per_sec must be 0 (off) or at least 0.001",
            ));
        }
        if rate > 0.0 && self.rate_limit_burst == 0 {
            return Err(ConfigError::invalid(
                "api.rate_limit_burst must be at least 1 when rate limiting is on",
            ));
        }
        if !(1..=10_000).contains(&self.max_batch_jobs) {
            return Err(ConfigError::invalid(
                "api.max_batch_jobs must be 1 to 10000",
            ));
        }
        if self.http_header_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "api.http_header_timeout_ms must be at least 1",
            ));
        }
        Ok(())
    }
}

impl HookConfig {
    /// Checks `[hooks.<name>]`.
    pub fn check(&self, name: &str) -> Result<(), ConfigError> {
        if !crate::is_valid_job_type(&self.job_type) {
            return Err(ConfigError::invalid(format!(
                "hooks.{name}.job_type is required: a job type (1-64 characters of a-z, 0-9, \
                 '-', '_', '.'), got {:?}",
                self.job_type
            )));
        }
        SecretSource::parse(&self.token)
            .map_err(|e| ConfigError::invalid(format!("hooks.{name}.token: {e}")))?;
        let name_ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !name_ok {
            return Err(ConfigError::invalid(format!(
                "hook name {name:?}: use letters, digits, '-' and '_'"
            )));
        }
        Ok(())
    }
}
