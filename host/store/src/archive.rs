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

static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n\
         return 0",
    )
});

/// A batch of the outbox, as read for archiving.
#[derive(Debug, Clone, Default)]
pub struct ArchiveBatch {
    /// Its jobs, oldest finished first.
    pub entries: Vec<ArchiveEntry>,
    /// Whether more jobs wait after these (the batch was full, or cut at its log budget).
    pub more: bool,
}

/// One job of the outbox, as read for archiving.
#[derive(Debug, Clone)]
pub struct ArchiveEntry {
    /// The job's id.
    pub id: String,
    /// When it was put in the outbox (its finish time), Unix ms.
    pub queued_ms: u64,
    /// What was read of it.
    pub job: ArchiveRead,
}

/// What reading one job of the outbox found.
#[derive(Debug, Clone)]
pub enum ArchiveRead {
    /// The job, to archive.
    Found(Box<ArchivedJob>),
    /// Its record is gone (deleted behind the store's back): only released.
    Gone,
    /// Its record cannot be read (the reason): released unarchived, so that one damaged
    /// record does not hold back the outbox.
    Unreadable(String),
}

impl ArchiveRead {
    /// The job, if it was read.
    pub fn found(&self) -> Option<&ArchivedJob> {
        match self {
            ArchiveRead::Found(job) => Some(job),
            _ => None,
        }
    }
}

/// A finished job with what is archived of its log.
#[derive(Debug, Clone)]
pub struct ArchivedJob {
    /// The record with its whole attempt history.
    pub record: JobRecord,
    /// Its first log lines (at most what was asked for, in lines and in bytes).
    pub log: Vec<LogEntry>,
    /// How many lines its log had in all.
    pub log_lines: u64,
}

/// Most log lines one [`Store::archive_pending`] batch holds (at least one job is read
/// whatever its log).
pub const LOG_LINES_PER_BATCH: usize = 20_000;
/// Most bytes of records and log text one batch holds, likewise.
pub const BYTES_PER_BATCH: usize = 32 << 20;
/// Jobs read per round trip (the budgets are checked between reads).
const JOBS_PER_READ: usize = 16;

impl ArchivedJob {
    /// The finish time [`Store::archive_release`] checks the job against.
    pub fn finished_ms(&self) -> u64 {
        self.record.finished_ms.unwrap_or(0)
    }
}

/// What is read of one job: record fields, earlier attempts, log length, first log lines.
type Read = (
    BTreeMap<String, String>,
    Vec<String>,
    u64,
    redis::streams::StreamRangeReply,
);

impl Store {
    /// The oldest `limit` jobs of the history outbox, each with its attempts and its first
    /// log lines (at most `max_log_lines` and `max_log_bytes` of text). Jobs are read
    /// [`JOBS_PER_READ`] at a time, and the batch ends early, with [`ArchiveBatch::more`],
    /// once it holds [`LOG_LINES_PER_BATCH`] log lines or [`BYTES_PER_BATCH`] bytes of
    /// records and logs: specs, outputs and logs may each be large.
    pub async fn archive_pending(
        &self,
        limit: usize,
        max_log_lines: usize,
        max_log_bytes: usize,
    ) -> Result<ArchiveBatch> {
        let mut conn = self.conn();
        let head: Vec<(String, u64)> = self.outbox_head(limit).query_async(&mut conn).await?;
        let mut batch = ArchiveBatch {
            entries: Vec::with_capacity(head.len()),
            more: head.len() >= limit,
        };
        let (mut lines, mut bytes) = (0, 0);
        for group in head.chunks(JOBS_PER_READ) {
            if lines >= LOG_LINES_PER_BATCH || bytes >= BYTES_PER_BATCH {
                batch.more = true;
                break;
            }
            let mut pipe = redis::pipe();
            for (id, _) in group {
                pipe.hgetall(self.keys.job(id))
                    .lrange(self.keys.attempts(id), 0, -1)
                    .xlen(self.keys.log(id))
                    .cmd("XRANGE")
                    .arg(self.keys.log(id))
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(max_log_lines.max(1));
            }
            let reads: Vec<Read> = pipe.query_async(&mut conn).await?;
            for ((id, queued_ms), read) in group.iter().zip(reads) {
                bytes += read.0.values().map(String::len).sum::<usize>();
                let job = self.archived(id, read, max_log_lines, max_log_bytes);
                if let ArchiveRead::Found(job) = &job {
                    lines += job.log.len();
                    bytes += job.log.iter().map(|l| l.message.len()).sum::<usize>();
                }
                let (id, queued_ms) = (id.clone(), *queued_ms);
                batch.entries.push(ArchiveEntry { id, queued_ms, job });
            }
        }
        Ok(batch)
    }

    fn archived(
        &self,
        id: &str,
        (fields, earlier, log_lines, log): Read,
        max_log_lines: usize,
        max_log_bytes: usize,
    ) -> ArchiveRead {
        if fields.is_empty() {
            return ArchiveRead::Gone;
        }
        let record = parse_job(&self.keys.job(id), fields).and_then(|mut record| {
            self.prepend_attempts(id, &mut record, &earlier)?;
            Ok(record)
        });
        let record = match record {
            Ok(record) => record,
            Err(e) => return ArchiveRead::Unreadable(e.to_string()),
        };
        let mut bytes = 0;
        let log = log
            .ids
            .into_iter()
            .take(max_log_lines)
            .map(log_entry)
            .take_while(|line| {
                bytes += line.message.len();
                bytes <= max_log_bytes
            })
            .collect();
        ArchiveRead::Found(Box::new(ArchivedJob {
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

    /// Lets jobs leave the outbox unarchived (their record cannot be read): they get the
    /// retention of failed jobs.
    pub async fn archive_discard(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ttl = millis(self.options.retention);
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.zrem(self.keys.archive(), id)
                .ignore()
                .pexpire(self.keys.job(id), ttl as i64)
                .ignore()
                .pexpire(self.keys.attempts(id), ttl as i64)
                .ignore()
                .pexpire(self.keys.log(id), ttl as i64)
                .ignore();
        }
        let mut conn = self.conn();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
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

    /// Gives up the drain lease if `node` holds it (a node stopping), so another node or a
    /// node with history off need not wait for it to expire.
    pub async fn archive_lease_release(&self, node: &str) -> Result<()> {
        let mut conn = self.conn();
        let _: i64 = RELEASE_LEASE
            .key(self.keys.archive_lease())
            .arg(node)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
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
