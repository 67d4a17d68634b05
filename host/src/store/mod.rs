//! All Redis I/O: jobs, queues, leases, schedules, nodes, logs. Nothing else speaks Redis.
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
//! | `attempts:<id>` | list | one JSON record per finished attempt |
//! | `log:<id>` | stream | the job's log lines (`attempt`, `level`, `msg`), capped |
//! | `queue:<type>` | zset | ready jobs of a type; score = (255 − priority)·2⁴² + sequence |
//! | `seq` | string | the FIFO sequence within a priority |
//! | `delayed` | zset | SCHEDULED jobs (delayed, or waiting for a retry), score = run-at ms |
//! | `running` | zset | RUNNING jobs, score = lease deadline ms |
//! | `running:<type>` | set | RUNNING jobs of a type: what `max_concurrent` counts (see below) |
//! | `scheduled:<type>` | set | SCHEDULED jobs of a type: with `queue:<type>`, what `max_queued` counts |
//! | `limited` | hash | type → 1 while the type's jobs wait only for its concurrency limit |
//! | `dead` | zset | DEAD jobs, score = time of death |
//! | `jobs` | zset | every job id, score 0: ordered by id, which is time-ordered (listings; swept after retention) |
//! | `idem:<key>` | string | job id for an idempotency key |
//! | `cron` | hash | cron schedule name → JSON definition |
//! | `cron:next` | zset | cron schedule name → next fire ms |
//! | `node:<id>` | hash | a host node's registration (expires with its heartbeat) |
//! | `nodes` | zset | node id → heartbeat expiry ms |
//! | `leader`, `leader:token` | string | leader lease `"<node> <token>"`, fencing counter |
//! | `sweep:cursor` | string | where the retention sweep of `jobs` resumes |
//! | `events` | pub/sub channel | `ready <type>`, `cancel <id>`, `done <id>` |
//! | `jd:*` | hashes, string | Job Distributor nodes, jobs, proposals, indexes, CSA key (see `store/jd.rs`) |
//! | `kv:<plugin>` | hash | a plugin's key-value state (the `kv` capability; see `store/kv.rs`) |
//!
//! Job hash fields: `id name type spec labels priority state attempts max_attempts
//! timeout_ms created_ms updated_ms run_at_ms started_ms finished_ms lease_ms node last_node
//! output reason cancel backoff_base_ms backoff_max_ms`.
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
//!   changed only where `running` is: `claim` adds (and claims no more than the free
//!   places), `finish` (success, failure, retry, cancel, shutdown re-queue) and `reap` (lease
//!   expired: a dead node's jobs) remove. Being a set of ids, removing twice cannot
//!   undercount. A type at its limit is skipped by `claim` (other types are still claimed)
//!   and flagged in `limited`; the next `finish` or `reap` of that type publishes
//!   `ready <type>` so idle nodes claim at once.
//! - Both sets repair themselves: at a limit, a few random members are checked against their
//!   job records, and entries whose job is gone or moved on are dropped.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};

mod conn;
mod jd;
mod keys;
mod kv;
mod server;

use conn::Conn;

pub use jd::{Created, RecordKind, UniqueIndex};
pub use keys::Keys;
pub use kv::KvSet;
pub use server::{DEV_PORT, DevRedis, DevRedisError, free_port};

/// Errors talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A record in Redis does not have the expected shape.
    #[error("corrupt record {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A value given to the store is out of range.
    #[error("invalid {0}")]
    Invalid(String),
    /// The job type already has as many waiting jobs (QUEUED + SCHEDULED) as its limit.
    #[error(
        "queue for job type {job_type:?} is full: {waiting} jobs waiting, the limit is {limit} ({knob})"
    )]
    QueueFull {
        /// The job type.
        job_type: String,
        /// Jobs of the type waiting (QUEUED + SCHEDULED).
        waiting: u64,
        /// The limit.
        limit: u64,
        /// The configuration knob that sets the limit.
        knob: String,
    },
}

impl StoreError {
    /// True when the error means Redis is unreachable (worth retrying later).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(
                            redis::ServerErrorKind::BusyLoading
                                | redis::ServerErrorKind::TryAgain
                                | redis::ServerErrorKind::MasterDown
                                | redis::ServerErrorKind::ClusterDown
                                | redis::ServerErrorKind::ReadOnly
                        )
                    )
            }
            _ => false,
        }
    }
}

type Result<T> = std::result::Result<T, StoreError>;

/// Lifecycle state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Waiting in a ready queue.
    Queued,
    /// Waiting for its run-at time (delayed, or backing off before a retry).
    Scheduled,
    /// Claimed by a node and running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Failed for good (the plugin said so).
    Failed,
    /// Cancelled.
    Cancelled,
    /// Retries exhausted.
    Dead,
}

impl JobState {
    /// The name stored in Redis and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "QUEUED",
            JobState::Scheduled => "SCHEDULED",
            JobState::Running => "RUNNING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
            JobState::Cancelled => "CANCELLED",
            JobState::Dead => "DEAD",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "QUEUED" => JobState::Queued,
            "SCHEDULED" => JobState::Scheduled,
            "RUNNING" => JobState::Running,
            "SUCCEEDED" => JobState::Succeeded,
            "FAILED" => JobState::Failed,
            "CANCELLED" => JobState::Cancelled,
            "DEAD" => JobState::Dead,
            _ => return None,
        })
    }

    /// True once the job will not run again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Dead
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Retry policy of a job: exponential backoff with jitter, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time.
    pub backoff_base_ms: u64,
    /// Longest delay between attempts.
    pub backoff_max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based): base·2^(attempt−1), capped, with
    /// ±20 % jitter so a burst of failures does not retry in lockstep.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = self
            .backoff_base_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(32))
            .min(self.backoff_max_ms);
        let jittered = exp as f64 * (0.8 + 0.4 * jitter.clamp(0.0, 1.0));
        Duration::from_millis(jittered as u64)
    }
}

/// A job to create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    /// A display name (optional).
    pub name: String,
    /// Job type; selects the plugin.
    pub job_type: String,
    /// The spec, already validated by the plugin.
    pub spec: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// 0 (lowest) to 255 (highest); default 0.
    pub priority: u8,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Deadline of one attempt, if not the plugin's default.
    pub timeout_ms: Option<u64>,
    /// Do not run before this time (Unix ms).
    pub run_at_ms: Option<u64>,
    /// Submitting twice with the same key returns the first job.
    pub idempotency_key: Option<String>,
    /// Who asked for it, for the audit trail: `certificate:<CN>`, `token:<name>`,
    /// `anonymous:<address>`, `hook:<name>` or `jd:<proposal id>`; empty if unknown. Jobs a
    /// cron schedule fires carry the schedule creator's.
    #[serde(default)]
    pub submitted_by: String,
}

/// One finished attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Node that ran it.
    pub node: String,
    /// When it started (Unix ms).
    pub started_ms: u64,
    /// When it ended (Unix ms).
    pub ended_ms: u64,
    /// `succeeded`, `failed`, `retry`, `crashed`, `cancelled`, `interrupted` or `lost`.
    pub outcome: String,
    /// Output excerpt or reason.
    pub reason: String,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Job id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Job type.
    pub job_type: String,
    /// Spec.
    pub spec: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Priority.
    pub priority: u8,
    /// Current state.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Attempt deadline, if set.
    pub timeout_ms: Option<u64>,
    /// Creation time (Unix ms).
    pub created_ms: u64,
    /// Last change (Unix ms).
    pub updated_ms: u64,
    /// Next run time while SCHEDULED (Unix ms).
    pub run_at_ms: Option<u64>,
    /// Finish time once final (Unix ms).
    pub finished_ms: Option<u64>,
    /// Node running it while RUNNING.
    pub node: Option<String>,
    /// Output once SUCCEEDED.
    pub output: Option<String>,
    /// Reason of the last failure, retry or cancellation.
    pub reason: Option<String>,
    /// True once cancellation was requested.
    pub cancel_requested: bool,
    /// Finished attempts, oldest first.
    pub history: Vec<AttemptRecord>,
    /// Who asked for it (see [`NewJob::submitted_by`]); empty for jobs stored before it was
    /// recorded.
    pub submitted_by: String,
    /// Who asked for its cancellation, named as `submitted_by` names callers; empty if it
    /// was not cancelled through an API.
    pub cancelled_by: String,
}

/// A job claimed by a node: what its worker needs to run the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    /// Job id.
    pub id: String,
    /// This attempt's number.
    pub attempt: u32,
    /// Job type.
    pub job_type: String,
    /// Spec.
    pub spec: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Attempt deadline, if set.
    pub timeout_ms: Option<u64>,
    /// Cancellation was requested before the claim.
    pub cancel_requested: bool,
    /// Its retry policy (for the backoff after a crash).
    pub retry: RetryPolicy,
}

/// How an attempt ended, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Done; the job is SUCCEEDED.
    Succeeded {
        /// Output.
        output: String,
    },
    /// Permanent failure; the job is FAILED.
    Failed {
        /// Reason.
        reason: String,
    },
    /// Try again after `after` (SCHEDULED), or DEAD if attempts are exhausted.
    Retry {
        /// Delay.
        after: Duration,
        /// Reason.
        reason: String,
        /// Label of the attempt record: `retry` (plugin asked) or `crashed`.
        outcome: &'static str,
    },
    /// Stopped on request; the job is CANCELLED.
    Cancelled {
        /// Reason.
        reason: String,
    },
    /// The host stopped the attempt (shutdown): back to the queue, not counted.
    Interrupted {
        /// Reason.
        reason: String,
    },
}

impl Finish {
    /// The attempt's outcome as metrics and attempt records name it.
    pub fn label(&self) -> &'static str {
        match self {
            Finish::Succeeded { .. } => "succeeded",
            Finish::Failed { .. } => "failed",
            Finish::Retry { outcome, .. } => outcome,
            Finish::Cancelled { .. } => "cancelled",
            Finish::Interrupted { .. } => "interrupted",
        }
    }
}

/// Result of a cancel request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelResult {
    /// No such job.
    NotFound,
    /// It was queued or scheduled and is now CANCELLED.
    Cancelled,
    /// It is running; its node has been told to stop it.
    Cancelling,
    /// It had already finished in this state.
    AlreadyFinal(JobState),
}

/// What a node publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node id (unique per process).
    pub id: String,
    /// Host name.
    pub hostname: String,
    /// jobhost version.
    pub version: String,
    /// Job types it serves.
    pub job_types: Vec<String>,
    /// Jobs it runs at once.
    pub capacity: u32,
    /// Start time (Unix ms).
    pub started_ms: u64,
    /// Jobs it was running at its last heartbeat.
    #[serde(default)]
    pub running: u32,
    /// Time of its last heartbeat (Unix ms).
    #[serde(default)]
    pub heartbeat_ms: u64,
}

/// A cron schedule: a job template fired on a cron expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronSchedule {
    /// Unique name.
    pub name: String,
    /// Cron expression with seconds: `sec min hour day-of-month month day-of-week [year]`.
    pub schedule: String,
    /// The job each fire creates.
    pub template: NewJob,
}

/// Events published by the store, seen by every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A job of this type became ready.
    Ready(String),
    /// Cancellation of this running job was requested.
    Cancel(String),
    /// This job reached a final state.
    Done(String),
}

impl Event {
    fn parse(payload: &str) -> Option<Event> {
        let (kind, arg) = payload.split_once(' ')?;
        let arg = arg.to_owned();
        Some(match kind {
            "ready" => Event::Ready(arg),
            "cancel" => Event::Cancel(arg),
            "done" => Event::Done(arg),
            _ => return None,
        })
    }
}

/// One log line of a job, as stored in its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Stream entry id (`<ms>-<seq>`), usable as a resume cursor.
    pub cursor: String,
    /// Attempt that wrote it.
    pub attempt: u32,
    /// Level name.
    pub level: String,
    /// The line.
    pub message: String,
}

struct Scripts {
    enqueue: Script,
    claim: Script,
    renew: Script,
    finish: Script,
    reap: Script,
    promote: Script,
    cancel: Script,
    leader: Script,
    advance_cron: Script,
    sweep: Script,
    resign: Script,
    jd_create: Script,
    jd_swap: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            enqueue: Script::new(include_str!("lua/enqueue.lua")),
            claim: Script::new(include_str!("lua/claim.lua")),
            renew: Script::new(include_str!("lua/renew.lua")),
            finish: Script::new(include_str!("lua/finish.lua")),
            reap: Script::new(include_str!("lua/reap.lua")),
            promote: Script::new(include_str!("lua/promote.lua")),
            cancel: Script::new(include_str!("lua/cancel.lua")),
            leader: Script::new(include_str!("lua/leader.lua")),
            advance_cron: Script::new(include_str!("lua/advance_cron.lua")),
            sweep: Script::new(include_str!("lua/sweep.lua")),
            resign: Script::new(include_str!("lua/resign.lua")),
            jd_create: Script::new(include_str!("lua/jd_create.lua")),
            jd_swap: Script::new(include_str!("lua/jd_swap.lua")),
        }
    }
}

/// Settings of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Key prefix (also the Cluster hash tag).
    pub prefix: String,
    /// How long finished jobs (record, attempts, log) are kept.
    pub retention: Duration,
    /// How long an idempotency key maps to its job.
    pub idempotency_ttl: Duration,
    /// Most entries kept in one job's log stream (oldest trimmed beyond).
    pub log_max_entries: usize,
    /// TLS settings for `rediss://` URLs.
    pub tls: TlsFiles,
    /// Per-job-type limits (none by default).
    pub limits: JobLimits,
}

/// Limits of one job type; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeLimits {
    /// Most jobs of the type waiting (QUEUED + SCHEDULED); more are refused.
    pub max_queued: Option<u64>,
    /// Most jobs of the type RUNNING at once, cluster-wide; more wait QUEUED.
    pub max_concurrent: Option<u64>,
}

/// Per-job-type limits the store enforces (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobLimits {
    /// Limits of named job types.
    pub types: BTreeMap<String, TypeLimits>,
    /// Queue limit of job types without their own `max_queued`.
    pub default_max_queued: Option<u64>,
}

impl JobLimits {
    /// The queue limit of `job_type` and the config knob that sets it, if it has one.
    pub fn max_queued(&self, job_type: &str) -> Option<(u64, String)> {
        match self.types.get(job_type).and_then(|t| t.max_queued) {
            Some(limit) => Some((limit, format!("job_types.{job_type}.max_queued"))),
            None => self
                .default_max_queued
                .map(|limit| (limit, "worker.max_queued_per_type".to_owned())),
        }
    }

    /// The concurrency limit of `job_type`, if it has one.
    pub fn max_concurrent(&self, job_type: &str) -> Option<u64> {
        self.types.get(job_type).and_then(|t| t.max_concurrent)
    }
}

/// How many jobs of one type wait and run, cluster-wide (what its limits count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeLoad {
    /// QUEUED.
    pub queued: u64,
    /// SCHEDULED (delayed, or backing off before a retry).
    pub scheduled: u64,
    /// RUNNING.
    pub running: u64,
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

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            prefix: "jobhost".into(),
            retention: Duration::from_secs(7 * 24 * 3600),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            log_max_entries: 100_000,
            tls: TlsFiles::default(),
            limits: JobLimits::default(),
        }
    }
}

/// The Redis-backed store. Cheap to clone; clones share one multiplexed connection that
/// reconnects by itself.
#[derive(Clone)]
pub struct Store {
    client: redis::Client,
    conn: Conn,
    keys: Keys,
    options: StoreOptions,
    scripts: std::sync::Arc<Scripts>,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn millis(d: Duration) -> u64 {
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
        let store = Store {
            client,
            conn,
            keys: Keys::new(&options.prefix),
            options,
            scripts: std::sync::Arc::new(Scripts::new()),
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

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Creates a job, or returns the existing one for its idempotency key. Returns the id
    /// and whether it was created now.
    pub async fn enqueue(&self, job: &NewJob) -> Result<(String, bool)> {
        if job.job_type.is_empty() {
            return Err(StoreError::Invalid("job type: empty".into()));
        }
        if job.retry.max_attempts == 0 {
            return Err(StoreError::Invalid(
                "max attempts: must be at least 1".into(),
            ));
        }
        let id = new_id();
        let k = &self.keys;
        let idem_key = match &job.idempotency_key {
            Some(key) => k.idempotency(key),
            None => k.job(&id), // same as KEYS[1]: the script reads that as "no key"
        };
        let labels = serde_json::to_string(&job.labels).expect("labels serialize");
        let max_queued = self.options.limits.max_queued(&job.job_type);
        let mut invocation = self.scripts.enqueue.prepare_invoke();
        invocation
            .key(k.job(&id))
            .key(k.queue(&job.job_type))
            .key(k.delayed())
            .key(idem_key)
            .key(k.seq())
            .key(k.jobs())
            .key(k.scheduled_of(&job.job_type))
            .arg(&id)
            .arg(job.run_at_ms.unwrap_or(0))
            .arg(job.priority)
            .arg(millis(self.options.idempotency_ttl))
            .arg(k.events())
            .arg(&job.job_type)
            .arg(max_queued.as_ref().map_or(0, |(limit, _)| *limit))
            .arg(k.prefix())
            .arg("name")
            .arg(&job.name)
            .arg("type")
            .arg(&job.job_type)
            .arg("spec")
            .arg(&job.spec)
            .arg("labels")
            .arg(labels)
            .arg("priority")
            .arg(job.priority)
            .arg("attempts")
            .arg(0)
            .arg("max_attempts")
            .arg(job.retry.max_attempts)
            .arg("backoff_base_ms")
            .arg(job.retry.backoff_base_ms)
            .arg("backoff_max_ms")
            .arg(job.retry.backoff_max_ms)
            .arg("timeout_ms")
            .arg(job.timeout_ms.unwrap_or(0))
            .arg("cancel")
            .arg(0)
            .arg("submitted_by")
            .arg(&job.submitted_by);
        let mut conn = self.conn();
        let (id, created, waiting): (String, i8, u64) = invocation.invoke_async(&mut conn).await?;
        if created < 0 {
            let (limit, knob) = max_queued.unwrap_or_default();
            return Err(StoreError::QueueFull {
                job_type: job.job_type.clone(),
                waiting,
                limit,
                knob,
            });
        }
        Ok((id, created == 1))
    }

    /// The job `id` with its attempt history, if it exists (finished jobs expire after the
    /// retention time).
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        let mut conn = self.conn();
        let (fields, history): (BTreeMap<String, String>, Vec<String>) = redis::pipe()
            .hgetall(self.keys.job(id))
            .lrange(self.keys.attempts(id), 0, -1)
            .query_async(&mut conn)
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let mut record = parse_job(&self.keys.job(id), fields)?;
        record.history = history
            .iter()
            .map(|h| serde_json::from_str(h))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| StoreError::Corrupt {
                key: self.keys.attempts(id),
                reason: e.to_string(),
            })?;
        Ok(Some(record))
    }

    /// Claims up to `max` ready jobs of `job_types` for `node`, with a lease of `lease`.
    pub async fn claim(
        &self,
        node: &str,
        job_types: &[String],
        max: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        if job_types.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.claim.prepare_invoke();
        invocation
            .key(self.keys.running())
            .key(self.keys.limited())
            .arg(self.keys.prefix())
            .arg(node)
            .arg(max)
            .arg(millis(lease));
        for job_type in job_types {
            invocation
                .key(self.keys.queue(job_type))
                .key(self.keys.running_of(job_type))
                .arg(job_type)
                .arg(self.options.limits.max_concurrent(job_type).unwrap_or(0));
        }
        let mut conn = self.conn();
        let flat: Vec<redis::Value> = invocation.invoke_async(&mut conn).await?;
        flat.chunks(CLAIM_FIELDS)
            .map(|c| parse_claim(&self.keys, c))
            .collect::<Result<Vec<_>>>()
    }

    /// Extends the leases of `ids` held by `node`. Returns (ids whose cancellation was
    /// requested, ids the node no longer holds).
    pub async fn renew(
        &self,
        node: &str,
        ids: &[String],
        lease: Duration,
    ) -> Result<(Vec<String>, Vec<String>)> {
        if ids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut invocation = self.scripts.renew.prepare_invoke();
        invocation
            .key(self.keys.running())
            .arg(self.keys.prefix())
            .arg(node)
            .arg(millis(lease));
        for id in ids {
            invocation.arg(id);
        }
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Records the end of the claimed attempt `job` on `node`. Returns the job's new state,
    /// or `None` if the node no longer held the attempt (its lease expired and the job was
    /// re-queued): the result is then discarded.
    pub async fn finish(
        &self,
        job: &ClaimedJob,
        node: &str,
        finish: &Finish,
    ) -> Result<Option<JobState>> {
        let (id, attempt) = (job.id.as_str(), job.attempt);
        let k = &self.keys;
        let (kind, text, delay, label) = match finish {
            Finish::Succeeded { output } => ("succeeded", output.as_str(), 0, "succeeded"),
            Finish::Failed { reason } => ("failed", reason.as_str(), 0, "failed"),
            Finish::Retry {
                after,
                reason,
                outcome,
            } => ("retry", reason.as_str(), millis(*after), *outcome),
            Finish::Cancelled { reason } => ("cancelled", reason.as_str(), 0, "cancelled"),
            Finish::Interrupted { reason } => ("requeue", reason.as_str(), 0, "interrupted"),
        };
        let mut invocation = self.scripts.finish.prepare_invoke();
        invocation
            .key(k.job(id))
            .key(k.running())
            .key(k.delayed())
            .key(k.dead())
            .key(k.attempts(id))
            .key(k.log(id))
            .key(k.queue(&job.job_type))
            .key(k.seq())
            .key(k.running_of(&job.job_type))
            .key(k.limited())
            .key(k.scheduled_of(&job.job_type))
            .arg(id)
            .arg(node)
            .arg(attempt)
            .arg(kind)
            .arg(text)
            .arg(delay)
            .arg(millis(self.options.retention))
            .arg(k.events())
            .arg(label);
        let mut conn = self.conn();
        let state: String = invocation.invoke_async(&mut conn).await?;
        if state == "stale" {
            return Ok(None);
        }
        JobState::parse(&state)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                key: k.job(id),
                reason: format!("unknown state {state:?}"),
            })
    }

    /// Cancels `id`.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<CancelResult> {
        self.cancel_by(id, reason, "").await
    }

    /// As [`Store::cancel`], recording `by` (who asked, as [`NewJob::submitted_by`] names
    /// callers) in the job's `cancelled_by`.
    pub async fn cancel_by(&self, id: &str, reason: &str, by: &str) -> Result<CancelResult> {
        let mut invocation = self.scripts.cancel.prepare_invoke();
        invocation
            .key(self.keys.job(id))
            .key(self.keys.delayed())
            .key(self.keys.attempts(id))
            .arg(id)
            .arg(self.keys.prefix())
            .arg(self.keys.events())
            .arg(millis(self.options.retention))
            .arg(reason)
            .arg(by);
        let mut conn = self.conn();
        let answer: String = invocation.invoke_async(&mut conn).await?;
        Ok(match answer.as_str() {
            "not_found" => CancelResult::NotFound,
            "cancelled" => CancelResult::Cancelled,
            "cancelling" => CancelResult::Cancelling,
            other => match JobState::parse(other) {
                Some(state) => CancelResult::AlreadyFinal(state),
                None => {
                    return Err(StoreError::Corrupt {
                        key: self.keys.job(id),
                        reason: format!("unknown state {other:?}"),
                    });
                }
            },
        })
    }

    /// Moves up to `limit` due delayed jobs to their ready queues.
    pub async fn promote_due(&self, limit: usize) -> Result<usize> {
        let mut invocation = self.scripts.promote.prepare_invoke();
        invocation
            .key(self.keys.delayed())
            .key(self.keys.seq())
            .arg(self.keys.prefix())
            .arg(limit)
            .arg(self.keys.events());
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Re-queues up to `limit` running jobs whose lease expired.
    pub async fn reap_expired(&self, limit: usize) -> Result<usize> {
        let mut invocation = self.scripts.reap.prepare_invoke();
        invocation
            .key(self.keys.running())
            .key(self.keys.dead())
            .key(self.keys.seq())
            .key(self.keys.limited())
            .arg(self.keys.prefix())
            .arg(limit)
            .arg(self.keys.events())
            .arg(millis(self.options.retention));
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// How many jobs of `job_type` are QUEUED, SCHEDULED and RUNNING, cluster-wide, as its
    /// limits count them.
    pub async fn type_load(&self, job_type: &str) -> Result<TypeLoad> {
        let mut conn = self.conn();
        let (queued, scheduled, running): (u64, u64, u64) = redis::pipe()
            .zcard(self.keys.queue(job_type))
            .scard(self.keys.scheduled_of(job_type))
            .scard(self.keys.running_of(job_type))
            .query_async(&mut conn)
            .await?;
        Ok(TypeLoad {
            queued,
            scheduled,
            running,
        })
    }

    /// Drops index entries of expired jobs (up to `batch` per index).
    pub async fn sweep(&self, batch: usize) -> Result<usize> {
        let mut invocation = self.scripts.sweep.prepare_invoke();
        invocation
            .key(self.keys.jobs())
            .key(self.keys.dead())
            .key(self.keys.sweep_cursor())
            .arg(self.keys.prefix())
            .arg(batch);
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Takes or keeps the leader lease for `node`. Returns the fencing token while leading.
    pub async fn lead(&self, node: &str, ttl: Duration) -> Result<Option<u64>> {
        let mut invocation = self.scripts.leader.prepare_invoke();
        invocation
            .key(self.keys.leader())
            .key(self.keys.leader_token())
            .arg(node)
            .arg(millis(ttl));
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Gives up the leader lease if `node` holds it.
    pub async fn resign(&self, node: &str, token: u64) -> Result<()> {
        let mut invocation = self.scripts.resign.prepare_invoke();
        invocation
            .key(self.keys.leader())
            .arg(format!("{node} {token}"));
        let mut conn = self.conn();
        let _: u8 = invocation.invoke_async(&mut conn).await?;
        Ok(())
    }

    /// Adds or replaces a cron schedule; its first fire is `first_fire_ms`.
    pub async fn put_cron(&self, cron: &CronSchedule, first_fire_ms: u64) -> Result<()> {
        let json = serde_json::to_string(cron).expect("cron serializes");
        let mut conn = self.conn();
        let _: () = redis::pipe()
            .atomic()
            .hset(self.keys.cron(), &cron.name, json)
            .zadd(self.keys.cron_next(), &cron.name, first_fire_ms)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Removes a cron schedule. Returns whether it existed.
    pub async fn delete_cron(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn();
        let (removed, _): (u32, u32) = redis::pipe()
            .atomic()
            .hdel(self.keys.cron(), name)
            .zrem(self.keys.cron_next(), name)
            .query_async(&mut conn)
            .await?;
        Ok(removed == 1)
    }

    /// Cron schedules due at `now_ms`, with the fire time each is due for.
    pub async fn due_crons(&self, now_ms: u64) -> Result<Vec<(CronSchedule, u64)>> {
        let mut conn = self.conn();
        let due: Vec<(String, u64)> = conn
            .zrangebyscore_withscores(self.keys.cron_next(), 0, now_ms)
            .await?;
        let mut out = Vec::with_capacity(due.len());
        for (name, at) in due {
            let json: Option<String> = conn.hget(self.keys.cron(), &name).await?;
            let Some(json) = json else { continue };
            match serde_json::from_str(&json) {
                Ok(cron) => out.push((cron, at)),
                // One bad definition must not stop the others from firing.
                Err(e) => tracing::error!(cron = %name, "unreadable cron schedule skipped: {e}"),
            }
        }
        Ok(out)
    }

    /// Moves cron `name` from fire `due_ms` to `next_ms`, fenced by the leader token.
    /// Returns false if this node no longer leads or the fire was already handled.
    pub async fn advance_cron(
        &self,
        node: &str,
        token: u64,
        name: &str,
        due_ms: u64,
        next_ms: u64,
    ) -> Result<bool> {
        let mut invocation = self.scripts.advance_cron.prepare_invoke();
        invocation
            .key(self.keys.leader())
            .key(self.keys.cron_next())
            .arg(format!("{node} {token}"))
            .arg(name)
            .arg(due_ms)
            .arg(next_ms);
        let mut conn = self.conn();
        let advanced: u8 = invocation.invoke_async(&mut conn).await?;
        Ok(advanced == 1)
    }

    /// Registers or refreshes a host node; the registration expires after `ttl`.
    pub async fn heartbeat(&self, node: &NodeInfo, ttl: Duration) -> Result<()> {
        let json = serde_json::to_string(node).expect("node info serializes");
        let expires = now_ms() + millis(ttl);
        let mut conn = self.conn();
        let _: () = redis::pipe()
            .set_ex(self.keys.node(&node.id), json, ttl.as_secs().max(1))
            .zadd(self.keys.nodes(), &node.id, expires)
            .zrembyscore(self.keys.nodes(), 0, now_ms())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Removes a node's registration (graceful shutdown).
    pub async fn deregister(&self, node_id: &str) -> Result<()> {
        let mut conn = self.conn();
        let _: () = redis::pipe()
            .del(self.keys.node(node_id))
            .zrem(self.keys.nodes(), node_id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Nodes whose registration has not expired.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let mut conn = self.conn();
        let ids: Vec<String> = conn
            .zrangebyscore(self.keys.nodes(), now_ms(), "+inf")
            .await?;
        let mut nodes = Vec::with_capacity(ids.len());
        for id in ids {
            let json: Option<String> = conn.get(self.keys.node(&id)).await?;
            if let Some(node) = json.and_then(|j| serde_json::from_str(&j).ok()) {
                nodes.push(node);
            }
        }
        Ok(nodes)
    }

    /// Queue depths and the age of each queue's next job (for `job_types`), and the
    /// numbers of RUNNING, SCHEDULED and DEAD jobs and live nodes, in two round trips.
    /// Ages are by the Redis server's clock, like the jobs' creation times.
    pub async fn overview(&self, job_types: &[String]) -> Result<Overview> {
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        pipe.zcard(self.keys.running())
            .zcard(self.keys.delayed())
            .zcard(self.keys.dead())
            .zcount(self.keys.nodes(), now_ms(), "+inf");
        for job_type in job_types {
            pipe.zcard(self.keys.queue(job_type))
                .zrange(self.keys.queue(job_type), 0, 0);
        }
        let mut conn = self.conn();
        let values: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let mut values = values.into_iter();
        let mut next = || -> Result<redis::Value> {
            values.next().ok_or_else(|| StoreError::Corrupt {
                key: "overview".into(),
                reason: "a short pipeline answer".into(),
            })
        };
        let (secs, micros): (u64, u64) = parse_value(next()?)?;
        let now = secs * 1000 + micros / 1000;
        let running: u64 = parse_value(next()?)?;
        let scheduled: u64 = parse_value(next()?)?;
        let dead: u64 = parse_value(next()?)?;
        let nodes: u64 = parse_value(next()?)?;
        let mut queues = Vec::with_capacity(job_types.len());
        let mut heads = Vec::new();
        for job_type in job_types {
            let depth: u64 = parse_value(next()?)?;
            let head: Vec<String> = parse_value(next()?)?;
            queues.push(QueueDepth {
                job_type: job_type.clone(),
                depth,
                next_age_ms: 0,
            });
            heads.push(head.into_iter().next());
        }
        let mut pipe = redis::pipe();
        for id in heads.iter().flatten() {
            pipe.hget(self.keys.job(id), "created_ms");
        }
        if heads.iter().any(Option::is_some) {
            let mut conn = self.conn();
            let created: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
            let mut created = created.into_iter();
            for (queue, head) in queues.iter_mut().zip(&heads) {
                if head.is_some() {
                    let at = created.next().flatten().unwrap_or(now);
                    queue.next_age_ms = now.saturating_sub(at);
                }
            }
        }
        Ok(Overview {
            queues,
            running,
            scheduled,
            dead,
            nodes,
        })
    }

    /// Appends log lines of attempt `attempt` to job `id`'s stream, in one round trip.
    pub async fn append_log(&self, id: &str, attempt: u32, lines: &[(&str, &str)]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let key = self.keys.log(id);
        let mut pipe = redis::pipe();
        for (level, message) in lines {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.options.log_max_entries)
                .arg("*")
                .arg("attempt")
                .arg(attempt)
                .arg("level")
                .arg(*level)
                .arg("msg")
                .arg(*message)
                .ignore();
        }
        let mut conn = self.conn();
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Log entries of job `id` after `cursor` (from the start when `None`), up to `count`.
    pub async fn read_log(
        &self,
        id: &str,
        cursor: Option<&str>,
        count: usize,
    ) -> Result<Vec<LogEntry>> {
        let start = match cursor {
            Some(c) => format!("({c}"),
            None => "-".to_owned(),
        };
        let mut conn = self.conn();
        let reply: redis::streams::StreamRangeReply = conn
            .xrange_count(self.keys.log(id), start, "+", count)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|entry| {
                let text = |f: &str| entry.get::<String>(f).unwrap_or_default();
                LogEntry {
                    attempt: text("attempt").parse().unwrap_or(0),
                    level: text("level"),
                    message: text("msg"),
                    cursor: entry.id,
                }
            })
            .collect())
    }

    /// Subscribes to the store's events. The stream ends if the subscription connection
    /// drops; callers resubscribe.
    pub async fn events(&self) -> Result<impl futures::Stream<Item = Event> + use<>> {
        use futures::StreamExt;
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.keys.events()).await?;
        Ok(pubsub.into_on_message().filter_map(|msg| async move {
            let payload: String = msg.get_payload().ok()?;
            Event::parse(&payload)
        }))
    }

    /// One page of jobs, newest first, that match `filter`, after `cursor` (a job id from
    /// the previous page). Returns the page and the cursor of the next one, if any.
    ///
    /// Records are read in batches of `page_size`; at most [`LIST_SCAN_LIMIT`] are examined
    /// per call, so a selective filter may return a short page with a cursor to go on.
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        page_size: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<JobRecord>, Option<String>)> {
        let page_size = page_size.clamp(1, 1000);
        let mut page = Vec::new();
        let mut position = cursor.map(str::to_owned);
        let mut scanned = 0;
        loop {
            let upper = match &position {
                Some(id) => format!("({id}"),
                None => "+".to_owned(),
            };
            let batch_size = page_size.max(100);
            let mut conn = self.conn();
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(self.keys.jobs())
                .arg(&upper)
                .arg("-")
                .arg("BYLEX")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(batch_size)
                .query_async(&mut conn)
                .await?;
            if ids.is_empty() {
                return Ok((page, None));
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.hgetall(self.keys.job(id));
            }
            let mut conn = self.conn();
            let records: Vec<BTreeMap<String, String>> = pipe.query_async(&mut conn).await?;
            for (id, fields) in ids.iter().zip(records) {
                position = Some(id.clone());
                scanned += 1;
                if fields.is_empty() {
                    continue; // expired, not swept yet
                }
                let record = parse_job(&self.keys.job(id), fields)?;
                if filter.matches(&record) {
                    page.push(record);
                    if page.len() == page_size {
                        return Ok((page, position));
                    }
                }
            }
            if ids.len() < batch_size {
                return Ok((page, None));
            }
            if scanned >= LIST_SCAN_LIMIT {
                return Ok((page, position));
            }
        }
    }

    /// Ids of the most recent `limit` jobs (newest first).
    pub async fn recent_jobs(&self, limit: usize) -> Result<Vec<String>> {
        let mut conn = self.conn();
        Ok(conn
            .zrevrange(self.keys.jobs(), 0, limit.saturating_sub(1) as isize)
            .await?)
    }
}

/// A client for `url`, with the TLS files when they are set.
fn client(url: &str, tls: &TlsFiles) -> Result<redis::Client> {
    // rustls needs one process-wide crypto provider; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if *tls == TlsFiles::default() {
        return Ok(redis::Client::open(url)?);
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
        url,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )?)
}

/// Most job records one [`Store::list_jobs`] call examines.
pub const LIST_SCAN_LIMIT: usize = 10_000;

/// Which jobs a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this job type.
    pub job_type: Option<String>,
    /// Only jobs carrying all these labels.
    pub labels: BTreeMap<String, String>,
}

impl JobFilter {
    /// True if `job` passes the filter.
    pub fn matches(&self, job: &JobRecord) -> bool {
        self.state.is_none_or(|s| s == job.state)
            && self.job_type.as_ref().is_none_or(|t| *t == job.job_type)
            && self
                .labels
                .iter()
                .all(|(k, v)| job.labels.get(k) == Some(v))
    }
}

/// A pipeline answer as `T`; a mismatch is a corrupt answer.
fn parse_value<T: redis::FromRedisValue>(value: redis::Value) -> Result<T> {
    redis::from_redis_value(value).map_err(|e| StoreError::Corrupt {
        key: "pipeline answer".into(),
        reason: e.to_string(),
    })
}

/// What [`Store::overview`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    /// Ready queues, in the order asked.
    pub queues: Vec<QueueDepth>,
    /// RUNNING jobs.
    pub running: u64,
    /// SCHEDULED jobs.
    pub scheduled: u64,
    /// DEAD jobs.
    pub dead: u64,
    /// Live host nodes.
    pub nodes: u64,
}

/// One job type's ready queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// The job type.
    pub job_type: String,
    /// Jobs in it.
    pub depth: u64,
    /// Since when its next job has existed, ms (0 when empty).
    pub next_age_ms: u64,
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

fn parse_job(key: &str, mut f: BTreeMap<String, String>) -> Result<JobRecord> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    let mut take = |name: &str| f.remove(name).unwrap_or_default();
    let num = |v: String| v.parse::<u64>().ok();
    let state_text = take("state");
    let state =
        JobState::parse(&state_text).ok_or_else(|| corrupt(format!("state {state_text:?}")))?;
    let labels = serde_json::from_str(&take("labels")).unwrap_or_default();
    let timeout = num(take("timeout_ms")).filter(|t| *t > 0);
    Ok(JobRecord {
        id: take("id"),
        name: take("name"),
        job_type: take("type"),
        spec: take("spec"),
        labels,
        priority: take("priority").parse().unwrap_or(0),
        state,
        attempts: take("attempts").parse().unwrap_or(0),
        retry: RetryPolicy {
            max_attempts: take("max_attempts").parse().unwrap_or(1),
            backoff_base_ms: num(take("backoff_base_ms")).unwrap_or(1000),
            backoff_max_ms: num(take("backoff_max_ms")).unwrap_or(300_000),
        },
        timeout_ms: timeout,
        created_ms: num(take("created_ms")).unwrap_or(0),
        updated_ms: num(take("updated_ms")).unwrap_or(0),
        run_at_ms: num(take("run_at_ms")).filter(|_| state == JobState::Scheduled),
        finished_ms: num(take("finished_ms")),
        node: Some(take("node")).filter(|n| !n.is_empty()),
        output: Some(take("output")).filter(|_| state == JobState::Succeeded),
        reason: Some(take("reason")).filter(|r| !r.is_empty()),
        cancel_requested: take("cancel") == "1",
        history: Vec::new(),
        submitted_by: take("submitted_by"),
        cancelled_by: take("cancelled_by"),
    })
}

/// Values per job in the claim script's reply.
const CLAIM_FIELDS: usize = 10;

fn parse_claim(keys: &Keys, c: &[redis::Value]) -> Result<ClaimedJob> {
    let text = |i: usize| -> String {
        c.get(i)
            .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
            .unwrap_or_default()
    };
    let id = text(0);
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: keys.job(&id),
        reason: reason.to_owned(),
    };
    if c.len() != CLAIM_FIELDS {
        return Err(corrupt("short claim reply"));
    }
    Ok(ClaimedJob {
        attempt: text(1).parse().map_err(|_| corrupt("attempt"))?,
        job_type: text(2),
        spec: text(3),
        labels: serde_json::from_str(&text(4)).unwrap_or_default(),
        timeout_ms: text(5).parse().ok().filter(|t: &u64| *t > 0),
        cancel_requested: text(6) == "1",
        // The claim already happened in Redis: a damaged optional field must not orphan
        // the job, so defaults stand in for it.
        retry: {
            let defaults = RetryPolicy::default();
            RetryPolicy {
                max_attempts: text(7).parse().unwrap_or(1),
                backoff_base_ms: text(8).parse().unwrap_or(defaults.backoff_base_ms),
                backoff_max_ms: text(9).parse().unwrap_or(defaults.backoff_max_ms),
            }
        },
        id,
    })
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
