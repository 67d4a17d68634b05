//! Hot reload: watches the plugins folder and re-syncs the registry after changes settle.
//!
//! The watch is debounced (`runtime.watch_debounce_ms`) so a file being copied in is read
//! once it is complete; a sync compares content hashes, so spurious events cost one read.
//! A half-written file that happens to be read is rejected and picked up again by the event
//! its completion raises.

use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Runtime, RuntimeError};

/// A running folder watch; dropping it stops the watch.
pub struct PluginWatcher {
    _debouncer: Debouncer<RecommendedWatcher>,
    task: JoinHandle<()>,
}

impl PluginWatcher {
    /// Starts watching `runtime`'s plugins folder. Must be called inside a tokio runtime.
    pub fn start(runtime: Runtime) -> Result<PluginWatcher, RuntimeError> {
        let dir = runtime.plugins_dir().to_owned();
        let watch_error = |e: &dyn std::fmt::Display| RuntimeError::Watch {
            path: dir.clone(),
            reason: e.to_string(),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<()>();
        let debounce = Duration::from_millis(runtime.config().runtime.watch_debounce_ms);
        let mut debouncer =
            new_debouncer(debounce, move |result: DebounceEventResult| match result {
                Ok(_) => {
                    let _ = tx.send(());
                }
                Err(e) => tracing::warn!("plugins folder watch error: {e}"),
            })
            .map_err(|e| watch_error(&e))?;
        debouncer
            .watcher()
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| watch_error(&e))?;
        let task = tokio::spawn(async move {
            while rx.recv().await.is_some() {
                while rx.try_recv().is_ok() {} // coalesce a burst into one sync
                match runtime.sync_dir().await {
                    Ok(report) => tracing::debug!(?report, "plugins folder synced"),
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        });
        tracing::info!(dir = %dir.display(), "watching plugins folder");
        Ok(PluginWatcher {
            _debouncer: debouncer,
            task,
        })
    }
}

impl Drop for PluginWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
