//! Guest-side SDK for jobhost plugins.
//!
//! A plugin implements [`Plugin`] and calls [`export_plugin!`] once:
//!
//! ```ignore
//! use jobhost_plugin_sdk::{export_plugin, Job, Outcome, Plugin, PluginInfo};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("hello", env!("CARGO_PKG_VERSION"), &["hello"], "Greets")
//!     }
//!     fn validate(_spec: String) -> Result<(), String> {
//!         Ok(())
//!     }
//!     fn run(job: Job) -> Outcome {
//!         Outcome::Completed(format!("hello, {}", job.spec))
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
//!
//! A plugin whose spec is JSON implements [`typed::TypedPlugin`] instead: the SDK parses the
//! spec into the plugin's type once, the same way for `validate` and `run`
//! (`examples/plugins/hello`).
//!
//! The bindings are generated from the WIT contract in the repository's `wit/` folder, so the
//! SDK and the host can never disagree about it.

/// Generated bindings of the `job-plugin-full` world (use the re-exports below instead). A
/// Rust component imports only the interfaces it calls, so a plugin that never touches
/// `kv` or `process` needs neither grant.
#[allow(clippy::too_many_arguments)] // generated code
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "job-plugin-full",
        pub_export_macro: true,
        export_macro_name: "export_plugin",
        default_bindings_module: "jobhost_plugin_sdk::bindings",
    });
}

pub use bindings::Guest as Plugin;
pub use bindings::export_plugin;
pub use bindings::jobhost::plugin::host::LogLevel;
pub use bindings::jobhost::plugin::types::{Job, Label, Outcome, PluginInfo, RetryRequest};

use std::time::Duration;

pub mod http;
pub mod typed;

/// Native processes confined in cgroups (needs the `process` grant).
pub mod process {
    pub use crate::bindings::jobhost::plugin::process::{Command, ExitReport, Limits, run};
}

/// The plugin's own key-value state (needs the `kv` grant): shared by every node, kept
/// across attempts, restarts and plugin updates, invisible to other plugins.
///
/// ```ignore
/// use jobhost_plugin_sdk::kv;
///
/// let seen = kv::get_string("last-id")?;          // Option<String>
/// kv::set("last-id", &job.id)?;                    // bytes or text
/// ```
///
/// Every error is a message for a person (a limit with its config key, a missing grant, the
/// store being unreachable); return it as the job's failure or retry reason. Only `run` may
/// write; `validate` may read; `describe` may not use the store.
pub mod kv {
    use crate::bindings::jobhost::plugin::kv as wit;

    /// The value of `key`, if set.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, String> {
        wit::get(key)
    }

    /// The value of `key` as text, if set (an error if it is not UTF-8).
    pub fn get_string(key: &str) -> Result<Option<String>, String> {
        get(key)?
            .map(|bytes| {
                String::from_utf8(bytes)
                    .map_err(|_| format!("kv: the value of {key:?} is not UTF-8"))
            })
            .transpose()
    }

    /// Sets `key` to `value` (bytes or text), replacing any previous value.
    pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), String> {
        wit::set(key, value.as_ref())
    }

    /// Removes `key`; `true` if it was set.
    pub fn delete(key: &str) -> Result<bool, String> {
        wit::delete(key)
    }

    /// The plugin's keys that start with `prefix` (all for `""`), sorted.
    pub fn list_keys(prefix: &str) -> Result<Vec<String>, String> {
        wit::list_keys(prefix)
    }
}

impl PluginInfo {
    /// Builds a description with no capabilities and no spec schema.
    pub fn new(name: &str, version: &str, job_types: &[&str], description: &str) -> Self {
        PluginInfo {
            name: name.to_owned(),
            version: version.to_owned(),
            job_types: job_types.iter().map(|t| (*t).to_owned()).collect(),
            description: description.to_owned(),
            capabilities: Vec::new(),
            spec_schema: None,
        }
    }

    /// Adds the capabilities the plugin needs granted (informational for operators).
    pub fn with_capabilities(mut self, capabilities: &[&str]) -> Self {
        self.capabilities = capabilities.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Publishes a JSON Schema of the spec.
    pub fn with_spec_schema(mut self, schema: &str) -> Self {
        self.spec_schema = Some(schema.to_owned());
        self
    }
}

impl Job {
    /// The value of the label `key`, if the job carries it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.key == key)
            .map(|l| l.value.as_str())
    }
}

impl Outcome {
    /// A retry after `after` with a reason for the attempt history.
    pub fn retry_after(after: Duration, reason: impl Into<String>) -> Self {
        Outcome::Retry(RetryRequest {
            after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            reason: reason.into(),
        })
    }
}

/// Writes to the job's log.
pub mod log {
    use crate::bindings::jobhost::plugin::host::{self, LogLevel};

    /// Logs at `debug`.
    pub fn debug(message: &str) {
        host::log(LogLevel::Debug, message);
    }
    /// Logs at `info`.
    pub fn info(message: &str) {
        host::log(LogLevel::Info, message);
    }
    /// Logs at `warn`.
    pub fn warn(message: &str) {
        host::log(LogLevel::Warn, message);
    }
    /// Logs at `error`.
    pub fn error(message: &str) {
        host::log(LogLevel::Error, message);
    }
}

/// Reports progress (0..=100) with a short message.
pub fn progress(percent: u8, message: &str) {
    bindings::jobhost::plugin::host::progress(percent, message);
}

/// The secret configured for this plugin under `name` (`plugins.<id>.secrets`).
pub fn secret(name: &str) -> Option<String> {
    bindings::jobhost::plugin::host::secret(name)
}

/// True once the job was cancelled.
pub fn is_cancelled() -> bool {
    bindings::jobhost::plugin::host::is_cancelled()
}

/// Sleeps without holding a CPU; returns `false` if cut short by cancellation.
pub fn sleep(duration: Duration) -> bool {
    bindings::jobhost::plugin::host::sleep(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}
