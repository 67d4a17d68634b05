//! jobhost's job history in PostgreSQL: finished jobs archived off the job path, read back
//! after Redis retention dropped them, searched, and kept for `history.retention_days`.
//! No other crate depends on `tokio-postgres`.
//!
//! - [`History`] is the handle a node keeps: it connects (and reconnects) to the
//!   configured server, applies the schema's migrations (`migrations/`, refinery, under an
//!   advisory lock so nodes starting together apply them once), and owns every query.
//! - `archive` writes a batch of finished jobs in one transaction, idempotently: a job
//!   archived twice is one row (the later finish wins).
//! - `search` reads one job or a page of jobs, newest first, filtered by type, state,
//!   labels, time and submitter, paged by a keyset cursor ([`Cursor`]).
//! - `retention` deletes rows older than the retention in small batches.
//! - [`DevPostgres`] starts a local server (`serve --dev`, tests) as an unprivileged user.
//!
//! What is handed over to be archived, and when it may leave Redis, is the store's
//! business (`jobhost_store::ArchiveEntry`); this crate only writes and reads rows.

mod archive;
mod connect;
mod dev;
mod retention;
mod search;

use std::sync::Arc;

pub use archive::Written;
pub use connect::HistoryError;
pub use dev::{DevPostgres, DevPostgresError};
pub use search::{Cursor, HistoryPage, HistoryQuery, HistoryRecord};

use jobhost_config::HistoryConfig;

/// A connection to the job history (cheap to clone). Queries connect on first use and
/// reconnect after the server went away; each fails with [`HistoryError::Unavailable`]
/// while it is away.
#[derive(Clone)]
pub struct History {
    inner: Arc<connect::Connection>,
    settings: Arc<Settings>,
}

/// What the history keeps of each job, from `[history]`.
#[derive(Debug, Clone)]
struct Settings {
    max_log_lines: usize,
    max_log_bytes: usize,
    retention_days: u64,
}

impl History {
    /// Connects as `config` says (`postgres_url`, `password`) and applies the migrations.
    /// A malformed URL, a refused login or a missing database is an error naming the knob
    /// (the password masked); a server that cannot be reached is not: the handle is
    /// returned and connects when the server is back (see [`History::is_connected`]).
    pub async fn open(config: &HistoryConfig) -> Result<History, HistoryError> {
        let url = config
            .url()
            .map_err(|e| HistoryError::Config(e.to_string()))?;
        let password = config
            .password()
            .map_err(|e| HistoryError::Config(e.to_string()))?;
        let timeout = std::time::Duration::from_millis(config.connect_timeout_ms);
        let inner = connect::Connection::new(&url, password, timeout)?;
        let history = History {
            inner: Arc::new(inner),
            settings: Arc::new(Settings {
                max_log_lines: config.max_log_lines,
                max_log_bytes: config.max_log_bytes,
                retention_days: config.retention_days,
            }),
        };
        match history.inner.client().await {
            Ok(_) => {}
            Err(HistoryError::Unavailable(reason)) => {
                tracing::warn!(
                    url = %history.inner.shown_url(),
                    "the job history's PostgreSQL is unreachable ({reason}): jobs run, and \
                     finished ones wait in Redis (history.outbox_max) until it is back"
                );
            }
            Err(e) => return Err(e),
        }
        Ok(history)
    }

    /// The server's URL with its password masked, for messages.
    pub fn shown_url(&self) -> &str {
        self.inner.shown_url()
    }

    /// Whether the last query (or connection attempt) reached the server.
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }
}
