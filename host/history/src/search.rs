//! Reading the history: one job by id, or a page of jobs, newest finished first, filtered
//! by type, state, labels, finish time and submitter. Pages are keyset-paged on
//! (`finished_at`, `id`), so a page costs the same however deep it is and a job archived
//! meanwhile neither repeats nor hides a row.

use std::collections::BTreeMap;

use jobhost_store::{AttemptRecord, JobRecord, JobState, LogEntry, RetryPolicy};
use serde::Deserialize;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::{History, HistoryError};

/// A job read back from the history.
#[derive(Debug, Clone)]
pub struct HistoryRecord {
    /// The job as it was when it finished, with every attempt.
    pub job: JobRecord,
    /// Its archived log lines (the first ones; see `history.max_log_lines`).
    pub log: Vec<LogEntry>,
    /// How many lines its log had in all.
    pub log_lines: u64,
    /// When it was archived, Unix ms.
    pub archived_ms: u64,
}

/// What a history search asks for. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only jobs of this type.
    pub job_type: Option<String>,
    /// Only jobs that ended in this state.
    pub state: Option<JobState>,
    /// Only jobs carrying all these labels.
    pub labels: BTreeMap<String, String>,
    /// Only jobs finished at or after this time, Unix ms.
    pub from_ms: Option<u64>,
    /// Only jobs finished before this time, Unix ms.
    pub to_ms: Option<u64>,
    /// Only jobs submitted by this caller (as `submitted_by` names it).
    pub submitted_by: Option<String>,
    /// Most jobs on the page.
    pub limit: usize,
    /// Where the page starts: the previous page's [`HistoryPage::next`].
    pub after: Option<Cursor>,
}

/// Where a page of the history continues: the last job of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Its finish time, Unix ms.
    pub finished_ms: u64,
    /// Its id.
    pub id: String,
}

impl Cursor {
    /// The cursor as an opaque page token.
    pub fn token(&self) -> String {
        format!("h{}.{}", self.finished_ms, self.id)
    }

    /// Parses a page token made by [`Cursor::token`].
    pub fn parse(token: &str) -> Result<Cursor, HistoryError> {
        let bad =
            || HistoryError::Invalid(format!("page_token {token:?} is not a history page token"));
        let rest = token.strip_prefix('h').ok_or_else(bad)?;
        let (ms, id) = rest.split_once('.').ok_or_else(bad)?;
        if id.is_empty() || id.len() > 128 {
            return Err(bad());
        }
        Ok(Cursor {
            finished_ms: ms.parse().map_err(|_| bad())?,
            id: id.to_owned(),
        })
    }
}

/// A page of history.
#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The jobs, newest finished first (logs left out: [`History::get`] has them).
    pub jobs: Vec<HistoryRecord>,
    /// Where the next page starts; `None` on the last one.
    pub next: Option<Cursor>,
}

const COLUMNS: &str = "id, name, job_type, state, spec, labels, priority, attempts, \
    max_attempts, timeout_ms, backoff_base_ms, backoff_max_ms, \
    (extract(epoch from created_at) * 1000)::bigint AS created_ms, \
    (extract(epoch from updated_at) * 1000)::bigint AS updated_ms, \
    (extract(epoch from finished_at) * 1000)::bigint AS finished_ms, \
    (extract(epoch from archived_at) * 1000)::bigint AS archived_ms, \
    node, output, reason, cancel_requested, submitted_by, cancelled_by, attempt_history, \
    log_lines";

impl History {
    /// The archived job `id`, with its log; `None` if it was never archived (or its
    /// retention in the history passed).
    pub async fn get(&self, id: &str) -> Result<Option<HistoryRecord>, HistoryError> {
        let result = self.get_row(id).await;
        self.inner.note(&result);
        result
    }

    async fn get_row(&self, id: &str) -> Result<Option<HistoryRecord>, HistoryError> {
        let client = self.inner.client().await?;
        let sql = format!("SELECT {COLUMNS}, log FROM job_history WHERE id = $1");
        let row = client
            .query_opt(&sql, &[&id])
            .await
            .map_err(HistoryError::of)?;
        row.map(|row| record(&row, true)).transpose()
    }

    /// A page of archived jobs matching `query`, newest finished first.
    pub async fn search(&self, query: &HistoryQuery) -> Result<HistoryPage, HistoryError> {
        let result = self.search_rows(query).await;
        self.inner.note(&result);
        result
    }

    async fn search_rows(&self, query: &HistoryQuery) -> Result<HistoryPage, HistoryError> {
        let limit = query.limit.clamp(1, 1000);
        let mut clauses: Vec<String> = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut bind = |value: Box<dyn ToSql + Sync + Send>| {
            params.push(value);
            format!("${}", params.len())
        };
        if let Some(t) = &query.job_type {
            clauses.push(format!("job_type = {}", bind(Box::new(t.clone()))));
        }
        if let Some(s) = query.state {
            clauses.push(format!("state = {}", bind(Box::new(s.as_str().to_owned()))));
        }
        if !query.labels.is_empty() {
            let labels = serde_json::to_value(&query.labels).unwrap_or_default();
            clauses.push(format!("labels @> {}::jsonb", bind(Box::new(labels))));
        }
        if let Some(by) = &query.submitted_by {
            clauses.push(format!("submitted_by = {}", bind(Box::new(by.clone()))));
        }
        if let Some(from) = query.from_ms {
            let p = bind(Box::new(ms(from)?));
            clauses.push(format!("finished_at >= to_timestamp({p}::bigint / 1000.0)"));
        }
        if let Some(to) = query.to_ms {
            let p = bind(Box::new(ms(to)?));
            clauses.push(format!("finished_at < to_timestamp({p}::bigint / 1000.0)"));
        }
        if let Some(after) = &query.after {
            let at = bind(Box::new(ms(after.finished_ms)?));
            let id = bind(Box::new(after.id.clone()));
            clauses.push(format!(
                "(finished_at, id) < (to_timestamp({at}::bigint / 1000.0), {id})"
            ));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM job_history {filter} \
             ORDER BY finished_at DESC, id DESC LIMIT {}",
            limit + 1
        );
        let client = self.inner.client().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = client.query(&sql, &refs).await.map_err(HistoryError::of)?;
        let mut jobs = rows
            .iter()
            .map(|row| record(row, false))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if jobs.len() > limit {
            jobs.truncate(limit);
            jobs.last().map(|last| Cursor {
                finished_ms: last.job.finished_ms.unwrap_or(0),
                id: last.job.id.clone(),
            })
        } else {
            None
        };
        Ok(HistoryPage { jobs, next })
    }
}

fn ms(value: u64) -> Result<i64, HistoryError> {
    // Up to the year 275760, PostgreSQL's last timestamp.
    i64::try_from(value)
        .ok()
        .filter(|v| *v <= 8_210_266_876_799_999)
        .ok_or_else(|| HistoryError::Invalid(format!("time {value} ms is out of range")))
}

#[derive(Deserialize)]
struct LogLine {
    /// The line's Redis stream id (rows archived before it was kept have none).
    #[serde(default)]
    cursor: Option<String>,
    attempt: u32,
    level: String,
    message: String,
}

/// A row as a [`HistoryRecord`] (with its log when `with_log`).
fn record(row: &Row, with_log: bool) -> Result<HistoryRecord, HistoryError> {
    let bad =
        |e: &dyn std::fmt::Display| HistoryError::Query(format!("reading a history row: {e}"));
    let get_ms = |name: &str| -> Result<u64, HistoryError> {
        let v: i64 = row.try_get(name).map_err(|e| bad(&e))?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    let state_text: String = row.try_get("state").map_err(|e| bad(&e))?;
    let state =
        JobState::parse(&state_text).ok_or_else(|| bad(&format!("state {state_text:?}")))?;
    let labels: serde_json::Value = row.try_get("labels").map_err(|e| bad(&e))?;
    let attempts_json: serde_json::Value = row.try_get("attempt_history").map_err(|e| bad(&e))?;
    let history: Vec<AttemptRecord> = serde_json::from_value(attempts_json).map_err(|e| bad(&e))?;
    let int = |name: &str| -> Result<i64, HistoryError> {
        let v: i32 = row.try_get(name).map_err(|e| bad(&e))?;
        Ok(i64::from(v))
    };
    let big = |name: &str| -> Result<Option<i64>, HistoryError> {
        row.try_get(name).map_err(|e| bad(&e))
    };
    let text =
        |name: &str| -> Result<String, HistoryError> { row.try_get(name).map_err(|e| bad(&e)) };
    let finished_ms = get_ms("finished_ms")?;
    let job = JobRecord {
        id: text("id")?,
        name: text("name")?,
        job_type: text("job_type")?,
        spec: text("spec")?,
        labels: serde_json::from_value(labels).unwrap_or_default(),
        priority: u8::try_from(int("priority")?).unwrap_or(0),
        state,
        attempts: u32::try_from(int("attempts")?).unwrap_or(0),
        retry: RetryPolicy {
            max_attempts: u32::try_from(int("max_attempts")?).unwrap_or(1),
            backoff_base_ms: big("backoff_base_ms")?.unwrap_or(0).max(0) as u64,
            backoff_max_ms: big("backoff_max_ms")?.unwrap_or(0).max(0) as u64,
        },
        timeout_ms: big("timeout_ms")?.and_then(|t| u64::try_from(t).ok()),
        created_ms: get_ms("created_ms")?,
        updated_ms: get_ms("updated_ms")?,
        run_at_ms: None,
        finished_ms: Some(finished_ms),
        // As for a finished job in Redis: the node that ran it is in its attempts.
        node: None,
        output: row.try_get("output").map_err(|e| bad(&e))?,
        reason: row.try_get("reason").map_err(|e| bad(&e))?,
        cancel_requested: row.try_get("cancel_requested").map_err(|e| bad(&e))?,
        history,
        submitted_by: text("submitted_by")?,
        cancelled_by: text("cancelled_by")?,
    };
    let log = if with_log {
        let lines: serde_json::Value = row.try_get("log").map_err(|e| bad(&e))?;
        let lines: Vec<LogLine> = serde_json::from_value(lines).map_err(|e| bad(&e))?;
        lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| LogEntry {
                cursor: l.cursor.unwrap_or_else(|| format!("0-{}", i + 1)),
                attempt: l.attempt,
                level: l.level,
                message: l.message,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(HistoryRecord {
        job,
        log,
        log_lines: big("log_lines")?.unwrap_or(0).max(0) as u64,
        archived_ms: get_ms("archived_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_junk_is_refused() {
        let c = Cursor {
            finished_ms: 1_700_000_000_123,
            id: "01J9ZX.y".into(),
        };
        assert_eq!(Cursor::parse(&c.token()).unwrap(), c);
        for junk in ["", "h", "h12", "x1.a", "h1x.a", "h1."] {
            assert!(Cursor::parse(junk).is_err(), "{junk}");
        }
    }
}
