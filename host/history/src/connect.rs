//! The connection to PostgreSQL: parsing the URL (its password never shown), connecting
//! with a timeout, telling a configuration mistake from an outage, reconnecting, and the
//! migrations applied on the first connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Why the history could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// `[history]` is wrong: a malformed URL, a refused login, a missing database. Fix the
    /// configuration; retrying does not help.
    #[error("{0}")]
    Config(String),
    /// The server cannot be reached (or went away mid-query): the next call retries.
    #[error("the job history is unavailable: {0}")]
    Unavailable(String),
    /// A query failed for another reason.
    #[error("job history query failed: {0}")]
    Query(String),
    /// Input the history refuses (a bad page token, a filter out of range).
    #[error("{0}")]
    Invalid(String),
}

impl HistoryError {
    /// A query's error, sorted: connection trouble is [`HistoryError::Unavailable`].
    pub(crate) fn of(error: tokio_postgres::Error) -> HistoryError {
        if error.is_closed() || error.code().is_none() {
            HistoryError::Unavailable(db_message(&error))
        } else {
            HistoryError::Query(db_message(&error))
        }
    }
}

/// The server's own message, or the error with its causes (tokio-postgres' Display says
/// only what kind of error it is: "db error", "error connecting to server").
fn db_message(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{}: {}", db.code().code(), db.message());
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Whether an error without a SQLSTATE is the configuration's fault (a bad connection
/// string, a password the server asks for and the configuration does not give, an
/// authentication method the client cannot do) rather than the server being away.
fn is_config_fault(error: &tokio_postgres::Error) -> bool {
    let kind = error.to_string();
    [
        "invalid configuration",
        "invalid connection string",
        "authentication error",
    ]
    .iter()
    .any(|k| kind.starts_with(k))
}

/// One connection, shared (tokio-postgres pipelines concurrent queries on it), made again
/// when it closes.
pub(crate) struct Connection {
    config: tokio_postgres::Config,
    shown_url: String,
    client: Mutex<Option<Arc<Client>>>,
    connected: AtomicBool,
    migrated: AtomicBool,
    /// When the last connection attempt failed: calls fail fast for a moment after it,
    /// rather than each waiting out a connection timeout.
    failed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long after a failed connection attempt calls fail at once.
const FAIL_FAST: Duration = Duration::from_secs(1);

/// The server as messages show it, from the parsed configuration: user, hosts, ports and
/// database, never a password or other options (whatever form the URL had).
fn shown(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or("");
    format!("postgres://{user}{}/{db}", hosts.join(","))
}

impl Connection {
    /// Parses `url` (and sets `password`, if given); connects on first use.
    pub(crate) fn new(
        url: &str,
        password: Option<String>,
        timeout: Duration,
    ) -> Result<Connection, HistoryError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            HistoryError::Config(format!(
                "history.postgres_url {} is not a PostgreSQL URL: {e}",
                jobhost_config::mask_url_password(url)
            ))
        })?;
        if let Some(password) = password {
            config.password(password);
        }
        let shown_url = shown(&config);
        if config.get_hosts().is_empty() {
            return Err(HistoryError::Config(format!(
                "history.postgres_url {shown_url} names no host"
            )));
        }
        config
            .connect_timeout(timeout)
            .keepalives_idle(Duration::from_secs(30))
            // A query that hangs (a lock, a server in trouble) fails and is retried rather
            // than holding the drain or an API call for ever.
            .options("-c statement_timeout=30000")
            .application_name("jobhost");
        Ok(Connection {
            config,
            shown_url,
            client: Mutex::new(None),
            connected: AtomicBool::new(false),
            migrated: AtomicBool::new(false),
            failed_at: std::sync::Mutex::new(None),
        })
    }

    pub(crate) fn shown_url(&self) -> &str {
        &self.shown_url
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Records whether a query reached the server.
    pub(crate) fn note<T>(&self, result: &Result<T, HistoryError>) {
        if let Err(HistoryError::Unavailable(_)) = result {
            self.connected.store(false, Ordering::Relaxed);
        }
    }

    /// The connected client, connecting (and migrating, the first time) if needed.
    pub(crate) async fn client(&self) -> Result<Arc<Client>, HistoryError> {
        let failed_at = *self.failed_at.lock().unwrap_or_else(|p| p.into_inner());
        if failed_at.is_some_and(|at| at.elapsed() < FAIL_FAST) {
            return Err(HistoryError::Unavailable(format!(
                "{}: the last connection attempt failed a moment ago",
                self.shown_url
            )));
        }
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref()
            && !client.is_closed()
        {
            return Ok(client.clone());
        }
        *slot = None;
        let result = self.connect().await;
        self.connected.store(result.is_ok(), Ordering::Relaxed);
        *self.failed_at.lock().unwrap_or_else(|p| p.into_inner()) =
            result.is_err().then(std::time::Instant::now);
        let client = Arc::new(result?);
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn connect(&self) -> Result<Client, HistoryError> {
        let (mut client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| self.connect_error(e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("job history connection ended: {e}");
            }
        });
        if !self.migrated.load(Ordering::Relaxed) {
            migrate(&mut client).await?;
            self.migrated.store(true, Ordering::Relaxed);
        }
        Ok(client)
    }

    /// A failed connection, sorted into a configuration mistake or an outage.
    fn connect_error(&self, error: tokio_postgres::Error) -> HistoryError {
        let url = &self.shown_url;
        match error.code() {
            Some(code)
                if *code == SqlState::INVALID_PASSWORD
                    || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                HistoryError::Config(format!(
                    "history.postgres_url {url}: PostgreSQL refused the login ({}); check the \
                     user and the password (history.password)",
                    db_message(&error)
                ))
            }
            Some(code) if *code == SqlState::INVALID_CATALOG_NAME => HistoryError::Config(format!(
                "history.postgres_url {url}: {} (create the database first)",
                db_message(&error)
            )),
            // Anything else the server says (starting up, too many connections, shutting
            // down) passes: the next attempt may work.
            Some(_) => HistoryError::Unavailable(format!("{url}: {}", db_message(&error))),
            // Without a SQLSTATE: the configuration cannot work (a password the server asks
            // for and the configuration does not give, say), or the server was not reached
            // (refused, timed out, reset).
            None if is_config_fault(&error) => {
                let text = db_message(&error);
                let hint = if text.contains("password missing") {
                    "the server asks for a password: set history.password (env:NAME or \
                     file:/path) or put it in the URL"
                } else {
                    "check the URL"
                };
                HistoryError::Config(format!("history.postgres_url {url}: {text}; {hint}"))
            }
            None => HistoryError::Unavailable(format!("{url}: {}", db_message(&error))),
        }
    }
}

/// Applies the migrations not applied yet, one node at a time (an advisory lock: nodes
/// starting together would otherwise race to create the same table).
async fn migrate(client: &mut Client) -> Result<(), HistoryError> {
    const LOCK: i64 = 0x6a6f_6268_6f73_7431; // "jobhost1"
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await
        .map_err(HistoryError::of)?;
    let report = embedded::migrations::runner().run_async(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await;
    let report = report
        .map_err(|e| HistoryError::Config(format!("applying the job history's migrations: {e}")))?;
    unlocked.map_err(HistoryError::of)?;
    for applied in report.applied_migrations() {
        tracing::info!(migration = %applied, "job history schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_url_names_the_knob_and_never_the_password() {
        let e = Connection::new(
            "postgres://app:s3cret@host:notaport/db",
            None,
            Duration::from_secs(1),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("history.postgres_url"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        let ok = Connection::new(
            "postgres://app:s3cret@host/db",
            None,
            Duration::from_secs(1),
        );
        assert_eq!(ok.unwrap().shown_url(), "postgres://app@host:5432/db");
        // Passwords in the query string or in key=value form never show either.
        for url in [
            "postgres://app@host/db?password=s3cret",
            "host=host user=app password=s3cret dbname=db",
        ] {
            let shown = Connection::new(url, None, Duration::from_secs(1)).unwrap();
            assert!(
                !shown.shown_url().contains("s3cret"),
                "{}",
                shown.shown_url()
            );
        }
    }
}
