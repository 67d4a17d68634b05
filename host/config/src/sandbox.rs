//! `[sandbox]`: limits of native job processes (the `process` capability).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Limits of native job processes. Whatever a plugin asks for is clamped to the maxima.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// CPU percent of one core when the job does not say.
    pub default_cpu_percent: u32,
    /// Highest CPU percent a job may have.
    pub max_cpu_percent: u32,
    /// Memory cap in MiB when the job does not say.
    pub default_memory_mb: u64,
    /// Highest memory cap in MiB.
    pub max_memory_mb: u64,
    /// Process/thread cap when the job does not say (a fork bomb hits it).
    pub default_pids: u64,
    /// Highest process/thread cap.
    pub max_pids: u64,
    /// On stop: time between SIGTERM to the process group and SIGKILL to the whole cgroup.
    pub stop_grace_ms: u64,
    /// Where the cgroup filesystem is mounted.
    pub cgroup_root: PathBuf,
    /// Where no writable cgroup hierarchy exists (not root, no cgroupfs), run processes
    /// anyway, without limits (a warning per job). Off: such jobs are refused.
    pub allow_unconfined: bool,
    /// Empty job cgroups kept ready with the default limits, so starting a process does not
    /// wait for one to be created (0: create each when its job starts).
    pub warm_cgroups: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            default_cpu_percent: 100,
            max_cpu_percent: 100,
            default_memory_mb: 512,
            max_memory_mb: 4096,
            default_pids: 512,
            max_pids: 4096,
            stop_grace_ms: 100,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            allow_unconfined: false,
            warm_cgroups: 4,
        }
    }
}

/// The most empty cgroups a node keeps ready.
const MAX_WARM_CGROUPS: usize = 256;

impl SandboxConfig {
    /// Checks `[sandbox]`: each default within 1 and its maximum; a bounded warm pool.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.warm_cgroups > MAX_WARM_CGROUPS {
            return Err(ConfigError::invalid(format!(
                "sandbox.warm_cgroups must be at most {MAX_WARM_CGROUPS}"
            )));
        }
        for (name, default, max) in [
            (
                "cpu_percent",
                u64::from(self.default_cpu_percent),
                u64::from(self.max_cpu_percent),
            ),
            ("memory_mb", self.default_memory_mb, self.max_memory_mb),
            ("pids", self.default_pids, self.max_pids),
        ] {
            if default == 0 || default > max {
                return Err(ConfigError::invalid(format!(
                    "sandbox.default_{name} ({default}) must be between 1 and sandbox.max_{name} ({max})"
                )));
            }
        }
        Ok(())
    }
}
