//! What goes into a plugin call and what comes out of it.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Severity of a job log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something odd, the job goes on.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The name stored with a log line: `TRACE` … `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Receives what a running plugin reports. Implementations must be cheap and non-blocking:
/// they are called from the plugin's execution.
pub trait JobEvents: Send + Sync {
    /// A log line (already within the job's log budget): the plugin's output, or what the
    /// host says about the call.
    fn log(&self, level: LogLevel, message: &str);
    /// A line the plugin logged through `host.log` (already within the job's log budget).
    /// By default the same as any line; an embedder may also echo these to its own log.
    fn plugin_log(&self, level: LogLevel, message: &str) {
        self.log(level, message);
    }
    /// A progress report, `percent` in 0..=100.
    fn progress(&self, percent: u8, message: &str);
    /// Lines accepted but not yet delivered. A producer that can wait (a native process's
    /// output pipe) pauses while this is high, so output is never dropped for being fast.
    fn backlog(&self) -> usize {
        0
    }
}

/// A sink that drops everything (for validation and describe calls).
pub struct DiscardEvents;

impl JobEvents for DiscardEvents {
    fn log(&self, _level: LogLevel, _message: &str) {}
    fn progress(&self, _percent: u8, _message: &str) {}
}

/// One attempt of a job, as handed to a plugin.
#[derive(Debug, Clone, Default)]
pub struct JobInput {
    /// Job id (stable across attempts).
    pub id: String,
    /// Job type; selects the plugin.
    pub job_type: String,
    /// The spec as submitted.
    pub spec: String,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    /// The plugin finished the job.
    Completed {
        /// The plugin's output.
        output: String,
    },
    /// The plugin reported a permanent failure.
    Failed {
        /// The plugin's reason.
        reason: String,
    },
    /// The plugin asked to be retried.
    Retry {
        /// Minimum delay before the next attempt.
        #[serde(rename = "after_ms", serialize_with = "as_millis")]
        after: Duration,
        /// Why.
        reason: String,
    },
    /// The host stopped the plugin: trap, panic, deadline or memory limit.
    Crashed {
        /// Which kind of containment.
        kind: CrashKind,
        /// A precise reason, e.g. `deadline 30s exceeded`.
        reason: String,
    },
    /// The job was cancelled before the plugin finished it.
    Cancelled,
}

impl RunOutcome {
    /// True for [`RunOutcome::Completed`].
    pub fn is_completed(&self) -> bool {
        matches!(self, RunOutcome::Completed { .. })
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunOutcome::Completed { output } => write!(f, "completed: {output}"),
            RunOutcome::Failed { reason } => write!(f, "failed: {reason}"),
            RunOutcome::Retry { after, reason } => {
                write!(f, "retry after {}: {reason}", human_duration(*after))
            }
            RunOutcome::Crashed { reason, .. } => write!(f, "crashed: {reason}"),
            RunOutcome::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// Why the host stopped a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashKind {
    /// The wall-clock deadline passed.
    Deadline,
    /// The plugin tried to grow its memory beyond its cap.
    MemoryLimit,
    /// The plugin panicked (Rust panic or abort).
    Panic,
    /// Any other WebAssembly trap (unreachable, stack exhausted, out-of-bounds, ...).
    Trap,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Formats a duration the way operators write it: `30s`, `250ms`, `1.5s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_config() {
        assert_eq!(human_duration(Duration::from_secs(30)), "30s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
    }
}
