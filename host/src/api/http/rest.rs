//! The REST mirror of the scheduler API (`/v1/jobs`, `/v1/plugins`, `/v1/nodes`), the
//! cluster overview and the live streams the dashboard reads, and their OpenAPI document.
//!
//! Every call goes through the same [`Scheduler`] as gRPC, so both APIs validate, limit and
//! answer alike; a gRPC status becomes the HTTP status of the same meaning, with a JSON body
//! `{"code": "<gRPC code name>", "message"}`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tonic::{Code, Request, Status};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::AppState;
use super::feed::{SnapshotFeed, Tick};
use crate::api::auth::Identity;
use crate::api::grpc::Scheduler;
use crate::api::proto::{self, job_scheduler_server::JobScheduler};

/// Jobs in a snapshot.
const SNAPSHOT_JOBS: u32 = 50;

/// An error answer: `{"code", "message"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The gRPC status code name of the same meaning, e.g. `INVALID_ARGUMENT`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// A gRPC status as an HTTP answer of the same meaning.
fn status_response(status: &Status) -> Response {
    let http = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(http, status.code(), status.message())
}

fn code_name(code: Code) -> String {
    // tonic's Debug names (e.g. InvalidArgument) as the SCREAMING_SNAKE names of gRPC.
    let name = format!("{code:?}");
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    if out == "OK" { "OK".into() } else { out }
}

fn error(http: StatusCode, code: Code, message: &str) -> Response {
    let body = ErrorBody {
        code: code_name(code),
        message: message.to_owned(),
    };
    (http, Json(body)).into_response()
}

/// A query string that does not parse, as a JSON error like every other.
fn bad_query(rejection: &QueryRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        Code::InvalidArgument,
        &rejection.body_text(),
    )
}

fn ms(t: Option<prost_types::Timestamp>) -> Option<u64> {
    let t = t?;
    Some(u64::try_from(t.seconds).ok()? * 1000 + u64::try_from(t.nanos).ok()? / 1_000_000)
}

fn non_empty(s: String) -> Option<String> {
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
    /// Attempts in all.
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
    /// Attempts in all; 0 or absent: 3.
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
    /// Who approved it (`POST .../approve`); absent when approved at once.
    pub approved_by: Option<String>,
}

/// `GET /v1/jd/proposals/{id}`: a Job Distributor proposal with its delivery details.
#[utoipa::path(get, path = "/v1/jd/proposals/{id}", params(("id" = String, Path, description = "Proposal id")),
    responses((status = 200, body = ProposalJson), (status = 404, body = ErrorBody), (status = 501, description = "The Job Distributor is off", body = ErrorBody)))]
pub async fn jd_proposal(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let Some(jd) = &state.jd else {
        return jd_off();
    };
    match jd.proposal(&id).await {
        Ok(p) => Json(ProposalJson::from(p)).into_response(),
        Err(e) => status_response(&crate::api::grpc::jd::status(e)),
    }
}

/// `POST /v1/jd/proposals/{id}/approve`: approves a PENDING proposal (`jd.auto_approve`
/// off) and delivers it. The JD protocol has no call for this: with real Job Distributors
/// the node's operator approves; here the JD's operator does.
#[utoipa::path(post, path = "/v1/jd/proposals/{id}/approve", params(("id" = String, Path, description = "Proposal id")),
    responses((status = 200, description = "Approved, and handed to delivery", body = ProposalJson), (status = 404, body = ErrorBody),
        (status = 409, description = "FAILED_PRECONDITION: not PENDING, not the job's latest revision, the job deleted or the node disabled", body = ErrorBody),
        (status = 501, description = "The Job Distributor is off", body = ErrorBody)))]
pub async fn jd_approve(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Identity>>,
    Path(id): Path<String>,
) -> Response {
    let Some(jd) = &state.jd else {
        return jd_off();
    };
    let by = caller.map(|Extension(c)| c.principal()).unwrap_or_default();
    match jd.approve(&id, &by).await {
        Ok(p) => Json(ProposalJson::from(p)).into_response(),
        Err(e) => status_response(&crate::api::grpc::jd::status(e)),
    }
}

fn jd_off() -> Response {
    error(
        StatusCode::NOT_IMPLEMENTED,
        Code::Unimplemented,
        "the Job Distributor is off (jd.enabled)",
    )
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

/// The OpenAPI document of the HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "jobhost HTTP API",
        description = "REST mirror of the jobhost.v1.JobScheduler gRPC API, and the dashboard's streams."
    ),
    paths(
        create_job,
        list_jobs,
        get_job,
        cancel_job,
        job_logs,
        list_plugins,
        list_nodes,
        overview,
        stream,
        jd_proposal,
        jd_approve
    ),
    components(schemas(
        ErrorBody,
        ProposalJson,
        JobJson,
        AttemptJson,
        NewJobJson,
        CreatedJson,
        JobPage,
        CancelledJson,
        PluginJson,
        PluginList,
        NodeJson,
        NodeList,
        QueueJson,
        OverviewJson,
        Snapshot,
        LogLineJson
    ))
)]
pub struct ApiDoc;

/// `POST /v1/jobs`: creates a job (or a cron schedule), validated by its plugin.
#[utoipa::path(post, path = "/v1/jobs", request_body = NewJobJson,
    responses(
        (status = 201, description = "Created", body = CreatedJson),
        (status = 200, description = "An idempotency key returned an earlier job", body = CreatedJson),
        (status = 400, description = "Invalid request or spec", body = ErrorBody),
        (status = 409, description = "No loaded plugin serves the type", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 429, description = "RESOURCE_EXHAUSTED: the job type's queue is full (job_types.<type>.max_queued)", body = ErrorBody),
        (status = 503, description = "Redis unreachable", body = ErrorBody),
    ))]
pub async fn create_job(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Identity>>,
    body: Result<Json<NewJobJson>, JsonRejection>,
) -> Response {
    let Json(new) = match body {
        Ok(body) => body,
        Err(rejection) => {
            let http = rejection.status();
            let code = if http == StatusCode::PAYLOAD_TOO_LARGE {
                Code::OutOfRange
            } else {
                Code::InvalidArgument
            };
            return error(http, code, &rejection.body_text());
        }
    };
    match state
        .scheduler
        .schedule_job(as_caller(new.into(), caller))
        .await
    {
        Ok(answer) => {
            let answer = answer.into_inner();
            let http = if answer.created || answer.schedule.is_some() {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let body = CreatedJson {
                job: answer.job.map(JobJson::from),
                created: answer.created || answer.schedule.is_some(),
                schedule: answer.schedule.map(|s| s.name),
            };
            (http, Json(body)).into_response()
        }
        Err(status) => status_response(&status),
    }
}

/// `GET /v1/jobs`: jobs, newest first, filtered and paged.
#[utoipa::path(get, path = "/v1/jobs", params(JobQuery),
    responses((status = 200, body = JobPage), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_jobs(
    State(state): State<Arc<AppState>>,
    query: Result<Query<JobQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return bad_query(&rejection),
    };
    let state_filter = match query.state.as_deref().map(str::to_ascii_uppercase) {
        None => 0,
        Some(name) => match proto::JobState::from_str_name(&format!("JOB_STATE_{name}")) {
            Some(s) => s as i32,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    Code::InvalidArgument,
                    &format!(
                        "unknown state {name:?}: use QUEUED, SCHEDULED, RUNNING, SUCCEEDED, FAILED, CANCELLED or DEAD"
                    ),
                );
            }
        },
    };
    let mut labels = std::collections::HashMap::new();
    if let Some(label) = query.label {
        let Some((k, v)) = label.split_once('=') else {
            return error(
                StatusCode::BAD_REQUEST,
                Code::InvalidArgument,
                &format!("label {label:?} must be key=value"),
            );
        };
        labels.insert(k.to_owned(), v.to_owned());
    }
    let request = proto::ListJobsRequest {
        state: state_filter,
        job_type: query.job_type.unwrap_or_default(),
        labels,
        page_size: query.page_size.unwrap_or(0),
        page_token: query.page_token.unwrap_or_default(),
    };
    match state.scheduler.list_jobs(Request::new(request)).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            Json(JobPage {
                jobs: answer.jobs.into_iter().map(JobJson::from).collect(),
                next_page_token: answer.next_page_token,
            })
            .into_response()
        }
        Err(status) => status_response(&status),
    }
}

/// `GET /v1/jobs/{id}`: one job with its attempt history.
#[utoipa::path(get, path = "/v1/jobs/{id}", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobJson), (status = 404, body = ErrorBody)))]
pub async fn get_job(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match fetch_job(&state.scheduler, &id).await {
        Ok(job) => Json(JobJson::from(job)).into_response(),
        Err(status) => status_response(&status),
    }
}

/// A scheduler request made on behalf of the HTTP caller: the identity the guard found goes
/// along, as the gRPC guard's does, so the job's audit trail names the caller.
fn as_caller<T>(message: T, caller: Option<Extension<Identity>>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(Extension(identity)) = caller {
        request.extensions_mut().insert(identity);
    }
    request
}

async fn fetch_job(scheduler: &Scheduler, id: &str) -> Result<proto::Job, Status> {
    let answer = scheduler
        .get_job(Request::new(proto::GetJobRequest { job_id: id.into() }))
        .await?;
    answer
        .into_inner()
        .job
        .ok_or_else(|| Status::internal("no job in the answer"))
}

/// `POST /v1/jobs/{id}/cancel`: cancels a queued, scheduled or running job.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = CancelledJson), (status = 404, body = ErrorBody), (status = 409, description = "Already finished", body = ErrorBody)))]
pub async fn cancel_job(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Identity>>,
    Path(id): Path<String>,
) -> Response {
    let request = proto::CancelJobRequest {
        job_id: id,
        reason: "cancelled through the HTTP API".into(),
    };
    match state.scheduler.cancel_job(as_caller(request, caller)).await {
        Ok(answer) => match answer.into_inner().job {
            Some(job) => Json(CancelledJson {
                job: JobJson::from(job),
            })
            .into_response(),
            None => status_response(&Status::internal("no job in the answer")),
        },
        Err(status) => status_response(&status),
    }
}

/// `GET /v1/jobs/{id}/logs`: Server-Sent Events: `line` events (a [`LogLineJson`]) with the
/// whole log from the first line, then live lines while the job runs, then one `end` event
/// `{"state"}` once it has finished.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", params(("id" = String, Path, description = "Job id"), LogQuery),
    responses((status = 200, description = "text/event-stream of `line` events (LogLineJson) and a final `end` event", content_type = "text/event-stream"), (status = 404, body = ErrorBody)))]
pub async fn job_logs(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return bad_query(&rejection),
    };
    let request = proto::StreamJobLogsRequest {
        job_id: id.clone(),
        follow: query.follow.unwrap_or(true),
        after: query.after.unwrap_or_default(),
    };
    let lines = match state.scheduler.stream_job_logs(Request::new(request)).await {
        Ok(stream) => stream.into_inner(),
        Err(status) => return status_response(&status),
    };
    let scheduler = state.scheduler.clone();
    let events = lines
        .map(|line| match line {
            Ok(line) => sse_json(
                "line",
                &LogLineJson {
                    cursor: line.cursor,
                    attempt: line.attempt,
                    level: line.level,
                    msg: line.message,
                },
            ),
            Err(status) => sse_json(
                "error",
                &ErrorBody {
                    code: code_name(status.code()),
                    message: status.message().to_owned(),
                },
            ),
        })
        .chain(futures::stream::once(async move {
            let final_state = match fetch_job(&scheduler, &id).await {
                Ok(job) => JobJson::from(job).state,
                Err(_) => "UNKNOWN".to_owned(),
            };
            sse_json("end", &serde_json::json!({ "state": final_state }))
        }))
        // A node shutting down ends the stream without `end`: the client resumes from its
        // last cursor (`after`) on another node.
        .take_until(state.stop.clone().cancelled_owned());
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn sse_json<T: Serialize>(name: &str, data: &T) -> Result<Event, Infallible> {
    let text = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    Ok(Event::default().event(name).data(text))
}

async fn plugins(state: &AppState) -> Result<Vec<PluginJson>, Status> {
    let answer = state
        .scheduler
        .list_plugins(Request::new(proto::ListPluginsRequest {}))
        .await?;
    Ok(answer
        .into_inner()
        .plugins
        .into_iter()
        .map(|p| PluginJson {
            id: p.id,
            status: p.status,
            version: p.version,
            job_types: p.job_types,
            capabilities: p.capabilities,
            grants: p.grants,
            rejection: non_empty(p.rejection),
            description: p.description,
        })
        .collect())
}

/// `GET /v1/plugins`: the answering node's plugins, loaded and rejected.
#[utoipa::path(get, path = "/v1/plugins", responses((status = 200, body = PluginList)))]
pub async fn list_plugins(State(state): State<Arc<AppState>>) -> Response {
    match plugins(&state).await {
        Ok(plugins) => Json(PluginList { plugins }).into_response(),
        Err(status) => status_response(&status),
    }
}

async fn nodes(state: &AppState) -> Result<Vec<NodeJson>, Status> {
    let nodes = state
        .store
        .nodes()
        .await
        .map_err(crate::api::grpc::store_status)?;
    let now = crate::store::now_ms();
    Ok(nodes
        .into_iter()
        .map(|n| NodeJson {
            heartbeat_age_ms: now.saturating_sub(n.heartbeat_ms),
            id: n.id,
            hostname: n.hostname,
            version: n.version,
            job_types: n.job_types,
            capacity: n.capacity,
            running: n.running,
            started_ms: n.started_ms,
        })
        .collect())
}

/// `GET /v1/nodes`: live host nodes.
#[utoipa::path(get, path = "/v1/nodes", responses((status = 200, body = NodeList), (status = 503, body = ErrorBody)))]
pub async fn list_nodes(State(state): State<Arc<AppState>>) -> Response {
    match nodes(&state).await {
        Ok(nodes) => Json(NodeList { nodes }).into_response(),
        Err(status) => status_response(&status),
    }
}

async fn overview_of(state: &AppState) -> Result<OverviewJson, Status> {
    let o = state
        .store
        .overview(&state.runtime.job_types())
        .await
        .map_err(crate::api::grpc::store_status)?;
    Ok(OverviewJson {
        queues: o
            .queues
            .into_iter()
            .map(|q| QueueJson {
                job_type: q.job_type,
                depth: q.depth,
                next_age_ms: q.next_age_ms,
            })
            .collect(),
        running: o.running,
        scheduled: o.scheduled,
        dead: o.dead,
        nodes: o.nodes,
    })
}

/// `GET /v1/overview`: queue depth per type and job counts, cluster-wide.
#[utoipa::path(get, path = "/v1/overview", responses((status = 200, body = OverviewJson), (status = 503, body = ErrorBody)))]
pub async fn overview(State(state): State<Arc<AppState>>) -> Response {
    match overview_of(&state).await {
        Ok(o) => Json(o).into_response(),
        Err(status) => status_response(&status),
    }
}

async fn snapshot(state: &AppState) -> Result<Snapshot, Status> {
    let jobs = state
        .scheduler
        .list_jobs(Request::new(proto::ListJobsRequest {
            page_size: SNAPSHOT_JOBS,
            ..Default::default()
        }))
        .await?
        .into_inner()
        .jobs;
    Ok(Snapshot {
        jobs: jobs.into_iter().map(JobJson::from).collect(),
        nodes: nodes(state).await?,
        plugins: plugins(state).await?,
        overview: overview_of(state).await?,
    })
}

/// `GET /v1/stream`: Server-Sent Events for dashboards: a `snapshot` event ([`Snapshot`])
/// every second, or an `error` event while Redis is unreachable.
#[utoipa::path(get, path = "/v1/stream", responses((status = 200, description = "text/event-stream of `snapshot` events (Snapshot)", content_type = "text/event-stream")))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let latest = SnapshotFeed::subscribe(&state);
    let stop = state.stop.clone().cancelled_owned();
    // The snapshot in hand first (if any), then each new one.
    let events = futures::stream::unfold((latest, true), |(mut latest, first)| async move {
        loop {
            if !(first && latest.borrow().is_some()) {
                latest.changed().await.ok()?;
            }
            let tick = latest.borrow_and_update().clone();
            if let Some(tick) = tick {
                let event = Event::default().event(tick.name).data(tick.json.as_str());
                return Some((Ok(event), (latest, false)));
            }
        }
    })
    .take_until(stop);
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The `/v1/stream` event of the cluster now: a `snapshot`, or an `error` saying why not.
pub(super) async fn snapshot_tick(state: &AppState) -> Tick {
    let (name, json) = match snapshot(state).await {
        Ok(snapshot) => ("snapshot", serde_json::to_string(&snapshot)),
        Err(status) => (
            "error",
            serde_json::to_string(&ErrorBody {
                code: code_name(status.code()),
                message: status.message().to_owned(),
            }),
        ),
    };
    Tick {
        name,
        json: json.unwrap_or_else(|_| "null".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_are_named_as_grpc_names_them() {
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(Code::Ok), "OK");
    }

    #[test]
    fn the_openapi_document_lists_every_route() {
        let doc = ApiDoc::openapi();
        let paths: Vec<&String> = doc.paths.paths.keys().collect();
        for path in [
            "/v1/jobs",
            "/v1/jobs/{id}",
            "/v1/jobs/{id}/cancel",
            "/v1/jobs/{id}/logs",
            "/v1/plugins",
            "/v1/nodes",
            "/v1/overview",
            "/v1/stream",
            "/v1/jd/proposals/{id}",
            "/v1/jd/proposals/{id}/approve",
        ] {
            assert!(paths.iter().any(|p| *p == path), "{path} in {paths:?}");
        }
    }
}
