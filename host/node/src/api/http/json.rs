//! The JSON bodies of the HTTP API (each with its OpenAPI schema), and their conversions
//! from the scheduler API's messages and the Job Distributor's records.

use std::collections::BTreeMap;

use jobhost_proto::scheduler as proto;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use super::error::ErrorBody;

fn ms(t: Option<prost_types::Timestamp>) -> Option<u64> {
    let t = t?;
    Some(u64::try_from(t.seconds).ok()? * 1000 + u64::try_from(t.nanos).ok()? / 1_000_000)
}

pub(super) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// One finished attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptJson {
    /// Attempt number, from 1.
    pub attempt: u32,
    /// The node that ran it.
    pub node: String,
    /// Start, Unix ms.
    pub started_ms: Option<u64>,
    /// End, Unix ms.
    pub ended_ms: Option<u64>,
    /// `succeeded`, `failed`, `retry`, `crashed`, `cancelled`, `interrupted` or `lost`.
    pub outcome: String,
    /// Output excerpt or reason.
    pub reason: String,
}

/// A job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobJson {
    /// Job id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// The spec as submitted.
    pub spec: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// 0-255.
    pub priority: u32,
    /// QUEUED, SCHEDULED, RUNNING, SUCCEEDED, FAILED, CANCELLED or DEAD.
    pub state: String,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts the plugin may end (lost ones do not count).
    pub max_attempts: u32,
    /// Attempt deadline, if set.
    pub timeout_ms: Option<u64>,
    /// Creation, Unix ms.
    pub created_ms: Option<u64>,
    /// Last change, Unix ms.
    pub updated_ms: Option<u64>,
    /// Next run while SCHEDULED, Unix ms.
    pub run_at_ms: Option<u64>,
    /// Finish, Unix ms.
    pub finished_ms: Option<u64>,
    /// Node running it.
    pub node: Option<String>,
    /// Output once SUCCEEDED.
    pub output: Option<String>,
    /// Reason of the last failure, retry or cancellation.
    pub reason: Option<String>,
    /// A cancel was asked for.
    pub cancel_requested: bool,
    /// Who asked for it: `certificate:<CN>`, `token:<name>`, `anonymous:<address>`,
    /// `hook:<name>` or `jd:<proposal id>` (jobs a cron schedule fires carry its creator's).
    pub submitted_by: Option<String>,
    /// Who asked for its cancellation, named as `submitted_by` names callers.
    pub cancelled_by: Option<String>,
    /// Finished attempts, oldest first.
    pub history: Vec<AttemptJson>,
    /// Read from the job history (PostgreSQL): Redis retention has dropped the job, or it
    /// is a history search result.
    pub archived: bool,
}

impl From<proto::Job> for JobJson {
    fn from(j: proto::Job) -> Self {
        let state = j
            .state()
            .as_str_name()
            .trim_start_matches("JOB_STATE_")
            .to_owned();
        JobJson {
            id: j.id,
            name: j.name,
            job_type: j.job_type,
            spec: j.spec,
            labels: j.labels.into_iter().collect(),
            priority: j.priority,
            state,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            timeout_ms: (j.timeout_ms > 0).then_some(j.timeout_ms),
            created_ms: ms(j.created_at),
            updated_ms: ms(j.updated_at),
            run_at_ms: ms(j.run_at),
            finished_ms: ms(j.finished_at),
            node: non_empty(j.node),
            output: non_empty(j.output),
            reason: non_empty(j.reason),
            cancel_requested: j.cancel_requested,
            submitted_by: non_empty(j.submitted_by),
            cancelled_by: non_empty(j.cancelled_by),
            history: j
                .history
                .into_iter()
                .map(|a| AttemptJson {
                    attempt: a.attempt,
                    node: a.node,
                    started_ms: ms(a.started_at),
                    ended_ms: ms(a.ended_at),
                    outcome: a.outcome,
                    reason: a.reason,
                })
                .collect(),
            archived: j.archived,
        }
    }
}

/// A job to create (`POST /v1/jobs`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJobJson {
    /// Job type: selects the plugin.
    #[serde(rename = "type")]
    pub job_type: String,
    /// The spec: a string as the plugin takes it, or any JSON value (sent as its JSON text).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// Display name; required with `cron`.
    #[serde(default)]
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// 0 (default) to 255.
    #[serde(default)]
    pub priority: u32,
    /// Attempts the plugin may end (lost ones do not count); 0 or absent: 3.
    #[serde(default)]
    pub max_attempts: u32,
    /// Delay before the second attempt, ms (doubling).
    #[serde(default)]
    pub backoff_base_ms: u64,
    /// Longest delay between attempts, ms.
    #[serde(default)]
    pub backoff_max_ms: u64,
    /// Attempt deadline, ms; 0 or absent: the plugin's.
    #[serde(default)]
    pub timeout_ms: u64,
    /// Do not start before this time, Unix ms.
    #[serde(default)]
    pub run_at_ms: Option<u64>,
    /// Submitting twice with one key returns the first job.
    #[serde(default)]
    pub idempotency_key: String,
    /// A cron expression with seconds: a schedule named `name` instead of one job.
    #[serde(default)]
    pub cron: String,
}

impl From<NewJobJson> for proto::ScheduleJobRequest {
    fn from(new: NewJobJson) -> Self {
        let spec = match new.spec {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        proto::ScheduleJobRequest {
            name: new.name,
            job_type: new.job_type,
            spec,
            labels: new.labels.into_iter().collect(),
            priority: new.priority,
            max_attempts: new.max_attempts,
            timeout_ms: new.timeout_ms,
            run_at: new.run_at_ms.map(crate::api::grpc::timestamp),
            cron: new.cron,
            idempotency_key: new.idempotency_key,
            timer_job: None,
            backoff_base_ms: new.backoff_base_ms,
            backoff_max_ms: new.backoff_max_ms,
        }
    }
}

/// The answer to `POST /v1/jobs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedJson {
    /// The job (absent when a cron schedule was created).
    pub job: Option<JobJson>,
    /// False when an idempotency key returned an earlier job.
    pub created: bool,
    /// The schedule's name, when `cron` was given.
    pub schedule: Option<String>,
}

/// Jobs to create in one call (`POST /v1/jobs:batch`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJobsJson {
    /// The jobs, each as `POST /v1/jobs` takes one; at most `api.max_batch_jobs`.
    pub jobs: Vec<NewJobJson>,
}

/// The answer to `POST /v1/jobs:batch`: one result per job, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchJson {
    /// One per job of the request.
    pub results: Vec<BatchResultJson>,
}

/// One job's result in a batch: `status` is what `POST /v1/jobs` would have answered for it
/// alone (201 created, 200 an earlier job by idempotency key, 4xx/5xx with `error`).
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResultJson {
    /// The HTTP status of this job's result.
    pub status: u16,
    /// The job (absent on error, or when a cron schedule was created).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobJson>,
    /// False when an idempotency key returned an earlier job.
    pub created: bool,
    /// The schedule's name, when `cron` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Why this job was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// A page of jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// Newest first.
    pub jobs: Vec<JobJson>,
    /// Pass as `page_token` for the next page; empty on the last.
    pub next_page_token: String,
}

/// Filters and paging of `GET /v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only jobs in this state (e.g. RUNNING).
    pub state: Option<String>,
    /// Only jobs of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub job_type: Option<String>,
    /// Only jobs with this label, `key=value` (one; gRPC `ListJobs` takes several).
    pub label: Option<String>,
    /// Jobs per page (default 50, at most 1000).
    pub page_size: Option<u32>,
    /// From a previous page's `next_page_token`.
    pub page_token: Option<String>,
}

/// Filters and paging of `GET /v1/history`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQueryJson {
    /// Only jobs of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub job_type: Option<String>,
    /// Only jobs that ended in this state: SUCCEEDED, FAILED, CANCELLED or DEAD.
    pub state: Option<String>,
    /// Only jobs with this label, `key=value`; repeat it for several (all must match).
    pub label: Option<String>,
    /// Only jobs finished at or after this time: RFC 3339 (`2026-12-01T00:00:00Z`) or Unix ms.
    pub from: Option<String>,
    /// Only jobs finished before this time: RFC 3339 or Unix ms.
    pub to: Option<String>,
    /// Only jobs submitted by this caller, e.g. `token:ci` (as `submitted_by` names it).
    pub submitted_by: Option<String>,
    /// Jobs per page (default 50, at most 1000).
    pub page_size: Option<u32>,
    /// From a previous page's `next_page_token`.
    pub page_token: Option<String>,
}

/// The answer to a cancel.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelledJson {
    /// The job after the request (CANCELLED, or still RUNNING with `cancel_requested`).
    pub job: JobJson,
}

/// A plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginJson {
    /// Plugin id (file name without `.wasm`).
    pub id: String,
    /// `loaded` or `rejected`.
    pub status: String,
    /// Its version, when loaded.
    pub version: String,
    /// Job types it serves.
    pub job_types: Vec<String>,
    /// Capabilities it asks for.
    pub capabilities: Vec<String>,
    /// Capabilities the config grants it.
    pub grants: Vec<String>,
    /// Why its latest file was refused, if it was.
    pub rejection: Option<String>,
    /// What it does.
    pub description: String,
}

/// Plugins of the answering node.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// By id.
    pub plugins: Vec<PluginJson>,
}

/// A live host node.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeJson {
    /// Node id.
    pub id: String,
    /// Host name.
    pub hostname: String,
    /// jobhost version.
    pub version: String,
    /// Job types it serves.
    pub job_types: Vec<String>,
    /// Jobs it runs at most at once.
    pub capacity: u32,
    /// Jobs it was running at its last heartbeat.
    pub running: u32,
    /// Since its last heartbeat, ms.
    pub heartbeat_age_ms: u64,
    /// Start, Unix ms.
    pub started_ms: u64,
}

/// Live host nodes.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    /// By id.
    pub nodes: Vec<NodeJson>,
}

/// One job type's ready queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueJson {
    /// Job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Jobs waiting.
    pub depth: u64,
    /// How long its next job has existed, ms.
    pub next_age_ms: u64,
}

/// Queues and counts, cluster-wide.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverviewJson {
    /// Ready queues of the types this node serves.
    pub queues: Vec<QueueJson>,
    /// RUNNING jobs.
    pub running: u64,
    /// SCHEDULED jobs.
    pub scheduled: u64,
    /// DEAD jobs.
    pub dead: u64,
    /// Live host nodes.
    pub nodes: u64,
}

/// What `/v1/stream` sends every second.
#[derive(Debug, Serialize, ToSchema)]
pub struct Snapshot {
    /// The newest jobs.
    pub jobs: Vec<JobJson>,
    /// Live nodes.
    pub nodes: Vec<NodeJson>,
    /// This node's plugins.
    pub plugins: Vec<PluginJson>,
    /// Queues and counts.
    pub overview: OverviewJson,
}

/// A log line (the data of an SSE `line` event).
#[derive(Debug, Serialize, ToSchema)]
pub struct LogLineJson {
    /// Where it is in the log: pass as `after` to resume.
    pub cursor: String,
    /// The attempt that wrote it.
    pub attempt: u32,
    /// TRACE, DEBUG, INFO, WARN or ERROR.
    pub level: String,
    /// The line.
    pub msg: String,
}

/// A Job Distributor proposal with what the JD API does not carry: why delivery failed,
/// and the delivery job to follow.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalJson {
    /// Proposal id.
    pub id: String,
    /// Its JD job.
    pub job_id: String,
    /// Revision, from 1.
    pub revision: i64,
    /// PROPOSED, APPROVED, REJECTED, CANCELLED, PENDING or REVOKED.
    pub status: String,
    /// UNSPECIFIED, DELIVERED, ACKNOWLEDGED or FAILED.
    pub delivery_status: String,
    /// Why delivery failed (the last attempt's reason while it is retried).
    pub delivery_error: Option<String>,
    /// The jobhost job delivering it (see `/v1/jobs/{id}`).
    pub delivery_job: Option<String>,
    /// The job's id on the Chainlink node, once delivered.
    pub node_job_id: Option<String>,
    /// Creation, Unix ms.
    pub created_ms: u64,
    /// When the node's answer arrived, Unix ms.
    pub response_ms: Option<u64>,
    /// When a node on the wsrpc channel acknowledged receiving it, Unix ms.
    pub acked_ms: Option<u64>,
    /// Who approved it (`POST .../approve`); absent when approved at once.
    pub approved_by: Option<String>,
}

impl From<crate::jd::Proposal> for ProposalJson {
    fn from(p: crate::jd::Proposal) -> Self {
        let name = |v: serde_json::Result<serde_json::Value>| {
            v.ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        ProposalJson {
            status: name(serde_json::to_value(p.status)),
            delivery_status: name(serde_json::to_value(p.delivery)),
            id: p.id,
            job_id: p.job_id,
            revision: p.revision,
            delivery_error: p.delivery_error,
            delivery_job: p.delivery_job,
            node_job_id: p.node_job_id,
            acked_ms: p.acked_ms,
            created_ms: p.created_ms,
            response_ms: p.response_ms,
            approved_by: p.approved_by,
        }
    }
}

/// Options of `GET /v1/jobs/{id}/logs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Keep the stream open for new lines until the job ends (default true).
    pub follow: Option<bool>,
    /// Resume after this cursor.
    pub after: Option<String>,
}
