//! `jobhost.v1.JobScheduler`: schedule jobs, read them, cancel them, stream their logs.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::convert::{self, store_status};
use crate::api::auth::Identity;
use crate::api::submit::{SubmitError, submit, submit_batch};
use jobhost_config::ApiConfig;
use jobhost_history::{Cursor, History, HistoryError, HistoryQuery, HistoryRecord};
use jobhost_proto::scheduler::job_scheduler_server::JobScheduler;
use jobhost_proto::scheduler::{
    CancelJobRequest, CancelJobResponse, GetJobRequest, GetJobResponse, JobError, ListJobsRequest,
    ListJobsResponse, ListNodesRequest, ListNodesResponse, ListPluginsRequest, ListPluginsResponse,
    LogLine, ScheduleJobRequest, ScheduleJobResponse, ScheduleJobResult, ScheduleJobsRequest,
    ScheduleJobsResponse, SearchHistoryRequest, SearchHistoryResponse, StreamJobLogsRequest,
    schedule_job_result,
};
use jobhost_runtime::Runtime;
use jobhost_store::{CancelResult, CronSchedule, Enqueued, JobFilter, NewJob, RetryPolicy, Store};

/// The scheduler service of one node.
pub struct Scheduler {
    store: Store,
    runtime: Runtime,
    limits: ApiConfig,
    /// The job history, when `[history]` is on: where jobs Redis forgot are read.
    history: Option<History>,
}

impl Scheduler {
    /// A service over `store` (jobs) and `runtime` (spec validation, plugin listing).
    pub fn new(store: Store, runtime: Runtime, limits: ApiConfig) -> Self {
        Scheduler {
            store,
            runtime,
            limits,
            history: None,
        }
    }

    /// The same service, reading jobs Redis no longer has from `history`.
    pub fn with_history(mut self, history: Option<History>) -> Self {
        self.history = history;
        self
    }

    /// Turns a request into a job to create, or says what is wrong with it.
    fn new_job(&self, req: ScheduleJobRequest, for_cron: bool) -> Result<NewJob, Status> {
        new_job(req, for_cron, &self.limits)
    }

    async fn job(&self, id: &str) -> Result<jobhost_proto::scheduler::Job, Status> {
        if id.is_empty() {
            return Err(Status::invalid_argument("job_id is required"));
        }
        if let Some(record) = self.store.get(id).await.map_err(store_status)? {
            return Ok(convert::job(record));
        }
        match self.archived(id).await? {
            Some(record) => Ok(convert::archived_job(record.job)),
            None => Err(Status::not_found(format!(
                "no job {} (unknown, or expired after the retention time)",
                crate::text::shown(id)
            ))),
        }
    }

    /// The job `id` from the history, if the history is on and has it.
    async fn archived(&self, id: &str) -> Result<Option<HistoryRecord>, Status> {
        match &self.history {
            Some(history) => history.get(id).await.map_err(history_status),
            None => Ok(None),
        }
    }

    /// The answer for `job` once the store wrote it: the record as written (nothing is read
    /// back), or the earlier job an idempotency key returned.
    async fn scheduled(
        &self,
        job: &NewJob,
        written: Enqueued,
    ) -> Result<ScheduleJobResponse, Status> {
        let record = match written.record(job) {
            Some(record) => {
                // Audit at debug: at thousands of jobs a second an info line per job is
                // the node's largest cost; `submitted_by` keeps the trail in the record.
                tracing::debug!(job_id = %record.id, job_type = %job.job_type, by = %job.submitted_by, "job scheduled");
                convert::job(record)
            }
            None => match self.store.get(&written.id).await.map_err(store_status)? {
                Some(record) => convert::job(record),
                // The key outlives the job it made (succeeded jobs are kept for a short
                // time): the job is not made again, and the caller is told why.
                None => {
                    return Err(Status::already_exists(format!(
                        "idempotency key {:?} was used by job {}, which has finished and expired \
                         (redis.succeeded_retention_secs, redis.retention_secs); the key is kept \
                         for redis.idempotency_ttl_secs",
                        job.idempotency_key.as_deref().unwrap_or_default(),
                        written.id
                    )));
                }
            },
        };
        Ok(ScheduleJobResponse {
            job: Some(record),
            created: written.created,
            schedule: None,
        })
    }

    /// Saves the cron schedule `req` asks for, its template checked as a job would be.
    async fn schedule_cron_request(
        &self,
        mut req: ScheduleJobRequest,
        caller: String,
    ) -> Result<ScheduleJobResponse, Status> {
        let (name, cron) = (req.name.clone(), std::mem::take(&mut req.cron));
        let mut job = self.new_job(req, true)?;
        job.submitted_by = caller;
        self.runtime
            .validate(&job.job_type, &job.spec)
            .await
            .map_err(|e| submit_status(SubmitError::from_validate(e, &job, &self.runtime)))?;
        let by = job.submitted_by.clone();
        let answer = self.schedule_cron(name.clone(), cron, job).await?;
        tracing::info!(schedule = %name, by = %by, "cron schedule saved");
        Ok(answer)
    }

    async fn schedule_cron(
        &self,
        name: String,
        cron: String,
        template: NewJob,
    ) -> Result<ScheduleJobResponse, Status> {
        let next = first_fire(&name, &cron)?;
        let job_type = template.job_type.clone();
        let schedule = CronSchedule {
            name: name.clone(),
            schedule: cron.clone(),
            template,
        };
        self.store
            .put_cron(&schedule, next)
            .await
            .map_err(store_status)?;
        Ok(ScheduleJobResponse {
            job: None,
            created: true,
            schedule: Some(jobhost_proto::scheduler::CronSchedule {
                name,
                cron,
                job_type,
                next_fire: Some(convert::timestamp(next)),
            }),
        })
    }
}

/// Turns a request into a job to create, or says what is wrong with it.
/// `for_cron`: the job is a cron template (fired later), so no run-at is fixed now.
pub(crate) fn new_job(
    req: ScheduleJobRequest,
    for_cron: bool,
    limits: &ApiConfig,
) -> Result<NewJob, Status> {
    let (job_type, spec) = match req.timer_job {
        Some(_) if !req.job_type.is_empty() && req.job_type != "timer" => {
            return Err(Status::invalid_argument(format!(
                "timer_job is a job of type `timer`; it cannot also be of type `{}`",
                req.job_type
            )));
        }
        Some(timer) => ("timer".to_owned(), convert::timer_spec(&timer)?),
        None if req.job_type.is_empty() => {
            return Err(Status::invalid_argument(
                "job_type is required (or timer_job)",
            ));
        }
        None => (req.job_type, req.spec),
    };
    if !jobhost_runtime::is_valid_job_type(&job_type) {
        return Err(Status::invalid_argument(format!(
            "job type {} must be 1-64 characters of a-z, 0-9, '-', '_', '.'",
            crate::text::shown(&job_type)
        )));
    }
    for (field, value) in [
        ("name", &req.name),
        ("idempotency_key", &req.idempotency_key),
    ] {
        if value.len() > MAX_NAME_BYTES {
            return Err(Status::invalid_argument(format!(
                "{field} is {} bytes; the limit is {MAX_NAME_BYTES}",
                value.len()
            )));
        }
    }
    if spec.len() > limits.max_spec_bytes {
        return Err(Status::invalid_argument(format!(
            "spec is {} bytes; the limit is {} bytes (api.max_spec_bytes)",
            spec.len(),
            limits.max_spec_bytes
        )));
    }
    check_labels(&req.labels, limits.max_labels)?;
    let priority = u8::try_from(req.priority).map_err(|_| {
        Status::invalid_argument(format!("priority {} is out of range 0-255", req.priority))
    })?;
    let defaults = RetryPolicy::default();
    let nonzero = |v: u64, d: u64| if v == 0 { d } else { v };
    let retry = RetryPolicy {
        max_attempts: if req.max_attempts == 0 {
            defaults.max_attempts
        } else {
            req.max_attempts
        },
        backoff_base_ms: nonzero(req.backoff_base_ms, defaults.backoff_base_ms),
        backoff_max_ms: nonzero(req.backoff_max_ms, defaults.backoff_max_ms),
    };
    if retry.max_attempts > 100 {
        return Err(Status::invalid_argument(format!(
            "max_attempts {} is over the limit of 100",
            retry.max_attempts
        )));
    }
    let mut run_at_ms = req.run_at.map(|t| convert::timestamp_ms(&t)).transpose()?;
    let spec = if job_type == TIMER_TYPE && !for_cron {
        let (spec, due) = timer_due(&spec, run_at_ms)?;
        run_at_ms = Some(due);
        spec
    } else {
        spec
    };
    Ok(NewJob {
        name: req.name,
        job_type,
        spec,
        labels: req.labels.into_iter().collect(),
        priority,
        retry,
        timeout_ms: (req.timeout_ms > 0).then_some(req.timeout_ms),
        run_at_ms,
        idempotency_key: (!req.idempotency_key.is_empty()).then_some(req.idempotency_key),
        submitted_by: String::new(),
        keep_succeeded: false,
    })
}

/// Most bytes of the jobs of one `ListJobs` page: under the 4 MiB that gRPC clients accept by
/// default, whatever the page size asked for.
const MAX_PAGE_BYTES: usize = 3 * 1024 * 1024;

/// Most bytes of a job's name, idempotency key and a cron schedule's name.
pub(crate) const MAX_NAME_BYTES: usize = 256;

/// The caller of `request` as the audit trail records it ([`Identity::principal`]); empty
/// when no identity came with it (a call made inside the node).
fn principal<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<Identity>()
        .map(Identity::principal)
        .unwrap_or_default()
}

/// When a new cron schedule `name` first fires, or what is wrong with it.
pub(crate) fn first_fire(name: &str, cron: &str) -> Result<u64, Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument("a cron schedule needs a name"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Status::invalid_argument(format!(
            "the cron schedule's name is {} bytes; the limit is {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    crate::cron::check_cron(cron).map_err(Status::invalid_argument)?;
    let now = jobhost_store::now_ms();
    crate::cron::next_fire(cron, now)
        .ok_or_else(|| Status::invalid_argument(format!("cron expression {cron:?} never fires")))
}

/// The job type of timers, whose wait is scheduled here rather than run in a plugin.
const TIMER_TYPE: &str = "timer";

/// A timer fires `duration_seconds` after it is scheduled (or after `run_at`, if given).
/// The wait becomes the job's run-at time, a delayed job in Redis that holds no instance or
/// worker; the due time is written into the spec as `fire_at_ms` for the plugin's report.
/// A spec that is not JSON is left for the plugin's `validate` to refuse.
fn timer_due(spec: &str, run_at_ms: Option<u64>) -> Result<(String, u64), Status> {
    let now = jobhost_store::now_ms();
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(spec) else {
        return Ok((spec.to_owned(), run_at_ms.unwrap_or(now)));
    };
    let seconds = fields
        .get("duration_seconds")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let due = run_at_ms
        .unwrap_or(now)
        .checked_add(seconds.saturating_mul(1000))
        .filter(|due| *due < 253_402_300_800_000)
        .ok_or_else(|| Status::invalid_argument("duration_seconds is too large"))?;
    fields.insert("fire_at_ms".into(), due.into());
    Ok((serde_json::Value::Object(fields).to_string(), due))
}

fn check_labels(
    labels: &std::collections::HashMap<String, String>,
    max: usize,
) -> Result<(), Status> {
    if labels.len() > max {
        return Err(Status::invalid_argument(format!(
            "{} labels; the limit is {max} (api.max_labels)",
            labels.len()
        )));
    }
    for (key, value) in labels {
        if key.is_empty() || key.len() > 128 {
            return Err(Status::invalid_argument(format!(
                "label key {key:?} must be 1-128 bytes"
            )));
        }
        if value.len() > 1024 {
            return Err(Status::invalid_argument(format!(
                "label {key:?} has a value of {} bytes; the limit is 1024",
                value.len()
            )));
        }
    }
    Ok(())
}

/// How often a followed log stream looks for new lines.
const LOG_POLL: Duration = Duration::from_millis(100);
/// Lines read per round trip.
const LOG_BATCH: usize = 500;

type LogStream = Pin<Box<dyn Stream<Item = Result<LogLine, Status>> + Send>>;

#[tonic::async_trait]
impl JobScheduler for Scheduler {
    async fn schedule_job(
        &self,
        request: Request<ScheduleJobRequest>,
    ) -> Result<Response<ScheduleJobResponse>, Status> {
        let caller = principal(&request);
        let req = request.into_inner();
        if !req.cron.is_empty() {
            return Ok(Response::new(
                self.schedule_cron_request(req, caller).await?,
            ));
        }
        let mut job = self.new_job(req, false)?;
        job.submitted_by = caller;
        let written = submit(&self.store, &self.runtime, &job)
            .await
            .map_err(submit_status)?;
        Ok(Response::new(self.scheduled(&job, written).await?))
    }

    async fn schedule_jobs(
        &self,
        request: Request<ScheduleJobsRequest>,
    ) -> Result<Response<ScheduleJobsResponse>, Status> {
        let caller = principal(&request);
        let requests = request.into_inner().jobs;
        if requests.is_empty() {
            return Err(Status::invalid_argument(
                "jobs is empty: nothing to schedule",
            ));
        }
        if requests.len() > self.limits.max_batch_jobs {
            return Err(Status::invalid_argument(format!(
                "{} jobs in one batch; the limit is {} (api.max_batch_jobs)",
                requests.len(),
                self.limits.max_batch_jobs
            )));
        }
        // Each request becomes a job to submit, a cron schedule (saved on its own), or its
        // own error; the jobs are then validated and written together.
        let mut answers: Vec<Option<Result<ScheduleJobResponse, Status>>> = Vec::new();
        let mut jobs = Vec::new();
        for req in requests {
            if !req.cron.is_empty() {
                answers.push(Some(self.schedule_cron_request(req, caller.clone()).await));
                continue;
            }
            match self.new_job(req, false) {
                Ok(mut job) => {
                    job.submitted_by = caller.clone();
                    jobs.push(job);
                    answers.push(None);
                }
                Err(status) => answers.push(Some(Err(status))),
            }
        }
        let written = submit_batch(&self.store, &self.runtime, &jobs)
            .await
            .map_err(submit_status)?;
        let mut written = jobs.iter().zip(written);
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            let answer = match answer {
                Some(answer) => answer,
                None => {
                    let (job, outcome) = written.next().expect("one outcome per job");
                    match outcome {
                        Ok(enqueued) => self.scheduled(job, enqueued).await,
                        Err(e) => Err(submit_status(e)),
                    }
                }
            };
            results.push(ScheduleJobResult {
                result: Some(match answer {
                    Ok(scheduled) => schedule_job_result::Result::Scheduled(scheduled),
                    Err(status) => schedule_job_result::Result::Error(JobError {
                        code: status.code() as i32,
                        message: status.message().to_owned(),
                    }),
                }),
            });
        }
        Ok(Response::new(ScheduleJobsResponse { results }))
    }

    async fn get_job(
        &self,
        request: Request<GetJobRequest>,
    ) -> Result<Response<GetJobResponse>, Status> {
        let job = self.job(&request.into_inner().job_id).await?;
        Ok(Response::new(GetJobResponse { job: Some(job) }))
    }

    async fn get_job_status(
        &self,
        request: Request<GetJobRequest>,
    ) -> Result<Response<GetJobResponse>, Status> {
        self.get_job(request).await
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        let req = request.into_inner();
        let filter = JobFilter {
            state: convert::state_filter(req.state)?,
            job_type: (!req.job_type.is_empty()).then_some(req.job_type),
            labels: req.labels.into_iter().collect::<BTreeMap<_, _>>(),
        };
        let page_size = page_size(req.page_size)?;
        let cursor = convert::page_cursor(&req.page_token)?;
        let (jobs, next) = self
            .store
            .list_jobs(&filter, page_size, cursor.as_deref())
            .await
            .map_err(store_status)?;
        // A page ends early, with a token for the rest, where it would outgrow what gRPC
        // clients accept by default (4 MiB): outputs and specs may be large.
        let mut page = Vec::with_capacity(jobs.len());
        let mut bytes = 0;
        let mut next = next;
        for job in jobs.into_iter().map(convert::job) {
            let size = prost::Message::encoded_len(&job) + 8;
            if !page.is_empty() && bytes + size > MAX_PAGE_BYTES {
                next = page
                    .last()
                    .map(|j: &jobhost_proto::scheduler::Job| j.id.clone());
                break;
            }
            bytes += size;
            page.push(job);
        }
        Ok(Response::new(ListJobsResponse {
            jobs: page,
            next_page_token: next.map(|c| convert::page_token(&c)).unwrap_or_default(),
        }))
    }

    async fn cancel_job(
        &self,
        request: Request<CancelJobRequest>,
    ) -> Result<Response<CancelJobResponse>, Status> {
        let caller = principal(&request);
        let req = request.into_inner();
        if req.job_id.is_empty() {
            return Err(Status::invalid_argument("job_id is required"));
        }
        let reason = if req.reason.is_empty() {
            "cancelled on request".to_owned()
        } else {
            req.reason
        };

        match self
            .store
            .cancel_by(&req.job_id, &reason, &caller)
            .await
            .map_err(store_status)?
        {
            CancelResult::NotFound => Err(Status::not_found(format!(
                "no job {} (unknown, or expired after the retention time)",
                crate::text::shown(&req.job_id)
            ))),
            CancelResult::AlreadyFinal(state) => Err(Status::failed_precondition(format!(
                "job {} already finished: {state}",
                req.job_id
            ))),
            CancelResult::Cancelled | CancelResult::Cancelling => {
                tracing::info!(job_id = %req.job_id, by = %caller, "job cancelled");
                let job = self.job(&req.job_id).await?;
                Ok(Response::new(CancelJobResponse { job: Some(job) }))
            }
        }
    }

    type StreamJobLogsStream = LogStream;

    async fn stream_job_logs(
        &self,
        request: Request<StreamJobLogsRequest>,
    ) -> Result<Response<LogStream>, Status> {
        let req = request.into_inner();
        if !req.after.is_empty() && !jobhost_store::is_log_cursor(&req.after) {
            return Err(Status::invalid_argument(format!(
                "after {} is not a log cursor: pass the cursor of a line already read \
                 (e.g. 1733500000000-0), or nothing to read from the start",
                crate::text::shown(&req.after)
            )));
        }
        // Fails fast with NOT_FOUND for an unknown job.
        if self.job(&req.job_id).await?.archived {
            // Redis forgot it: its log is what the history kept.
            let record = self.archived(&req.job_id).await?;
            let lines = archived_log(record, &req.after);
            return Ok(Response::new(Box::pin(tokio_stream::iter(
                lines.into_iter().map(Ok),
            ))));
        }
        let store = self.store.clone();
        let stream = async_stream(store, req);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_plugins(
        &self,
        _request: Request<ListPluginsRequest>,
    ) -> Result<Response<ListPluginsResponse>, Status> {
        let config = self.runtime.config();
        let plugins = self
            .runtime
            .plugins()
            .into_iter()
            .map(|status| {
                let grants = config.plugin(&status.id).grants;
                convert::plugin(status, grants)
            })
            .collect();
        Ok(Response::new(ListPluginsResponse { plugins }))
    }

    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let nodes = self.store.nodes().await.map_err(store_status)?;
        Ok(Response::new(ListNodesResponse {
            nodes: nodes.into_iter().map(convert::node).collect(),
        }))
    }
    async fn search_history(
        &self,
        request: Request<SearchHistoryRequest>,
    ) -> Result<Response<SearchHistoryResponse>, Status> {
        let Some(history) = &self.history else {
            return Err(Status::failed_precondition(
                "the job history is off: set history.postgres_url (or JOBHOST_HISTORY_URL) to \
                 a PostgreSQL database",
            ));
        };
        let query = history_query(request.into_inner())?;
        let page = history.search(&query).await.map_err(history_status)?;
        Ok(Response::new(SearchHistoryResponse {
            jobs: page
                .jobs
                .into_iter()
                .map(|r| convert::archived_job(r.job))
                .collect(),
            next_page_token: page.next.map(|c| c.token()).unwrap_or_default(),
        }))
    }
}

/// A search request as the history's query, or what is wrong with it.
fn history_query(req: SearchHistoryRequest) -> Result<HistoryQuery, Status> {
    let state = convert::state_filter(req.state)?;
    if let Some(state) = state
        && !state.is_final()
    {
        return Err(Status::invalid_argument(format!(
            "state {} is not a final state: the history holds SUCCEEDED, FAILED, CANCELLED \
             and DEAD jobs",
            state.as_str()
        )));
    }
    let limit = page_size(req.page_size)?;
    let time =
        |t: Option<prost_types::Timestamp>| t.as_ref().map(convert::timestamp_ms).transpose();
    let (from_ms, to_ms) = (time(req.from)?, time(req.to)?);
    let after = if req.page_token.is_empty() {
        None
    } else {
        Some(Cursor::parse(&req.page_token).map_err(history_status)?)
    };
    Ok(HistoryQuery {
        job_type: (!req.job_type.is_empty()).then_some(req.job_type),
        state,
        labels: req.labels.into_iter().collect(),
        from_ms,
        to_ms,
        submitted_by: (!req.submitted_by.is_empty()).then_some(req.submitted_by),
        limit,
        after,
    })
}

/// A listing's `page_size`: 50 when unset, at most 1000.
fn page_size(asked: u32) -> Result<usize, Status> {
    match asked {
        0 => Ok(50),
        n if n > 1000 => Err(Status::invalid_argument(format!(
            "page_size {n} is over the limit of 1000"
        ))),
        n => Ok(n as usize),
    }
}

/// The gRPC status of a history error.
fn history_status(error: HistoryError) -> Status {
    match error {
        HistoryError::Invalid(m) => Status::invalid_argument(m),
        // Clients learn that it is away, the node's log says where and why.
        HistoryError::Unavailable(_) => Status::unavailable(
            "the job history's database cannot be reached (the node's log says why); retry",
        ),
        HistoryError::Config(_) | HistoryError::Query(_) => Status::internal(error.to_string()),
    }
}

/// An archived job's log as log lines: those after `after`, a line's cursor (its Redis
/// stream id, as the live log gave it, or `0-<line number>` for lines archived without one).
fn archived_log(record: Option<HistoryRecord>, after: &str) -> Vec<LogLine> {
    fn position(cursor: &str) -> Option<(u64, u64)> {
        let (ms, seq) = cursor.split_once('-')?;
        Some((ms.parse().ok()?, seq.parse().ok()?))
    }
    let after = position(after);
    let Some(record) = record else {
        return Vec::new();
    };
    record
        .log
        .into_iter()
        .filter(|entry| match (after, position(&entry.cursor)) {
            (Some(after), Some(at)) => at > after,
            _ => true,
        })
        .map(convert::log_line)
        .collect()
}

/// The lines of a job's log: history from the cursor, then (when following) new lines as
/// they come, until the job is final and no line is left.
fn async_stream(
    store: Store,
    req: StreamJobLogsRequest,
) -> impl Stream<Item = Result<LogLine, Status>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel(LOG_BATCH);
    tokio::spawn(async move {
        let mut cursor = (!req.after.is_empty()).then_some(req.after);
        loop {
            let batch = match store
                .read_log(&req.job_id, cursor.as_deref(), LOG_BATCH)
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    let _ = tx.send(Err(store_status(e))).await;
                    return;
                }
            };
            let full = batch.len() == LOG_BATCH;
            for entry in batch {
                cursor = Some(entry.cursor.clone());
                if tx.send(Ok(convert::log_line(entry))).await.is_err() {
                    return; // the client went away
                }
            }
            if full {
                continue;
            }
            if !req.follow {
                return;
            }
            // Final state seen after an empty read: one more read catches lines written
            // just before the job finished, then the stream ends.
            let finished = match store.get(&req.job_id).await {
                Ok(Some(job)) => job.state.is_final(),
                Ok(None) => true,
                Err(e) => {
                    let _ = tx.send(Err(store_status(e))).await;
                    return;
                }
            };
            if finished {
                // Drain what was written before the job ended, however much it is.
                loop {
                    let Ok(rest) = store
                        .read_log(&req.job_id, cursor.as_deref(), LOG_BATCH)
                        .await
                    else {
                        return;
                    };
                    let more = rest.len() == LOG_BATCH;
                    for entry in rest {
                        cursor = Some(entry.cursor.clone());
                        if tx.send(Ok(convert::log_line(entry))).await.is_err() {
                            return;
                        }
                    }
                    if !more {
                        return;
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(LOG_POLL) => {}
                () = tx.closed() => return,
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A refused submission as a gRPC status.
fn submit_status(error: SubmitError) -> Status {
    match error {
        SubmitError::NoPlugin { .. } | SubmitError::Unavailable(_) => {
            Status::failed_precondition(error.to_string())
        }
        SubmitError::Invalid { .. } | SubmitError::ValidateCrashed { .. } => {
            Status::invalid_argument(error.to_string())
        }
        SubmitError::Busy | SubmitError::Compiling(_) => Status::unavailable(error.to_string()),
        SubmitError::QueueFull(message) => Status::resource_exhausted(message),
        SubmitError::Store(e) => store_status(e),
    }
}
