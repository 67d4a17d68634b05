//! `[history]`: finished jobs archived in PostgreSQL, searchable after Redis forgot them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, SecretSource};

/// The job history: every finished job written to PostgreSQL by a background drain, off the
/// job path. Off while `postgres_url` is empty (and not `serve --dev`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// `postgres://user[:password]@host[:port]/database[?options]`, or where it is:
    /// `env:NAME` / `file:/path` (then the URL, password included, stays out of the file).
    /// Empty: no history (`serve --dev` then starts a local PostgreSQL when one is installed).
    /// `JOBHOST_HISTORY_URL` overrides it.
    pub postgres_url: String,
    /// The password, as `env:NAME` or `file:/path`, when the URL carries none (or to
    /// replace the one it carries).
    pub password: Option<String>,
    /// Most finished jobs waiting in Redis to be archived. When full (PostgreSQL down for
    /// long), a job that ends keeps its usual Redis retention and is not archived; it is
    /// counted in `jobhost_history_overflow_total` and the node logs an error.
    pub outbox_max: u64,
    /// Jobs written to PostgreSQL per transaction.
    pub batch_size: usize,
    /// How often an idle drain looks for finished jobs (a full batch is followed at once).
    pub interval_ms: u64,
    /// How long archived jobs are kept in PostgreSQL, in days; 0 keeps them for ever.
    /// Older rows are deleted in small batches, so the table is never locked.
    pub retention_days: u64,
    /// Most log lines archived per job (its first ones); the record says how many were left
    /// out.
    pub max_log_lines: usize,
    /// Most bytes of log archived per job (line texts), within `max_log_lines`.
    pub max_log_bytes: usize,
    /// How long connecting to PostgreSQL may take before the attempt counts as failed.
    pub connect_timeout_ms: u64,
    /// State folder of the local PostgreSQL started by `serve --dev`.
    pub dev_dir: PathBuf,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            postgres_url: String::new(),
            password: None,
            outbox_max: 100_000,
            batch_size: 500,
            interval_ms: 1_000,
            retention_days: 0,
            max_log_lines: 1_000,
            max_log_bytes: 256 * 1024,
            connect_timeout_ms: 10_000,
            dev_dir: PathBuf::from(".jobhost/postgres"),
        }
    }
}

impl HistoryConfig {
    /// Checks `[history]`: the URL's form (a source or a `postgres://` URL) and the bounds.
    pub fn check(&self) -> Result<(), ConfigError> {
        let url = self.postgres_url.as_str();
        if !url.is_empty() && SecretSource::parse(url).is_err() && !is_postgres_url(url) {
            return Err(ConfigError::invalid(
                "history.postgres_url must be postgres://user@host:port/database, or env:NAME / \
                 file:/path naming where that URL is",
            ));
        }
        if let Some(source) = &self.password
            && let Err(e) = SecretSource::parse(source)
        {
            return Err(ConfigError::invalid(format!("history.password {e}")));
        }
        if !(1..=100_000_000).contains(&self.outbox_max) {
            return Err(ConfigError::invalid(
                "history.outbox_max must be 1..=100000000",
            ));
        }
        if !(1..=5_000).contains(&self.batch_size) {
            return Err(ConfigError::invalid("history.batch_size must be 1..=5000"));
        }
        if !(10..=3_600_000).contains(&self.interval_ms) {
            return Err(ConfigError::invalid(
                "history.interval_ms must be 10..=3600000",
            ));
        }
        if !(100..=600_000).contains(&self.connect_timeout_ms) {
            return Err(ConfigError::invalid(
                "history.connect_timeout_ms must be 100..=600000",
            ));
        }
        if self.retention_days > 36_500 {
            return Err(ConfigError::invalid(
                "history.retention_days must be at most 36500 (0 keeps jobs for ever)",
            ));
        }
        if self.max_log_bytes > 64 << 20 {
            return Err(ConfigError::invalid(
                "history.max_log_bytes must be at most 67108864",
            ));
        }
        Ok(())
    }

    /// Whether a PostgreSQL is configured (not counting the one `serve --dev` may start).
    pub fn enabled(&self) -> bool {
        !self.postgres_url.is_empty()
    }

    /// The URL, read from its source when `postgres_url` names one; `Err` names the knob
    /// and the source that is missing.
    pub fn url(&self) -> Result<String, ConfigError> {
        match SecretSource::parse(&self.postgres_url) {
            Ok(source) => source.read().filter(|u| !u.is_empty()).ok_or_else(|| {
                ConfigError::invalid(format!(
                    "history.postgres_url names {} but it is not set",
                    self.postgres_url
                ))
            }),
            Err(_) => Ok(self.postgres_url.clone()),
        }
    }

    /// The password from `password`, if that is set; `Err` when its source is missing.
    pub fn password(&self) -> Result<Option<String>, ConfigError> {
        let Some(source) = &self.password else {
            return Ok(None);
        };
        let parsed = SecretSource::parse(source)
            .map_err(|e| ConfigError::invalid(format!("history.password {e}")))?;
        parsed.read().map(Some).ok_or_else(|| {
            ConfigError::invalid(format!("history.password names {source} but it is not set"))
        })
    }
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_sources_are_accepted_and_junk_is_refused_naming_the_knob() {
        let mut h = HistoryConfig::default();
        assert!(!h.enabled());
        h.check().unwrap();
        for ok in [
            "postgres://u@h/db",
            "postgresql://h:5433/x",
            "env:PG_URL",
            "file:/x",
        ] {
            h.postgres_url = ok.into();
            h.check().unwrap();
        }
        h.postgres_url = "mysql://h/db".into();
        let e = h.check().unwrap_err().to_string();
        assert!(e.contains("history.postgres_url"), "{e}");
        h.postgres_url = "postgres://h/db".into();
        h.password = Some("hunter2".into());
        let e = h.check().unwrap_err().to_string();
        assert!(
            e.contains("history.password") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn a_url_named_by_its_source_is_read_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://u:pw@h/db\n").unwrap();
        let h = HistoryConfig {
            postgres_url: format!("file:{}", file.display()),
            password: Some(format!("file:{}", file.display())),
            ..HistoryConfig::default()
        };
        assert_eq!(h.url().unwrap(), "postgres://u:pw@h/db");
        let missing = HistoryConfig {
            postgres_url: "env:JOBHOST_TEST_NO_SUCH_VARIABLE".into(),
            ..HistoryConfig::default()
        };
        let e = missing.url().unwrap_err().to_string();
        assert!(e.contains("JOBHOST_TEST_NO_SUCH_VARIABLE"), "{e}");
    }
}
