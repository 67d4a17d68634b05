//! `[runtime]`: the WebAssembly runtime: plugins folder, cache, limits.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Settings of the component runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Folder whose `.wasm` files are the loaded plugins; watched for changes.
    pub plugins_dir: PathBuf,
    /// Keep compiled components on disk so a restart does not recompile.
    pub cache: bool,
    /// Folder of the compiled-component cache; default `$XDG_CACHE_HOME/jobhost` or
    /// `~/.cache/jobhost`. One folder per node: a node prunes entries it does not use.
    pub cache_dir: Option<PathBuf>,
    /// Wall-clock deadline of one job attempt, in milliseconds, unless the job sets its own.
    pub default_timeout_ms: u64,
    /// Linear-memory cap of one plugin instance, in MiB, unless the plugin's config sets one.
    pub memory_limit_mb: u64,
    /// Maximum plugin instances alive at once; further jobs wait for a free slot.
    pub max_instances: u32,
    /// Use the pooling instance allocator (falls back to on-demand if it cannot reserve memory).
    pub pooling: bool,
    /// Bytes of log (host `log` calls plus stdout/stderr) kept per job; the rest is dropped.
    pub log_limit_bytes: usize,
    /// Time a cancelled plugin gets to return on its own before it is interrupted, in ms.
    pub cancel_grace_ms: u64,
    /// Quiet time after the last change in the plugins folder before it is re-read, in ms.
    pub watch_debounce_ms: u64,
    /// Interval of the epoch ticker that enforces deadlines and cancellation, in ms; a busy
    /// plugin also yields its thread to the node's other work at every tick.
    pub epoch_tick_ms: u64,
    /// Connect and response timeout of a plugin's outbound HTTP request, in ms.
    pub http_timeout_ms: u64,
    /// Largest response body a plugin may receive, in bytes.
    pub http_max_response_bytes: u64,
    /// Largest output a job may complete with, in bytes; a larger one fails the attempt
    /// with a reason naming this knob (the output is not stored).
    pub max_output_bytes: usize,
    /// Largest failure or retry reason kept, in bytes; a longer one is cut, saying so.
    pub max_reason_bytes: usize,
    /// Largest plugin file loaded, in bytes; a larger one is rejected without being read.
    pub max_plugin_bytes: u64,
    /// Instances for `validate` calls (checking a spec at submission), apart from the
    /// `max_instances` that run jobs, so submissions never wait for running jobs.
    pub validate_slots: u32,
    /// Most `validate` calls of one plugin at once, so one plugin's slow `validate` cannot
    /// take every validate slot from the others.
    pub validate_per_plugin: u32,
    /// Deadline of one `validate` call, and the longest a submission waits for a validate
    /// slot (then UNAVAILABLE / 503, retry), in ms.
    pub validate_timeout_ms: u64,
    /// How long an instance kept between attempts (`plugins.<id>.reuse`) waits unused
    /// before it is dropped and its memory returned, in seconds.
    pub kept_idle_secs: u64,
    /// Reject at load a component that imports a capability's interfaces without its grant
    /// (false: it loads, and every call it makes there is refused, naming the grant).
    pub strict_imports: bool,
    /// Most core module instances in one component (a Rust plugin has a handful; Python
    /// and JavaScript runtimes tens).
    pub max_core_instances_per_component: u32,
    /// Most tables in one component.
    pub max_tables_per_component: u32,
    /// Most linear memories in one component.
    pub max_memories_per_component: u32,
    /// Plugin files compiled at once when the folder is read (0: one per CPU). A node serves
    /// its APIs while they compile.
    pub compile_concurrency: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            plugins_dir: PathBuf::from("target/plugins"),
            cache: true,
            cache_dir: None,
            default_timeout_ms: 30_000,
            memory_limit_mb: 64,
            max_instances: 64,
            pooling: true,
            log_limit_bytes: 1024 * 1024,
            cancel_grace_ms: 2_000,
            watch_debounce_ms: 200,
            epoch_tick_ms: 1,
            http_timeout_ms: 30_000,
            http_max_response_bytes: 10 * 1024 * 1024,
            max_output_bytes: 1024 * 1024,
            max_reason_bytes: 16 * 1024,
            max_plugin_bytes: 64 * 1024 * 1024,
            validate_slots: 8,
            validate_per_plugin: 2,
            validate_timeout_ms: 1_000,
            kept_idle_secs: 60,
            strict_imports: false,
            max_core_instances_per_component: 64,
            max_tables_per_component: 32,
            max_memories_per_component: 4,
            compile_concurrency: 0,
        }
    }
}

impl RuntimeConfig {
    /// Where compiled components are cached, if caching is on and a folder is known.
    pub fn cache_folder(&self) -> Option<PathBuf> {
        if !self.cache {
            return None;
        }
        if let Some(dir) = &self.cache_dir {
            return Some(dir.clone());
        }
        let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from);
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache"));
        xdg.or(home).map(|base| base.join("jobhost"))
    }

    /// The default per-job deadline.
    pub fn default_timeout(&self) -> Duration {
        Duration::from_millis(self.default_timeout_ms)
    }
}

/// The slowest epoch tick accepted: deadlines and cancellation of wasm wait up to a tick.
const MAX_EPOCH_TICK_MS: u64 = 1000;

/// The largest memory cap of one instance, in MiB (`runtime.memory_limit_mb` and
/// `plugins.<id>.memory_limit_mb`).
pub const MAX_MEMORY_LIMIT_MB: u64 = 4096;

/// Most `runtime.max_output_bytes` and `runtime.max_reason_bytes` may be (2 MiB), so one
/// job's record, spec (`api.max_spec_bytes`) included, fits any gRPC answer.
pub const MAX_OUTPUT_BYTES: usize = 2 * 1024 * 1024;

/// The longest `runtime.kept_idle_secs`: a day.
pub const MAX_KEPT_IDLE_SECS: u64 = 86_400;

/// Checks a memory cap in MiB named by its config key.
pub(crate) fn check_memory_limit(knob: &str, mb: u64) -> Result<(), ConfigError> {
    if mb == 0 || mb > MAX_MEMORY_LIMIT_MB {
        return Err(ConfigError::invalid(format!(
            "{knob} must be between 1 and {MAX_MEMORY_LIMIT_MB} MiB, got {mb}"
        )));
    }
    Ok(())
}

impl RuntimeConfig {
    /// Checks `[runtime]`.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.max_instances == 0 {
            return Err(ConfigError::invalid(
                "runtime.max_instances must be at least 1",
            ));
        }
        if self.default_timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "runtime.default_timeout_ms must be at least 1",
            ));
        }
        // Deadlines and cancellation are only as prompt as the tick.
        if !(1..=MAX_EPOCH_TICK_MS).contains(&self.epoch_tick_ms) {
            return Err(ConfigError::invalid(format!(
                "runtime.epoch_tick_ms must be 1 to {MAX_EPOCH_TICK_MS}"
            )));
        }
        // Outputs and reasons are kept in Redis and sent whole by the APIs: bounded so a
        // page of jobs stays within what gRPC clients accept by default (4 MiB).
        if !(1..=MAX_OUTPUT_BYTES).contains(&self.max_output_bytes) {
            return Err(ConfigError::invalid(format!(
                "runtime.max_output_bytes must be 1 to {MAX_OUTPUT_BYTES}, got {}",
                self.max_output_bytes
            )));
        }
        if !(256..=MAX_OUTPUT_BYTES).contains(&self.max_reason_bytes) {
            return Err(ConfigError::invalid(format!(
                "runtime.max_reason_bytes must be 256 to {MAX_OUTPUT_BYTES}, got {}",
                self.max_reason_bytes
            )));
        }
        if !(1..=MAX_KEPT_IDLE_SECS).contains(&self.kept_idle_secs) {
            return Err(ConfigError::invalid(format!(
                "runtime.kept_idle_secs must be between 1 and {MAX_KEPT_IDLE_SECS}, got {}",
                self.kept_idle_secs
            )));
        }
        if self.validate_slots == 0
            || self.validate_per_plugin == 0
            || self.validate_timeout_ms == 0
        {
            return Err(ConfigError::invalid(
                "runtime.validate_slots, validate_per_plugin and validate_timeout_ms must be at \
                 least 1",
            ));
        }
        for (knob, value, max) in [
            (
                "max_core_instances_per_component",
                self.max_core_instances_per_component,
                10_000,
            ),
            (
                "max_tables_per_component",
                self.max_tables_per_component,
                10_000,
            ),
            (
                "max_memories_per_component",
                self.max_memories_per_component,
                64,
            ),
        ] {
            if value == 0 || value > max {
                return Err(ConfigError::invalid(format!(
                    "runtime.{knob} must be 1 to {max}, got {value}"
                )));
            }
        }
        if self.max_plugin_bytes < 1024 {
            return Err(ConfigError::invalid(format!(
                "runtime.max_plugin_bytes must be at least 1024, got {}",
                self.max_plugin_bytes
            )));
        }
        check_memory_limit("runtime.memory_limit_mb", self.memory_limit_mb)
    }
}
