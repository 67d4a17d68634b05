//! The history outbox: jobs that ended, waiting to be written to PostgreSQL.
//!
//! The scripts that end a job (`finish`, `reap`/`renew` via `end_lost`, `cancel`) add it
//! to `archive` in the same call, when [`StoreOptions::archive_max`] is set, instead of
//! starting its retention: the job stays whole in Redis until a node has archived it and
//! called [`Store::archive_release`], which starts the retention it would have had. One
//! node at a time drains (`archive:lease`); a second drain of the same jobs (a lease that
//! lapsed mid-batch) writes the same rows again, which the archive absorbs.
//!
//! Keys: `archive`, `archive:overflow`, `archive:lease`; reads `job:<id>`,
//! `attempts:<id>`, `log:<id>`; `archive_done` writes `succeeded` and `jobs` (retention).
//!
//! [`StoreOptions::archive_max`]: crate::StoreOptions::archive_max

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use crate::jobs::parse_job;
use crate::logs::log_entry;
use crate::{JobRecord, LogEntry, Result, Store, millis};

static DONE: LazyLock<Script> =
    LazyLock::new(|| crate::claims::with_attempts(include_str!("lua/archive_done.lua")));
static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local held = redis.call('GET', KEYS[1])\n\
         if held and held ~= ARGV[1] then return 0 end\n\
         redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n\
         return 1",
    )
});

/// One job of the outbox, as read for archiving.
#[derive(Debug, Clone)]
pub struct ArchiveEntry {
    /// The job's id.
    pub id: String,
    /// When it was put in the outbox (its finish time), Unix ms.
    pub queued_ms: u64,
    /// The job, or `None` if its record is gone (it is then just released).
    pub job: Option<ArchivedJob>,
}

/// A finished job with what is archived of its log.
#[derive(Debug, Clone)]
pub struct ArchivedJob {
    /// The record with its whole attempt history.
    pub record: JobRecord,
    /// Its first log lines (at most what was asked for).
    pub log: Vec<LogEntry>,
    /// How many lines its log had in all.
    pub log_lines: u64,
}

/// Most log lines one [`Store::archive_pending`] batch holds (at least one job is read
/// whatever its log).
pub const LOG_LINES_PER_BATCH: usize = 20_000;

impl ArchivedJob {
    /// The finish time [`Store::archive_release`] checks the job against.
    pub fn finished_ms(&self) -> u64 {
        self.record.finished_ms.unwrap_or(0)
    }
}

impl Store {
    /// The oldest `limit` jobs of the history outbox, each with its attempts and its first
    /// `max_log_lines` log lines, read in one round trip.
    pub async fn archive_pending(
        &self,
        limit: usize,
        max_log_lines: usize,
    ) -> Result<Vec<ArchiveEntry>> {
        let mut conn = self.conn();
        let head: Vec<(String, u64)> = self.outbox_head(limit).query_async(&mut conn).await?;
        if head.is_empty() {
            return Ok(Vec::new());
        }
        // The records first (with how long each log is); then, only for jobs that logged,
        // their first lines, and the batch ends early once it holds LOG_LINES_PER_BATCH lines
        // (a batch of chatty jobs would otherwise hold their logs in memory all at once).
        let mut pipe = redis::pipe();
        for (id, _) in &head {
            pipe.hgetall(self.keys.job(id))
                .lrange(self.keys.attempts(id), 0, -1)
                .xlen(self.keys.log(id));
        }
        let replies: Vec<(BTreeMap<String, String>, Vec<String>, u64)> =
            pipe.query_async(&mut conn).await?;
        let mut read = Vec::with_capacity(head.len());
        let mut lines = 0;
        for ((id, queued_ms), (fields, earlier, log_lines)) in head.into_iter().zip(replies) {
            let wanted = usize::try_from(log_lines)
                .unwrap_or(usize::MAX)
                .min(max_log_lines);
            if !read.is_empty() && lines + wanted > LOG_LINES_PER_BATCH {
                break;
            }
            lines += wanted;
            read.push((id, queued_ms, fields, earlier, log_lines, wanted));
        }
        let mut pipe = redis::pipe();
        for (id, _, _, _, _, wanted) in read.iter().filter(|r| r.5 > 0) {
            pipe.cmd("XRANGE")
                .arg(self.keys.log(id))
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(*wanted);
        }
        let mut logs: std::vec::IntoIter<redis::streams::StreamRangeReply> = if lines > 0 {
            let replies: Vec<redis::streams::StreamRangeReply> =
                pipe.query_async(&mut conn).await?;
            replies.into_iter()
        } else {
            Vec::new().into_iter()
        };
        let mut entries = Vec::with_capacity(read.len());
        for (id, queued_ms, fields, earlier, log_lines, wanted) in read {
            let log = if wanted > 0 {
                logs.next().unwrap_or_default()
            } else {
                Default::default()
            };
            let job = self.archived(&id, (fields, earlier, log, log_lines), max_log_lines)?;
            entries.push(ArchiveEntry { id, queued_ms, job });
        }
        Ok(entries)
    }

    fn archived(
        &self,
        id: &str,
        (fields, earlier, log, log_lines): (
            BTreeMap<String, String>,
            Vec<String>,
            redis::streams::StreamRangeReply,
            u64,
        ),
        max_log_lines: usize,
    ) -> Result<Option<ArchivedJob>> {
        if fields.is_empty() {
            return Ok(None);
        }
        let mut record = parse_job(&self.keys.job(id), fields)?;
        self.prepend_attempts(id, &mut record, &earlier)?;
        let log = log
            .ids
            .into_iter()
            .take(max_log_lines)
            .map(log_entry)
            .collect();
        Ok(Some(ArchivedJob {
            record,
            log,
            log_lines,
        }))
    }

    /// Releases jobs that are in PostgreSQL now, given as (id, finish time ms as
    /// archived): they leave the outbox and their Redis retention starts. A job that ran
    /// again since it was read stays. Returns how many left.
    pub async fn archive_release(&self, archived: &[(String, u64)]) -> Result<usize> {
        if archived.is_empty() {
            return Ok(0);
        }
        let k = &self.keys;
        let mut invocation = DONE.prepare_invoke();
        invocation
            .key(k.archive())
            .key(k.succeeded())
            .key(k.jobs())
            .arg(k.prefix())
            .arg(millis(self.options.retention))
            .arg(millis(self.options.succeeded_retention))
            .arg(self.options.succeeded_max);
        for (id, finished_ms) in archived {
            invocation.arg(id).arg(finished_ms);
        }
        let mut conn = self.conn();
        Ok(invocation.invoke_async(&mut conn).await?)
    }

    /// (Jobs waiting in the outbox, jobs that found it full since the deployment began.)
    pub async fn archive_backlog(&self) -> Result<(u64, u64)> {
        let mut conn = self.conn();
        let (waiting, overflow): (u64, Option<u64>) = redis::pipe()
            .zcard(self.keys.archive())
            .get(self.keys.archive_overflow())
            .query_async(&mut conn)
            .await?;
        Ok((waiting, overflow.unwrap_or(0)))
    }

    /// With history off: releases up to `limit` jobs of the outbox without archiving them
    /// (their Redis retention starts), unless a node holds the drain lease (one with history
    /// on is archiving them). Returns how many left.
    pub async fn archive_abandon(&self, limit: usize) -> Result<usize> {
        let mut conn = self.conn();
        let (holder, head): (Option<String>, Vec<(String, u64)>) = redis::pipe()
            .get(self.keys.archive_lease())
            .add_command(self.outbox_head(limit))
            .query_async(&mut conn)
            .await?;
        if holder.is_some() || head.is_empty() {
            return Ok(0);
        }
        self.archive_release(&head).await
    }

    /// The oldest `limit` jobs of the outbox with the time each went in.
    fn outbox_head(&self, limit: usize) -> redis::Cmd {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.keys.archive())
            .arg(0)
            .arg(limit.saturating_sub(1))
            .arg("WITHSCORES");
        cmd
    }

    /// Takes (or keeps) the lease to drain the outbox for `ttl`: true if `node` holds it.
    pub async fn archive_lease(&self, node: &str, ttl: Duration) -> Result<bool> {
        let mut conn = self.conn();
        let held: i64 = LEASE
            .key(self.keys.archive_lease())
            .arg(node)
            .arg(millis(ttl).max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(held == 1)
    }
}
