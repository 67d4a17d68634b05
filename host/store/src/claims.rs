//! Leases: claim ready jobs (within per-type concurrency limits), renew a lease, record an
//! attempt's outcome, and re-queue the jobs of leases that lapsed (a dead node's).
//!
//! Keys: `queue:<type>`, `running`, `running:<type>`, `limited`, `attempts:<id>`, `dead`,
//! `delayed`, `scheduled:<type>`, `job:<id>`; publishes `ready <type>`.
//! Also `succeeded`, the index whose oldest entries `finish` deletes (retention).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::{
    AttemptEnd, ClaimedJob, Finish, JobState, Keys, Result, RetryPolicy, Store, StoreError, millis,
};

static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/batch.lua"),
        include_str!("lua/claim.lua")
    ))
});
static RENEW: LazyLock<Script> = LazyLock::new(|| with_attempts(include_str!("lua/renew.lua")));
static FINISH: LazyLock<Script> = LazyLock::new(|| with_attempts(include_str!("lua/finish.lua")));
static REAP: LazyLock<Script> = LazyLock::new(|| with_attempts(include_str!("lua/reap.lua")));

/// A script that ends attempts, with the helpers it shares (`lua/batch.lua`,
/// `lua/attempts.lua`).
pub(crate) fn with_attempts(body: &str) -> Script {
    Script::new(&format!(
        "{}{}{body}",
        include_str!("lua/batch.lua"),
        include_str!("lua/attempts.lua")
    ))
}

/// The most attempts one `finish_batch` script call records: a bound on the time one
/// script holds Redis (a few ms), the rest waits for the next call.
pub const FINISH_BATCH_MAX: usize = 512;

impl Store {
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
        let mut invocation = CLAIM.prepare_invoke();
        invocation
            .key(self.keys.leases())
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
        let mut flat: Vec<redis::Value> = invocation.invoke_async(&mut conn).await?;
        flat.chunks_mut(CLAIM_FIELDS)
            .map(|c| parse_claim(&self.keys, c))
            .collect::<Result<Vec<_>>>()
    }

    /// Extends `node`'s lease. `running` are the jobs it runs, `recording` those whose
    /// outcome it is still recording. Returns (ids of `running` whose cancellation was
    /// requested, ids of `running` it no longer holds). Jobs it holds in Redis but knows
    /// nothing of, claimed over a lease ago, are ended as lost (re-queued while attempts
    /// remain).
    pub async fn renew(
        &self,
        node: &str,
        running: &[String],
        recording: &[String],
        lease: Duration,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let mut invocation = RENEW.prepare_invoke();
        invocation
            .key(self.keys.leases())
            .key(self.keys.dead())
            .key(self.keys.seq())
            .key(self.keys.limited())
            .arg(self.keys.prefix())
            .arg(node)
            .arg(millis(lease))
            .arg(millis(self.options.retention))
            .arg(self.keys.events())
            .arg(self.options.archive_max)
            .arg(running.len());
        for id in running.iter().chain(recording) {
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
        let mut states = self
            .finish_batch(node, &[AttemptEnd::new(job, finish)])
            .await?;
        Ok(states.pop().flatten())
    }

    /// Records the ends of many attempts of `node` in one script call (at most
    /// [`FINISH_BATCH_MAX`]), as [`Store::finish`] records one: one answer per attempt, in
    /// order. Also trims the succeeded jobs to their retention.
    pub async fn finish_batch(
        &self,
        node: &str,
        ends: &[AttemptEnd<'_>],
    ) -> Result<Vec<Option<JobState>>> {
        if ends.is_empty() {
            return Ok(Vec::new());
        }
        if ends.len() > FINISH_BATCH_MAX {
            return Err(StoreError::Invalid(format!(
                "{} attempts in one finish; at most {FINISH_BATCH_MAX}",
                ends.len()
            )));
        }
        let k = &self.keys;
        let mut invocation = FINISH.prepare_invoke();
        invocation
            .key(k.leases())
            .key(k.delayed())
            .key(k.dead())
            .key(k.seq())
            .key(k.limited())
            .key(k.succeeded())
            .key(k.jobs())
            .arg(k.prefix())
            .arg(node)
            .arg(millis(self.options.retention))
            .arg(millis(self.options.succeeded_retention))
            .arg(self.options.succeeded_max)
            .arg(k.events())
            .arg(self.options.archive_max);
        for &AttemptEnd {
            job,
            finish,
            logged,
        } in ends
        {
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
            invocation
                .arg(&job.id)
                .arg(job.attempt)
                .arg(kind)
                .arg(text)
                .arg(delay)
                .arg(label)
                .arg(if logged { "1" } else { "0" });
        }
        let mut conn = self.conn();
        let states: Vec<String> = invocation.invoke_async(&mut conn).await?;
        if states.len() != ends.len() {
            return Err(StoreError::Corrupt {
                key: k.running(),
                reason: format!(
                    "finish answered {} states for {} jobs",
                    states.len(),
                    ends.len()
                ),
            });
        }
        states
            .iter()
            .zip(ends)
            .map(|(state, end)| match state.as_str() {
                "stale" => Ok(None),
                other => JobState::parse(other)
                    .map(Some)
                    .ok_or_else(|| StoreError::Corrupt {
                        key: k.job(&end.job.id),
                        reason: format!("unknown state {other:?}"),
                    }),
            })
            .collect()
    }

    /// Re-queues up to `limit` running jobs whose lease expired.
    pub async fn reap_expired(&self, limit: usize) -> Result<usize> {
        let mut invocation = REAP.prepare_invoke();
        invocation
            .key(self.keys.leases())
            .key(self.keys.dead())
            .key(self.keys.seq())
            .key(self.keys.limited())
            .key(self.keys.running())
            .arg(self.keys.prefix())
            .arg(limit)
            .arg(self.keys.events())
            .arg(millis(self.options.retention))
            .arg(self.options.archive_max);
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }
}

/// Values per job in the claim script's reply.
const CLAIM_FIELDS: usize = 10;

fn parse_claim(keys: &Keys, c: &mut [redis::Value]) -> Result<ClaimedJob> {
    // Each value is taken out of the reply, not copied: a claim reply is most of what a
    // node reads per job.
    let mut f: [String; CLAIM_FIELDS] = Default::default();
    for (text, value) in f.iter_mut().zip(c.iter_mut()) {
        let value = std::mem::replace(value, redis::Value::Nil);
        *text = redis::from_redis_value::<String>(value).unwrap_or_default();
    }
    let [
        id,
        attempt,
        job_type,
        spec,
        labels,
        timeout,
        cancel,
        max,
        base,
        cap,
    ] = f;
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: keys.job(&id),
        reason: reason.to_owned(),
    };
    if c.len() != CLAIM_FIELDS {
        return Err(corrupt("short claim reply"));
    }
    let defaults = RetryPolicy::default();
    Ok(ClaimedJob {
        attempt: attempt.parse().map_err(|_| corrupt("attempt"))?,
        job_type,
        spec,
        labels: if labels.is_empty() {
            Default::default()
        } else {
            serde_json::from_str(&labels).unwrap_or_default()
        },
        timeout_ms: timeout.parse().ok().filter(|t: &u64| *t > 0),
        cancel_requested: cancel == "1",
        // The claim already happened in Redis: a damaged optional field must not orphan
        // the job, so defaults stand in for it.
        retry: RetryPolicy {
            max_attempts: max.parse().unwrap_or(1),
            backoff_base_ms: base.parse().unwrap_or(defaults.backoff_base_ms),
            backoff_max_ms: cap.parse().unwrap_or(defaults.backoff_max_ms),
        },
        id,
    })
}
