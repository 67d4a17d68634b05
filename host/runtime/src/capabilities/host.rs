//! `jobhost:plugin/host`: logging, progress, cancellation and a cancellable sleep.
//!
//! Always granted: these only reach the job's own log and state.

use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};

use super::CallState;
use super::Capability;
use crate::bindings::JobPlugin;
use crate::bindings::jobhost::plugin::{host, types};
use crate::job::LogLevel;

/// The basic host API every plugin gets.
pub struct HostApi;

impl Capability for HostApi {
    fn name(&self) -> &'static str {
        "host"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["jobhost:plugin/host@", "jobhost:plugin/types@"]
    }
    fn always_granted(&self) -> bool {
        true
    }
    fn link(&self, linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        JobPlugin::add_to_linker::<CallState, HasSelf<CallState>>(linker, |state| state)
    }
}

impl types::Host for CallState {}

impl host::Host for CallState {
    fn log(&mut self, level: host::LogLevel, message: String) -> wasmtime::Result<()> {
        // Within the job's log budget, the line goes to the caller's events (the node
        // stores it with the job and writes it to its own log, naming the job).
        self.context().plugin_log(level.into(), &message);
        Ok(())
    }

    fn progress(&mut self, percent: u8, message: String) -> wasmtime::Result<()> {
        self.context().progress(percent.min(100), &message);
        Ok(())
    }

    fn is_cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self.context().cancel.is_cancelled())
    }

    fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(CallState::secret(self, &name))
    }

    async fn sleep(&mut self, ms: u64) -> bool {
        let cancel = self.context().cancel.clone();
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => true,
            () = cancel.cancelled() => false,
        }
    }
}

impl From<host::LogLevel> for LogLevel {
    fn from(level: host::LogLevel) -> Self {
        match level {
            host::LogLevel::Trace => LogLevel::Trace,
            host::LogLevel::Debug => LogLevel::Debug,
            host::LogLevel::Info => LogLevel::Info,
            host::LogLevel::Warn => LogLevel::Warn,
            host::LogLevel::Error => LogLevel::Error,
        }
    }
}
