//! `[log]`: the node's own log.

use serde::{Deserialize, Serialize};

/// The node's own log (stderr).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (human-readable) or `json` (one object per line); `JOBHOST_LOG_FORMAT`
    /// overrides it.
    pub format: LogFormat,
    /// Level filter, e.g. `info` or `info,plugin=warn`; `JOBHOST_LOG`, `RUST_LOG` and
    /// `JD_LOG_LEVEL` override it. Unset: `info` for `serve`, `warn` for other commands.
    pub level: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
