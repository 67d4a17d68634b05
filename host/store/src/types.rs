//! The values the store takes and gives: jobs and their states, attempts, outcomes, nodes,
//! cron schedules, events and log entries. Nothing here speaks Redis.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// Attempts the plugin may end, the first included (1 = never retry); attempts lost
    /// with their node do not count (see `lua/attempts.lua`).
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
    /// Keep the job for `redis.retention_secs` even when it succeeds (not the shorter
    /// succeeded retention, nor counted against `redis.succeeded_max`): for jobs whose
    /// outcome is read later, such as Job Distributor deliveries.
    #[serde(default)]
    pub keep_succeeded: bool,
}

/// What the store wrote for one submitted job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The job's id: the new job's, or the earlier job's for a known idempotency key.
    pub id: String,
    /// False when an idempotency key returned an earlier job (nothing was written).
    pub created: bool,
    /// The store's clock when the batch was written (Unix ms): a created job's creation
    /// time.
    pub created_ms: u64,
}

impl Enqueued {
    /// The record of a job created from `job`, as the store wrote it, so a caller need not
    /// read it back. `None` when the job was not created now (read the earlier one).
    pub fn record(&self, job: &NewJob) -> Option<JobRecord> {
        if !self.created {
            return None;
        }
        let due = job.run_at_ms.filter(|at| *at > self.created_ms);
        Some(JobRecord {
            id: self.id.clone(),
            name: job.name.clone(),
            job_type: job.job_type.clone(),
            spec: job.spec.clone(),
            labels: job.labels.clone(),
            priority: job.priority,
            state: if due.is_some() {
                JobState::Scheduled
            } else {
                JobState::Queued
            },
            attempts: 0,
            retry: job.retry,
            timeout_ms: job.timeout_ms.filter(|t| *t > 0),
            created_ms: self.created_ms,
            updated_ms: self.created_ms,
            run_at_ms: due,
            finished_ms: None,
            node: None,
            output: None,
            reason: None,
            cancel_requested: false,
            history: Vec::new(),
            submitted_by: job.submitted_by.clone(),
            cancelled_by: String::new(),
        })
    }
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

/// The end of one claimed attempt, as [`Store::finish_batch`](crate::Store::finish_batch)
/// records it.
#[derive(Debug, Clone, Copy)]
pub struct AttemptEnd<'a> {
    /// The attempt, as claimed.
    pub job: &'a ClaimedJob,
    /// How it ended.
    pub finish: &'a Finish,
    /// Whether this attempt stored log lines. Only then (or when the job ran before) does
    /// the retention of a succeeded job cover a log: a job that logged nothing costs one
    /// command less. Unsure callers pass `true`; a log missed all the same (written by a
    /// node that lost its lease, say) goes with the sweep once its record has expired.
    pub logged: bool,
}

impl<'a> AttemptEnd<'a> {
    /// The end of `job` as `finish`, with a log to look after (see [`AttemptEnd::logged`]).
    pub fn new(job: &'a ClaimedJob, finish: &'a Finish) -> Self {
        AttemptEnd {
            job,
            finish,
            logged: true,
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
    /// A call was queued for this Chainlink node's wsrpc session (`jd:outbox:<node id>`).
    JdOutbox(String),
}

impl Event {
    pub(crate) fn parse(payload: &str) -> Option<Event> {
        let (kind, arg) = payload.split_once(' ')?;
        let arg = arg.to_owned();
        Some(match kind {
            "ready" => Event::Ready(arg),
            "cancel" => Event::Cancel(arg),
            "jd" => Event::JdOutbox(arg),
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
