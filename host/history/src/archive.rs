//! Writing finished jobs: a batch in one statement (`jsonb_to_recordset`), idempotent
//! (`ON CONFLICT (id)`: a job archived twice is one row, the later finish wins). A batch
//! the server refuses for a reason of its own is written row by row, so one job the server
//! will never take does not hold back the others.

use std::borrow::Cow;
use std::collections::BTreeMap;

use jobhost_store::{ArchivedJob as StoreJob, JobRecord};
use serde::Serialize;
use tokio_postgres::types::Json;

use crate::{History, HistoryError};

/// What became of a batch handed to [`History::archive`].
#[derive(Debug, Default)]
pub struct Written {
    /// Jobs now in PostgreSQL (written now or already there).
    pub archived: Vec<(String, u64)>,
    /// Jobs the server refused on their own, with its reason: never archivable as they are.
    pub refused: Vec<(String, u64, String)>,
}

const INSERT: &str = "
INSERT INTO job_history (id, name, job_type, state, spec, labels, priority, attempts,
    max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, created_at, updated_at,
    finished_at, node, output, reason, cancel_requested, submitted_by, cancelled_by,
    attempt_history, log, log_lines)
SELECT r.id, r.name, r.job_type, r.state, r.spec, r.labels, r.priority, r.attempts,
    r.max_attempts, r.timeout_ms, r.backoff_base_ms, r.backoff_max_ms,
    to_timestamp(r.created_ms / 1000.0), to_timestamp(r.updated_ms / 1000.0),
    to_timestamp(r.finished_ms / 1000.0), r.node, r.output, r.reason, r.cancel_requested,
    r.submitted_by, r.cancelled_by, r.attempt_history, r.log, r.log_lines
FROM jsonb_to_recordset($1::jsonb) AS r(id text, name text, job_type text, state text,
    spec text, labels jsonb, priority integer, attempts integer, max_attempts integer,
    timeout_ms bigint, backoff_base_ms bigint, backoff_max_ms bigint, created_ms bigint,
    updated_ms bigint, finished_ms bigint, node text, output text, reason text,
    cancel_requested boolean, submitted_by text, cancelled_by text, attempt_history jsonb,
    log jsonb, log_lines bigint)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, job_type = EXCLUDED.job_type,
    state = EXCLUDED.state, spec = EXCLUDED.spec, labels = EXCLUDED.labels,
    priority = EXCLUDED.priority, attempts = EXCLUDED.attempts,
    max_attempts = EXCLUDED.max_attempts, timeout_ms = EXCLUDED.timeout_ms,
    backoff_base_ms = EXCLUDED.backoff_base_ms, backoff_max_ms = EXCLUDED.backoff_max_ms,
    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
    finished_at = EXCLUDED.finished_at, node = EXCLUDED.node, output = EXCLUDED.output,
    reason = EXCLUDED.reason, cancel_requested = EXCLUDED.cancel_requested,
    submitted_by = EXCLUDED.submitted_by, cancelled_by = EXCLUDED.cancelled_by,
    attempt_history = EXCLUDED.attempt_history, log = EXCLUDED.log,
    log_lines = EXCLUDED.log_lines, archived_at = now()
WHERE job_history.finished_at <= EXCLUDED.finished_at";

impl History {
    /// Writes `jobs` (finished, read from the store's outbox) in one transaction. `Err`
    /// only when the server is unreachable or refused the batch and could not be asked
    /// row by row: nothing is then known to be written.
    pub async fn archive(&self, jobs: &[StoreJob]) -> Result<Written, HistoryError> {
        let result = self.write(jobs).await;
        self.inner.note(&result);
        result
    }

    async fn write(&self, jobs: &[StoreJob]) -> Result<Written, HistoryError> {
        let mut written = Written::default();
        if jobs.is_empty() {
            return Ok(written);
        }
        let rows: Vec<Row<'_>> = jobs.iter().map(|job| self.row(job)).collect();
        let client = self.inner.client().await?;
        match client.execute(INSERT, &[&Json(&rows)]).await {
            Ok(_) => {
                written.archived = jobs.iter().map(key).collect();
                return Ok(written);
            }
            Err(e) if !is_data_error(&e) => return Err(HistoryError::of(e)),
            Err(e) => tracing::warn!(
                "the job history refused a batch of {} jobs ({}); writing them one by one",
                jobs.len(),
                HistoryError::of(e)
            ),
        }
        for (job, row) in jobs.iter().zip(&rows) {
            match client
                .execute(INSERT, &[&Json(std::slice::from_ref(row))])
                .await
            {
                Ok(_) => written.archived.push(key(job)),
                Err(e) if !is_data_error(&e) => return Err(HistoryError::of(e)),
                Err(e) => {
                    let (id, finished) = key(job);
                    written
                        .refused
                        .push((id, finished, HistoryError::of(e).to_string()));
                }
            }
        }
        Ok(written)
    }

    /// One job as a row of `jsonb_to_recordset`: its log cut to the configured caps.
    fn row<'a>(&self, job: &'a StoreJob) -> Row<'a> {
        let r: &JobRecord = &job.record;
        let mut log = Vec::new();
        let mut bytes = 0;
        for line in job.log.iter().take(self.settings.max_log_lines) {
            bytes += line.message.len();
            if bytes > self.settings.max_log_bytes {
                break;
            }
            log.push(LogRow {
                cursor: &line.cursor,
                attempt: line.attempt,
                level: clean(&line.level),
                message: clean(&line.message),
            });
        }
        let attempt_history = r
            .history
            .iter()
            .map(|a| AttemptRow {
                attempt: a.attempt,
                node: clean(&a.node),
                started_ms: a.started_ms,
                ended_ms: a.ended_ms,
                outcome: clean(&a.outcome),
                reason: clean(&a.reason),
            })
            .collect();
        let node = r
            .history
            .last()
            .map(|a| a.node.as_str())
            .or(r.node.as_deref())
            .unwrap_or("");
        Row {
            id: clean(&r.id),
            name: clean(&r.name),
            job_type: clean(&r.job_type),
            state: r.state.as_str(),
            spec: clean(&r.spec),
            labels: r.labels.iter().map(|(k, v)| (clean(k), clean(v))).collect(),
            priority: r.priority,
            attempts: r.attempts,
            max_attempts: r.retry.max_attempts,
            timeout_ms: r.timeout_ms,
            backoff_base_ms: r.retry.backoff_base_ms,
            backoff_max_ms: r.retry.backoff_max_ms,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            finished_ms: job.finished_ms(),
            node: clean(node),
            output: r.output.as_deref().map(clean),
            reason: r.reason.as_deref().map(clean),
            cancel_requested: r.cancel_requested,
            submitted_by: clean(&r.submitted_by),
            cancelled_by: clean(&r.cancelled_by),
            attempt_history,
            log,
            log_lines: job.log_lines,
        }
    }
}

/// One row as `jsonb_to_recordset` reads it (the names are its column list's), borrowing
/// the job's text: serialised once, straight into the statement's parameter.
#[derive(Debug, Serialize)]
struct Row<'a> {
    id: Cow<'a, str>,
    name: Cow<'a, str>,
    job_type: Cow<'a, str>,
    state: &'static str,
    spec: Cow<'a, str>,
    labels: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    priority: u8,
    attempts: u32,
    max_attempts: u32,
    timeout_ms: Option<u64>,
    backoff_base_ms: u64,
    backoff_max_ms: u64,
    created_ms: u64,
    updated_ms: u64,
    finished_ms: u64,
    node: Cow<'a, str>,
    output: Option<Cow<'a, str>>,
    reason: Option<Cow<'a, str>>,
    cancel_requested: bool,
    submitted_by: Cow<'a, str>,
    cancelled_by: Cow<'a, str>,
    attempt_history: Vec<AttemptRow<'a>>,
    log: Vec<LogRow<'a>>,
    log_lines: u64,
}

/// One attempt in `attempt_history` (what `search` reads back as an `AttemptRecord`).
#[derive(Debug, Serialize)]
struct AttemptRow<'a> {
    attempt: u32,
    node: Cow<'a, str>,
    started_ms: u64,
    ended_ms: u64,
    outcome: Cow<'a, str>,
    reason: Cow<'a, str>,
}

/// One archived log line.
#[derive(Debug, Serialize)]
struct LogRow<'a> {
    /// Its Redis stream id: where a log reader resumes.
    cursor: &'a str,
    attempt: u32,
    level: Cow<'a, str>,
    message: Cow<'a, str>,
}

/// Whether the server refused the statement for what it holds (SQLSTATE classes 21
/// cardinality: one job twice in a batch, 22 data exception, 23 integrity, 54 program
/// limit: a value too large), which writing the rows
/// one by one can pin on a row. Anything else (the server away, read-only, out of disk, a
/// timeout, a permission revoked) says nothing about the rows: the batch waits.
fn is_data_error(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        ["21", "22", "23", "54"]
            .iter()
            .any(|class| code.code().starts_with(class))
    })
}

fn key(job: &StoreJob) -> (String, u64) {
    (job.record.id.clone(), job.finished_ms())
}

/// `text` as PostgreSQL takes it: text and jsonb hold no NUL character.
fn clean(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}
