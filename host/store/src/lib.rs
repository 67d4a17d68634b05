//! All of jobhost's Redis I/O: jobs, queues, leases, schedules, nodes, logs, plugin state
//! and Job Distributor records. No other crate depends on `redis`.
//!
//! One module per concern, each with the scripts (`lua/`) of the keys it touches: `jobs`
//! (enqueue, read, cancel, list, sweep), `claims` (leases and outcomes), `cron` (cron
//! and the leader), `nodes`, `logs` (log streams and events), `kv` (plugin state), `jd`
//! (Job Distributor records); the values they take and give are in `types`; `server` starts
//! the `--dev` redis-server (and the ones tests use).
//!
//! # Key layout
//!
//! Every key starts with `<prefix>:{<prefix>}:`, e.g. `jobhost:{jobhost}:job:<id>`. The
//! braces are a Redis Cluster hash tag: all keys of one deployment live in one slot, so
//! every multi-key script is valid on Cluster as on a single Redis.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `job:<id>` | hash | the job record (fields below) |
//! | `attempts:<id>` | list | one JSON record per attempt after which the job ran again (the final attempt is in the job hash: `outcome`) |
//! | `log:<id>` | stream | the job's log lines (`attempt`, `level`, `msg`), capped |
//! | `queue:<type>` | zset | ready jobs of a type; score = (255 − priority)·2⁴² + sequence |
//! | `seq` | string | the FIFO sequence within a priority |
//! | `delayed` | zset | SCHEDULED jobs (delayed, or waiting for a retry), score = run-at ms |
//! | `leases` | zset | node id → its lease deadline ms: one lease per node, extended by its claims and renewals |
//! | `inflight:<node>` | set | the RUNNING jobs a node holds: re-queued as a set when its lease expires |
//! | `cancels:<node>` | set | its RUNNING jobs whose cancellation was requested (seen at its next renewal) |
//! | `running` | zset | per-job leases of nodes before 0.2 (reaped until empty; no longer written) |
//! | `running:<type>` | set | RUNNING jobs of a type: what `max_concurrent` counts (see below) |
//! | `scheduled:<type>` | set | SCHEDULED jobs of a type: with `queue:<type>`, what `max_queued` counts |
//! | `limited` | hash | type → 1 while the type's jobs wait only for its concurrency limit |
//! | `dead` | zset | DEAD jobs, score = time of death |
//! | `succeeded` | zset | SUCCEEDED jobs, score = finish time: trimmed to `succeeded_max` and `succeeded_retention` by `finish` |
//! | `archive` | zset | history outbox: jobs that ended, waiting to be written to PostgreSQL, score = finish time (see `archive.rs`) |
//! | `archive:overflow` | string | how many ended jobs found the outbox full (kept their retention, not archived) |
//! | `archive:lease` | string | the node draining the outbox, expiring unless renewed |
//! | `jobs` | zset | every job id, score 0: ordered by id, which is time-ordered (listings; swept after retention) |
//! | `idem:<key>` | string | job id for an idempotency key |
//! | `cron` | hash | cron schedule name → JSON definition |
//! | `cron:next` | zset | cron schedule name → next fire ms |
//! | `node:<id>` | hash | a host node's registration (expires with its heartbeat) |
//! | `nodes` | zset | node id → heartbeat expiry ms |
//! | `leader`, `leader:token` | string | leader lease `"<node> <token>"`, fencing counter |
//! | `sweep:cursor` | string | where the retention sweep of `jobs` resumes |
//! | `events` | pub/sub channel | `ready <type>` (once per type per enqueue or finish batch; per job when a delayed job is promoted or a lost one re-queued), `cancel <id>` |
//! | `jd:*` | hashes, string | Job Distributor nodes, jobs, proposals, indexes, CSA key (see `jd.rs`) |
//! | `kv:<plugin>` | hash | a plugin's key-value state (the `kv` capability; see `kv.rs`) |
//!
//! Job hash fields: `name type spec labels priority state attempts max_attempts
//! timeout_ms created_ms updated_ms run_at_ms started_ms finished_ms node last_node
//! output reason outcome cancel backoff_base_ms backoff_max_ms` (and more, see
//! `parse_job`). The id is not stored (the key names it), and `updated_ms` only by a change
//! that sets no time of its own: the time of the last change is the latest of
//! `created_ms`, `updated_ms`, `started_ms` and `finished_ms`. Each field a script reads or
//! writes per job costs Redis about as much as a command, so no field is written that a
//! reader can derive.
//!
//! Every state transition is one Lua script (see `lua/`), so it is atomic; times come from
//! the Redis server's clock, so nodes with skewed clocks agree.
//!
//! # Per-type limits
//!
//! [`JobLimits`] (from `[job_types.<type>]` and `worker.max_queued_per_type`) are passed to
//! the scripts by each node; keep them the same on every node.
//! - *Queue limit*: a type's waiting jobs are its QUEUED jobs (`queue:<type>`) plus its
//!   SCHEDULED ones (delayed, or backing off before a retry: `scheduled:<type>`). `enqueue`
//!   counts them and refuses a new job ([`StoreError::QueueFull`]) when they reach the limit,
//!   in the same script that would add it, so nodes cannot overshoot together. A known
//!   idempotency key still returns its job. Retries and lease expiries are never refused:
//!   the limit only gates new jobs.
//! - *Concurrency limit*: `running:<type>` holds the ids of the type's RUNNING jobs. It is
//!   changed only where `inflight:<node>` is: `claim` adds (and claims no more than the free
//!   places), `finish` (success, failure, retry, cancel, shutdown re-queue) and `reap` (lease
//!   expired: a dead node's jobs) remove. Being a set of ids, removing twice cannot
//!   undercount. A type at its limit is skipped by `claim` (other types are still claimed)
//!   and flagged in `limited`; the next `finish` or `reap` of that type publishes
//!   `ready <type>` so idle nodes claim at once.
//! - Both sets repair themselves: at a limit, a few random members are checked against their
//!   job records, and entries whose job is gone or moved on are dropped.
use std::time::Duration;

mod archive;
mod claims;
mod conn;
mod cron;
mod error;
mod jd;
mod jobs;
mod keys;
mod kv;
mod limits;
mod logs;
mod nodes;
mod server;
mod types;

pub use archive::{
    ArchiveBatch, ArchiveEntry, ArchiveRead, ArchivedJob, BYTES_PER_BATCH, LOG_LINES_PER_BATCH,
};
pub use claims::FINISH_BATCH_MAX;
pub use conn::CallObserver;
use conn::Conn;

pub use error::StoreError;
pub use jd::{Created, RecordKind, UniqueIndex};
pub use keys::Keys;
pub use kv::KvSet;
pub use limits::{JobLimits, TypeLimits};
pub use logs::is_log_cursor;
pub use server::{DEV_PORT, DevRedis, DevRedisError, free_port};
pub use types::*;

type Result<T> = std::result::Result<T, StoreError>;

/// Settings of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Key prefix (also the Cluster hash tag).
    pub prefix: String,
    /// How long FAILED, CANCELLED and DEAD jobs (record, attempts, log) are kept.
    pub retention: Duration,
    /// How long SUCCEEDED jobs are kept.
    pub succeeded_retention: Duration,
    /// Most SUCCEEDED jobs kept; the oldest are deleted beyond it.
    pub succeeded_max: u64,
    /// How long an idempotency key maps to its job.
    pub idempotency_ttl: Duration,
    /// Most entries kept in one job's log stream (oldest trimmed beyond).
    pub log_max_entries: usize,
    /// TLS settings for `rediss://` URLs.
    pub tls: TlsFiles,
    /// Per-job-type limits (none by default).
    pub limits: JobLimits,
    /// Size of the history outbox (`history.outbox_max`); 0: no history, a job that ends
    /// starts its retention at once.
    pub archive_max: u64,
}

/// PEM files for TLS to Redis (`rediss://`). Without a CA file the system's trust store is
/// used; a client certificate and key are for servers that require client authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) that sign the server's certificate.
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate.
    pub cert_file: Option<std::path::PathBuf>,
    /// Client private key.
    pub key_file: Option<std::path::PathBuf>,
}

impl StoreOptions {
    /// The options `config` sets (`[redis]`, and the per-type limits of `[job_types]` and
    /// `worker.max_queued_per_type`).
    pub fn from_config(config: &jobhost_config::Config) -> StoreOptions {
        let redis = &config.redis;
        StoreOptions {
            prefix: redis.prefix.clone(),
            retention: Duration::from_secs(redis.retention_secs),
            succeeded_retention: Duration::from_secs(redis.succeeded_retention_secs),
            succeeded_max: redis.succeeded_max,
            idempotency_ttl: Duration::from_secs(redis.idempotency_ttl_secs),
            log_max_entries: redis.log_max_entries,
            tls: TlsFiles {
                ca_file: redis.tls_ca_file.clone(),
                cert_file: redis.tls_cert_file.clone(),
                key_file: redis.tls_key_file.clone(),
            },
            limits: JobLimits::from_config(config),
            archive_max: if config.history.enabled() {
                config.history.outbox_max
            } else {
                0
            },
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            prefix: "jobhost".into(),
            retention: Duration::from_secs(7 * 24 * 3600),
            succeeded_retention: Duration::from_secs(3600),
            succeeded_max: 100_000,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            log_max_entries: 100_000,
            tls: TlsFiles::default(),
            limits: JobLimits::default(),
            archive_max: 0,
        }
    }
}

/// reconnects by itself.
#[derive(Clone)]
pub struct Store {
    client: redis::Client,
    /// The `host:port` of every URL the store was given (the seeds of a cluster).
    servers: std::sync::Arc<[(String, u16)]>,
    conn: Conn,
    keys: Keys,
    options: StoreOptions,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Store {
    /// Connects to `url` (`redis://` or `rediss://`); several comma-separated URLs are the
    /// seed nodes of a Redis Cluster. Fails if Redis does not answer.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Store> {
        let seeds: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let Some(first) = seeds.first() else {
            return Err(StoreError::Invalid("redis url: empty".into()));
        };
        // Pub/sub is cluster-wide, so any one node serves subscriptions.
        let client = client(first, &options.tls)?;
        let conn = if seeds.len() > 1 {
            if options.tls != TlsFiles::default() {
                return Err(StoreError::Invalid(
                    "redis TLS files are not supported with a cluster URL list yet".into(),
                ));
            }
            Conn::cluster(&seeds).await?
        } else {
            Conn::single(client.clone()).await?
        };
        let mut servers = Vec::new();
        for seed in &seeds {
            use redis::IntoConnectionInfo;
            let info = seed.into_connection_info()?;
            if let redis::ConnectionAddr::Tcp(host, port)
            | redis::ConnectionAddr::TcpTls { host, port, .. } = info.addr()
            {
                servers.push((host.clone(), *port));
            }
        }
        let store = Store {
            client,
            servers: servers.into(),
            conn,
            keys: Keys::new(&options.prefix),
            options,
            requests: Default::default(),
        };
        store.ping().await?;
        Ok(store)
    }

    /// The connection, counting one request (a round trip: a command, a script or a
    /// pipeline).
    fn conn(&self) -> Conn {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.conn.clone()
    }

    /// Tells `observer` the duration of every request this store (and its clones made
    /// after this call) sends: for a latency metric.
    pub fn with_call_observer(mut self, observer: CallObserver) -> Store {
        self.conn.observe(observer);
        self
    }

    /// Requests (round trips) this store and its clones have sent to Redis.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The store's settings.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The socket addresses of the Redis servers this store uses, as of now: those of its
    /// URLs (each name resolved now) and, on a Cluster, every node the cluster lists. What
    /// the node keeps plugins away from.
    pub async fn server_addrs(&self) -> Vec<std::net::SocketAddr> {
        let mut addrs = Vec::new();
        for (host, port) in self.servers.iter() {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(found) = tokio::net::lookup_host((host, *port)).await {
                addrs.extend(found);
            }
        }
        if self.conn.is_cluster() {
            let mut conn = self.conn();
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            addrs.extend(cluster_node_addrs(&nodes));
        }
        addrs.sort();
        addrs.dedup();
        addrs
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

/// The `ip:port` of every node in a `CLUSTER NODES` answer (`<id> <ip>:<port>@<bus> ...`).
fn cluster_node_addrs(nodes: &str) -> Vec<std::net::SocketAddr> {
    nodes
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter_map(|addr| addr.split(['@', ',']).next()?.parse().ok())
        .collect()
}

/// `url`'s connection settings, with TCP_NODELAY. A node keeps several requests in flight
/// on one connection (claims, outcomes, renewals): with Nagle's algorithm (the redis
/// crate's default) each write after the first waits for Redis to acknowledge the one
/// before, i.e. for its answer, so requests in flight went one round trip at a time.
pub(crate) fn with_nodelay(url: &str) -> Result<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    Ok(url
        .into_connection_info()?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true)))
}

/// A client for `url`, with the TLS files when they are set.
fn client(url: &str, tls: &TlsFiles) -> Result<redis::Client> {
    // rustls needs one process-wide crypto provider; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let info = with_nodelay(url)?;
    if *tls == TlsFiles::default() {
        return Ok(redis::Client::open(info)?);
    }
    if !url.starts_with("rediss://") {
        return Err(StoreError::Invalid(
            "redis TLS files are set but the URL is not rediss://".into(),
        ));
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| StoreError::Invalid(format!("TLS file {}: {e}", path.display())))
    };
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        (None, None) => None,
        _ => {
            return Err(StoreError::Invalid(
                "redis TLS client certificate and key must be set together".into(),
            ));
        }
    };
    let root_cert = tls.ca_file.as_deref().map(read).transpose()?;
    Ok(redis::Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )?)
}

/// A pipeline answer as `T`; a mismatch is a corrupt answer.
pub(crate) fn parse_value<T: redis::FromRedisValue>(value: redis::Value) -> Result<T> {
    redis::from_redis_value(value).map_err(|e| StoreError::Corrupt {
        key: "pipeline answer".into(),
        reason: e.to_string(),
    })
}

/// A new job id: 48 bits of Unix ms then 80 bits that start random, in hex. Ids made by one
/// process increase strictly (within a millisecond the low bits count up, as in monotonic
/// ULIDs), so listings by id are in creation order; across nodes, to the millisecond.
pub fn new_id() -> String {
    static LAST: std::sync::Mutex<(u64, u128)> = std::sync::Mutex::new((0, 0));
    const LOW_BITS: u128 = (1u128 << 80) - 1;
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let now = now_ms();
    let (ms, low) = if now > last.0 {
        (now, rand::random::<u128>() & (LOW_BITS >> 1)) // room to count up
    } else {
        (last.0, (last.1 + 1) & LOW_BITS)
    };
    *last = (ms, low);
    format!("{ms:012x}{low:020x}")
}

/// Unix time in ms by this host's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod cluster_tests {
    #[test]
    fn cluster_nodes_are_read_from_cluster_nodes() {
        let answer = "07c37d 127.0.0.1:30004@31004 slave e7d1e 0 1426238317239 4 connected\n\
                      67ed2d 127.0.0.1:30002@31002,host.example master - 0 1426238316232 2 connected 5461-10922\n\
                      bad line\n";
        let addrs = super::cluster_node_addrs(answer);
        assert_eq!(
            addrs,
            [
                "127.0.0.1:30004".parse().unwrap(),
                "127.0.0.1:30002".parse().unwrap()
            ]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            backoff_base_ms: 100,
            backoff_max_ms: 1_000,
        };
        let mid = |attempt| policy.backoff(attempt, 0.5).as_millis();
        assert_eq!(
            [mid(1), mid(2), mid(3), mid(4), mid(5)],
            [100, 200, 400, 800, 1000]
        );
        assert_eq!(policy.backoff(2, 0.0).as_millis(), 160);
        assert_eq!(policy.backoff(2, 1.0).as_millis(), 240);
        assert_eq!(policy.backoff(200, 0.5).as_millis(), 1000);
    }

    #[test]
    fn ids_made_in_one_millisecond_still_increase() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ids_are_time_ordered_and_unique() {
        let a = new_id();
        std::thread::sleep(Duration::from_millis(2));
        let b = new_id();
        assert!(a < b && a.len() == 32 && b.len() == 32);
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn connections_send_without_waiting_for_acknowledgements() {
        for url in ["redis://127.0.0.1:6379", "rediss://redis.example:6380/2"] {
            let info = with_nodelay(url).unwrap();
            assert!(info.tcp_settings().nodelay(), "{url}");
        }
        assert!(with_nodelay("not a url").is_err());
    }

    #[test]
    fn events_parse() {
        assert_eq!(
            Event::parse("ready noop"),
            Some(Event::Ready("noop".into()))
        );
        assert_eq!(
            Event::parse("cancel abc"),
            Some(Event::Cancel("abc".into()))
        );
        assert_eq!(Event::parse("bogus"), None);
    }
}
