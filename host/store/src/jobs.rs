//! Jobs: enqueue (with idempotency keys and queue limits), read, cancel, list, promote
//! delayed jobs when due, the retention sweep, and the per-type overview.
//!
//! Keys: `job:<id>`, `queue:<type>`, `seq`, `delayed`, `scheduled:<type>`, `jobs`,
//! `idem:<key>`, `sweep:cursor`; publishes `ready <type>` and `cancel <id>`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use redis::{AsyncCommands, Script};

use crate::{
    AttemptRecord, CancelResult, Enqueued, JobFilter, JobRecord, JobState, LIST_SCAN_LIMIT, NewJob,
    Overview, QueueDepth, Result, RetryPolicy, Store, StoreError, TypeLoad, millis, new_id, now_ms,
    parse_value,
};

/// What the store refuses before any plugin or Redis sees a job.
fn check_new(job: &NewJob) -> Result<()> {
    if job.job_type.is_empty() {
        return Err(StoreError::Invalid("job type: empty".into()));
    }
    if job.retry.max_attempts == 0 {
        return Err(StoreError::Invalid(
            "max attempts: must be at least 1".into(),
        ));
    }
    Ok(())
}

static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/batch.lua"),
        include_str!("lua/enqueue.lua")
    ))
});
static CANCEL: LazyLock<Script> =
    LazyLock::new(|| crate::claims::with_attempts(include_str!("lua/cancel.lua")));
static PROMOTE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/promote.lua")));
static SWEEP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/sweep.lua")));

impl Store {
    /// Creates a job, or returns the existing one for its idempotency key. Returns the id
    /// and whether it was created now.
    pub async fn enqueue(&self, job: &NewJob) -> Result<(String, bool)> {
        let mut answers = self.enqueue_batch(std::slice::from_ref(job)).await?;
        let written = answers.pop().expect("one answer per job")?;
        Ok((written.id, written.created))
    }

    /// Creates `jobs` in one script call, in order, each as [`Store::enqueue`] would: one
    /// answer per job, in order. A job the store refuses (an empty type, no attempts, its
    /// type's queue full) is refused alone; the outer error is Redis failing the batch.
    pub async fn enqueue_batch(&self, jobs: &[NewJob]) -> Result<Vec<Result<Enqueued>>> {
        let mut answers: Vec<Result<Enqueued>> = Vec::with_capacity(jobs.len());
        let k = &self.keys;
        let mut invocation = ENQUEUE.prepare_invoke();
        invocation
            .key(k.delayed())
            .key(k.seq())
            .key(k.jobs())
            .arg(k.prefix())
            .arg(millis(self.options.idempotency_ttl))
            .arg(k.events());
        let mut sent = 0;
        for job in jobs {
            match check_new(job) {
                Ok(()) => {
                    let id = new_id();
                    self.push_job(&mut invocation, &id, job);
                    answers.push(Ok(Enqueued {
                        id,
                        created: true,
                        created_ms: 0,
                    }));
                    sent += 1;
                }
                Err(e) => answers.push(Err(e)),
            }
        }
        if sent == 0 {
            return Ok(answers);
        }
        let mut conn = self.conn();
        let reply: Vec<redis::Value> = invocation.invoke_async(&mut conn).await?;
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: k.jobs(),
            reason: format!("enqueue reply: {reason}"),
        };
        if reply.len() != 1 + 3 * sent {
            return Err(corrupt("wrong length"));
        }
        let now: u64 = parse_value(reply[0].clone())?;
        let mut written = reply[1..].chunks(3);
        for (answer, job) in answers.iter_mut().zip(jobs) {
            let Ok(slot) = answer else { continue };
            let [id, created, waiting] = written.next().ok_or_else(|| corrupt("short"))? else {
                return Err(corrupt("short"));
            };
            let created: i8 = parse_value(created.clone())?;
            if created < 0 {
                let (limit, knob) = self
                    .options
                    .limits
                    .max_queued(&job.job_type)
                    .unwrap_or_default();
                *answer = Err(StoreError::QueueFull {
                    job_type: job.job_type.clone(),
                    waiting: parse_value(waiting.clone())?,
                    limit,
                    knob,
                });
                continue;
            }
            if created == 0 {
                slot.id = parse_value(id.clone())?;
            }
            slot.created = created == 1;
            slot.created_ms = now;
        }
        Ok(answers)
    }

    /// Adds `job`'s header and hash fields to an enqueue call (see `lua/enqueue.lua`). A
    /// field at its default (no name, no labels, priority 0, no timeout, the default
    /// backoff, nobody named) is left out: readers take the default for a missing field,
    /// and a smaller hash is less for Redis to parse, store and copy.
    fn push_job(&self, invocation: &mut redis::ScriptInvocation<'_>, id: &str, job: &NewJob) {
        let max_queued = self.options.limits.max_queued(&job.job_type);
        let defaults = RetryPolicy::default();
        let mut fields: Vec<(&str, String)> = Vec::with_capacity(10);
        fields.push(("type", job.job_type.clone()));
        fields.push(("spec", job.spec.clone()));
        fields.push(("max_attempts", job.retry.max_attempts.to_string()));
        let optional = [
            ("name", (!job.name.is_empty()).then(|| job.name.clone())),
            (
                "labels",
                (!job.labels.is_empty())
                    .then(|| serde_json::to_string(&job.labels).expect("labels serialize")),
            ),
            (
                "priority",
                (job.priority > 0).then(|| job.priority.to_string()),
            ),
            (
                "backoff_base_ms",
                (job.retry.backoff_base_ms != defaults.backoff_base_ms)
                    .then(|| job.retry.backoff_base_ms.to_string()),
            ),
            (
                "backoff_max_ms",
                (job.retry.backoff_max_ms != defaults.backoff_max_ms)
                    .then(|| job.retry.backoff_max_ms.to_string()),
            ),
            (
                "timeout_ms",
                job.timeout_ms.filter(|t| *t > 0).map(|t| t.to_string()),
            ),
            (
                "submitted_by",
                (!job.submitted_by.is_empty()).then(|| job.submitted_by.clone()),
            ),
            ("keep", job.keep_succeeded.then(|| "1".to_owned())),
        ];
        fields.extend(
            optional
                .into_iter()
                .filter_map(|(name, value)| value.map(|v| (name, v))),
        );
        invocation
            .arg(id)
            .arg(job.run_at_ms.unwrap_or(0))
            .arg(job.priority)
            .arg(&job.job_type)
            .arg(max_queued.as_ref().map_or(0, |(limit, _)| *limit))
            .arg(job.idempotency_key.as_deref().unwrap_or(""))
            .arg(fields.len());
        for (name, value) in fields {
            invocation.arg(name).arg(value);
        }
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
        self.prepend_attempts(id, &mut record, &history)?;
        Ok(Some(record))
    }

    /// Puts the attempts after which the job ran again (`attempts:<id>`, as JSON), before
    /// its final one (in the record).
    pub(crate) fn prepend_attempts(
        &self,
        id: &str,
        record: &mut JobRecord,
        earlier: &[String],
    ) -> Result<()> {
        let mut history = earlier
            .iter()
            .map(|h| serde_json::from_str(h))
            .collect::<std::result::Result<Vec<AttemptRecord>, _>>()
            .map_err(|e| StoreError::Corrupt {
                key: self.keys.attempts(id),
                reason: e.to_string(),
            })?;
        history.append(&mut record.history);
        record.history = history;
        Ok(())
    }

    /// Cancels `id`.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<CancelResult> {
        self.cancel_by(id, reason, "").await
    }

    /// As [`Store::cancel`], recording `by` (who asked, as [`NewJob::submitted_by`] names
    /// callers) in the job's `cancelled_by`.
    pub async fn cancel_by(&self, id: &str, reason: &str, by: &str) -> Result<CancelResult> {
        let mut invocation = CANCEL.prepare_invoke();
        invocation
            .key(self.keys.job(id))
            .key(self.keys.delayed())
            .key(self.keys.attempts(id))
            .arg(id)
            .arg(self.keys.prefix())
            .arg(self.keys.events())
            .arg(millis(self.options.retention))
            .arg(reason)
            .arg(by)
            .arg(self.options.archive_max);
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
        let mut invocation = PROMOTE.prepare_invoke();
        invocation
            .key(self.keys.delayed())
            .key(self.keys.seq())
            .arg(self.keys.prefix())
            .arg(limit)
            .arg(self.keys.events());
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
        let mut invocation = SWEEP.prepare_invoke();
        invocation
            .key(self.keys.jobs())
            .key(self.keys.dead())
            .key(self.keys.sweep_cursor())
            .key(self.keys.succeeded())
            .arg(self.keys.prefix())
            .arg(batch)
            .arg(millis(self.options.succeeded_retention));
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// Queue depths and the age of each queue's next job (for `job_types`), and the
    /// numbers of RUNNING jobs (of `job_types`), SCHEDULED and DEAD jobs and live nodes, in
    /// two round trips.
    /// Ages are by the Redis server's clock, like the jobs' creation times.
    pub async fn overview(&self, job_types: &[String]) -> Result<Overview> {
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        pipe.zcard(self.keys.delayed())
            .zcard(self.keys.dead())
            .zcount(self.keys.nodes(), now_ms(), "+inf");
        for job_type in job_types {
            // RUNNING jobs are counted per type (leases are per node, not per job).
            pipe.zcard(self.keys.queue(job_type))
                .zrange(self.keys.queue(job_type), 0, 0)
                .scard(self.keys.running_of(job_type));
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
        let scheduled: u64 = parse_value(next()?)?;
        let dead: u64 = parse_value(next()?)?;
        let nodes: u64 = parse_value(next()?)?;
        let mut running = 0;
        let mut queues = Vec::with_capacity(job_types.len());
        let mut heads = Vec::new();
        for job_type in job_types {
            let depth: u64 = parse_value(next()?)?;
            let head: Vec<String> = parse_value(next()?)?;
            running += parse_value::<u64>(next()?)?;
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

pub(crate) fn parse_job(key: &str, mut f: BTreeMap<String, String>) -> Result<JobRecord> {
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
    let attempts = take("attempts").parse().unwrap_or(0);
    let created_ms = num(take("created_ms")).unwrap_or(0);
    let started_ms = num(take("started_ms"));
    let finished_ms = num(take("finished_ms"));
    // The scripts write `updated_ms` only for a change that sets no time of its own: the
    // last change is the latest of the job's times.
    let updated_ms = [num(take("updated_ms")), started_ms, finished_ms]
        .into_iter()
        .flatten()
        .fold(created_ms, u64::max);
    let output = Some(take("output")).filter(|_| state == JobState::Succeeded);
    let reason = Some(take("reason")).filter(|r| !r.is_empty());
    // The final attempt is kept in the hash (see `lua/attempts.lua`).
    let outcome = take("outcome");
    let last_attempt = (!outcome.is_empty()).then(|| AttemptRecord {
        attempt: attempts,
        node: take("last_node"),
        started_ms: started_ms.unwrap_or(0),
        ended_ms: finished_ms.unwrap_or(0),
        // The output is the job's `output`; an answer carries it once.
        reason: reason.clone().unwrap_or_default(),
        outcome,
    });
    Ok(JobRecord {
        // The key names the job (records written before this was so also hold it).
        id: Some(take("id"))
            .filter(|id| !id.is_empty())
            .or_else(|| key.rsplit_once("job:").map(|(_, id)| id.to_owned()))
            .unwrap_or_default(),
        name: take("name"),
        job_type: take("type"),
        spec: take("spec"),
        labels,
        priority: take("priority").parse().unwrap_or(0),
        state,
        attempts,
        retry: RetryPolicy {
            max_attempts: take("max_attempts").parse().unwrap_or(1),
            backoff_base_ms: num(take("backoff_base_ms")).unwrap_or(1000),
            backoff_max_ms: num(take("backoff_max_ms")).unwrap_or(300_000),
        },
        timeout_ms: timeout,
        created_ms,
        updated_ms,
        run_at_ms: num(take("run_at_ms")).filter(|_| state == JobState::Scheduled),
        finished_ms,
        node: Some(take("node")).filter(|n| !n.is_empty()),
        output,
        reason,
        cancel_requested: take("cancel") == "1",
        history: last_attempt.into_iter().collect(),
        submitted_by: take("submitted_by"),
        cancelled_by: take("cancelled_by"),
    })
}
