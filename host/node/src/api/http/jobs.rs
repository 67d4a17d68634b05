//! The REST mirror of the scheduler API's job calls: `/v1/jobs` (create, list), a job, its
//! cancel, and its log as Server-Sent Events.
//!
//! Every call goes through the same [`Scheduler`] as gRPC, so both APIs validate, limit and
//! answer alike; a gRPC status becomes the HTTP status of the same meaning
//! ([`super::error`]).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use jobhost_proto::scheduler::{self as proto, job_scheduler_server::JobScheduler};
use serde::Serialize;
use tonic::{Request, Status};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::json::{BatchJson, BatchResultJson, NewJobJson, NewJobsJson};
use super::json::{
    CancelledJson, CreatedJson, HistoryQueryJson, JobJson, JobPage, JobQuery, LogLineJson, LogQuery,
};
use super::state::AppState;
use crate::api::auth::Identity;
use crate::api::grpc::Scheduler;

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
) -> ApiResult<Response> {
    let Json(new) = body?;
    let answer = state
        .services
        .scheduler
        .schedule_job(as_caller(new.into(), caller))
        .await?
        .into_inner();
    let (http, body) = created(answer);
    Ok((http, Json(body)).into_response())
}

/// A `ScheduleJob` answer as `POST /v1/jobs` gives it: 201 for a new job or schedule, 200
/// for the earlier job of an idempotency key.
fn created(answer: proto::ScheduleJobResponse) -> (StatusCode, CreatedJson) {
    let created = answer.created || answer.schedule.is_some();
    let http = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = CreatedJson {
        job: answer.job.map(JobJson::from),
        created,
        schedule: answer.schedule.map(|s| s.name),
    };
    (http, body)
}

/// `POST /v1/jobs:batch`: creates many jobs (at most `api.max_batch_jobs`), written to
/// Redis together. 200 with one result per job, in order, each with the status
/// `POST /v1/jobs` would have given it: one bad job does not refuse the others.
#[utoipa::path(post, path = "/v1/jobs:batch", request_body = NewJobsJson,
    responses(
        (status = 200, description = "One result per job, in order", body = BatchJson),
        (status = 400, description = "No jobs, too many jobs (api.max_batch_jobs), or not JSON", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 503, description = "Redis unreachable: no job was written", body = ErrorBody),
    ))]
pub async fn create_jobs(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Identity>>,
    body: Result<Json<NewJobsJson>, JsonRejection>,
) -> ApiResult<Json<BatchJson>> {
    let Json(new) = body?;
    let jobs = new.jobs.into_iter().map(Into::into).collect();
    let answer = state
        .services
        .scheduler
        .schedule_jobs(as_caller(proto::ScheduleJobsRequest { jobs }, caller))
        .await?
        .into_inner();
    let results = answer.results.into_iter().map(batch_result).collect();
    Ok(Json(BatchJson { results }))
}

/// One job's gRPC result as its REST result.
fn batch_result(result: proto::ScheduleJobResult) -> BatchResultJson {
    use proto::schedule_job_result::Result as Outcome;
    match result.result {
        Some(Outcome::Scheduled(answer)) => {
            let (http, body) = created(answer);
            BatchResultJson {
                status: http.as_u16(),
                job: body.job,
                created: body.created,
                schedule: body.schedule,
                error: None,
            }
        }
        Some(Outcome::Error(error)) => {
            let status = Status::new(tonic::Code::from(error.code), error.message);
            let http = ApiError::from(status.clone()).status();
            BatchResultJson {
                status: http.as_u16(),
                job: None,
                created: false,
                schedule: None,
                error: Some(ErrorBody::of(&status)),
            }
        }
        None => BatchResultJson {
            status: 500,
            job: None,
            created: false,
            schedule: None,
            error: Some(ErrorBody::of(&Status::internal("no result for this job"))),
        },
    }
}

/// `GET /v1/jobs`: jobs, newest first, filtered and paged.
#[utoipa::path(get, path = "/v1/jobs", params(JobQuery),
    responses((status = 200, body = JobPage), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_jobs(
    State(state): State<Arc<AppState>>,
    query: Result<Query<JobQuery>, QueryRejection>,
) -> ApiResult<Json<JobPage>> {
    let Query(query) = query?;
    let state_filter = match query.state.as_deref() {
        None => 0,
        Some(name) => state_number(
            name,
            "QUEUED, SCHEDULED, RUNNING, SUCCEEDED, FAILED, CANCELLED or DEAD",
        )?,
    };
    let mut labels = std::collections::HashMap::new();
    if let Some(label) = query.label {
        labels.extend([label_pair(&label)?]);
    }
    let request = proto::ListJobsRequest {
        state: state_filter,
        job_type: query.job_type.unwrap_or_default(),
        labels,
        page_size: query.page_size.unwrap_or(0),
        page_token: query.page_token.unwrap_or_default(),
    };
    let answer = state
        .services
        .scheduler
        .list_jobs(Request::new(request))
        .await?
        .into_inner();
    Ok(Json(JobPage {
        jobs: answer.jobs.into_iter().map(JobJson::from).collect(),
        next_page_token: answer.next_page_token,
    }))
}

/// `GET /v1/jobs/{id}`: one job with its attempt history.
#[utoipa::path(get, path = "/v1/jobs/{id}", params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobJson), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobJson>> {
    let job = fetch_job(&state.services.scheduler, &id).await?;
    Ok(Json(JobJson::from(job)))
}

/// `GET /v1/history`: finished jobs from the job history (PostgreSQL), newest finished
/// first, filtered and paged.
#[utoipa::path(get, path = "/v1/history", params(HistoryQueryJson),
    responses((status = 200, body = JobPage),
        (status = 400, description = "A bad filter or page token", body = ErrorBody),
        (status = 409, description = "The job history is off (history.postgres_url unset)", body = ErrorBody),
        (status = 503, description = "The history's database cannot be reached", body = ErrorBody)))]
pub async fn history(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult<Json<JobPage>> {
    let Query(pairs) = query?;
    let request = history_request(pairs)?;
    let answer = state
        .services
        .scheduler
        .search_history(Request::new(request))
        .await?
        .into_inner();
    Ok(Json(JobPage {
        jobs: answer.jobs.into_iter().map(JobJson::from).collect(),
        next_page_token: answer.next_page_token,
    }))
}

/// The query of `GET /v1/history` (its keys as [`HistoryQueryJson`] documents them) as a
/// `SearchHistory` request.
fn history_request(pairs: Vec<(String, String)>) -> Result<proto::SearchHistoryRequest, ApiError> {
    let mut request = proto::SearchHistoryRequest::default();
    for (key, value) in pairs {
        match key.as_str() {
            "type" => request.job_type = value,
            "state" => {
                request.state = state_number(&value, "SUCCEEDED, FAILED, CANCELLED or DEAD")?
            }
            "label" => request.labels.extend([label_pair(&value)?]),
            "from" => request.from = Some(time_param("from", &value)?),
            "to" => request.to = Some(time_param("to", &value)?),
            "submitted_by" => request.submitted_by = value,
            "page_size" => {
                request.page_size = value.parse().map_err(|_| {
                    ApiError::invalid(format!("page_size {value:?} must be a number"))
                })?
            }
            "page_token" => request.page_token = value,
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter {:?}: use type, state, label, from, to, \
                     submitted_by, page_size, page_token",
                    crate::text::shown(other)
                )));
            }
        }
    }
    Ok(request)
}

/// A state's name (any case) as its gRPC number; an unknown one names the states to use.
fn state_number(name: &str, use_one_of: &str) -> Result<i32, ApiError> {
    let name = name.to_ascii_uppercase();
    proto::JobState::from_str_name(&format!("JOB_STATE_{name}"))
        .map(|s| s as i32)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "unknown state {:?}: use {use_one_of}",
                crate::text::shown(&name)
            ))
        })
}

/// A `label` query value, `key=value`.
fn label_pair(label: &str) -> Result<(String, String), ApiError> {
    let (k, v) = label
        .split_once('=')
        .ok_or_else(|| ApiError::invalid(format!("label {label:?} must be key=value")))?;
    Ok((k.to_owned(), v.to_owned()))
}

/// A time given as RFC 3339 or Unix ms.
fn time_param(key: &str, value: &str) -> Result<prost_types::Timestamp, ApiError> {
    let ms = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value.parse::<i64>().ok()
    } else {
        chrono::DateTime::parse_from_rfc3339(value)
            .ok()
            .map(|t| t.timestamp_millis())
    };
    let ms = ms.filter(|ms| *ms >= 0).ok_or_else(|| {
        ApiError::invalid(format!(
            "{key} {:?} must be an RFC 3339 time (2026-12-01T00:00:00Z) or Unix milliseconds",
            crate::text::shown(value)
        ))
    })?;
    Ok(prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
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
) -> ApiResult<Json<CancelledJson>> {
    let request = proto::CancelJobRequest {
        job_id: id,
        reason: "cancelled through the HTTP API".into(),
    };
    let answer = state
        .services
        .scheduler
        .cancel_job(as_caller(request, caller))
        .await?;
    let job = answer
        .into_inner()
        .job
        .ok_or_else(|| Status::internal("no job in the answer"))?;
    Ok(Json(CancelledJson {
        job: JobJson::from(job),
    }))
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
) -> ApiResult<Response> {
    let Query(query) = query?;
    let request = proto::StreamJobLogsRequest {
        job_id: id.clone(),
        follow: query.follow.unwrap_or(true),
        after: query.after.unwrap_or_default(),
    };
    let scheduler = state.services.scheduler.clone();
    let lines = scheduler
        .stream_job_logs(Request::new(request))
        .await?
        .into_inner();
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
            Err(status) => sse_json("error", &ErrorBody::of(&status)),
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
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn sse_json<T: Serialize>(name: &str, data: &T) -> Result<Event, Infallible> {
    let text = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    Ok(Event::default().event(name).data(text))
}
