//! The archive drain: moves finished jobs from the store's history outbox into the job
//! history (PostgreSQL), off the job path.
//!
//! Every node with history on runs it; the one holding the store's drain lease works, the
//! others wait to take over. A batch is read from Redis, written in one PostgreSQL
//! transaction, and only then released from the outbox (which starts the jobs' Redis
//! retention), so a crash anywhere in between archives the batch again, which the history
//! absorbs (one row per job). While PostgreSQL is away, batches stay in the outbox and the
//! drain retries, backing off to `MAX_BACKOFF`; jobs keep running meanwhile.
//!
//! Archiving costs CPU (reading the jobs, the transaction, releasing them) that, on a busy
//! machine, jobs would otherwise use. So the drain defers to the job path: while this
//! node's worker is running jobs (it finished some since the last batch), it pauses
//! between full batches, the
//! longer the emptier the outbox (a full `interval` when empty, none from half full), so a
//! burst is absorbed by the outbox and archived as it ends, and a sustained load still
//! finds the outbox drained as fast as it fills before it is half full.

use std::time::{Duration, Instant};

use jobhost_config::HistoryConfig;
use jobhost_history::{History, HistoryError};
use jobhost_store::{ArchiveRead, Store};
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// Longest wait between retries while the database is away.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the history's retention runs (on the node holding the lease).
const EXPIRE_EVERY: Duration = Duration::from_secs(3600);
/// Rows of the history's retention deleted per drain step.
const EXPIRE_PER_STEP: u64 = 5_000;
/// How often the outbox's fill is looked at, for the metric and the warnings.
const WATCH_EVERY: Duration = Duration::from_secs(5);
/// How often the fill warning and the overflow error may repeat.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What the drain needs from `[history]`.
#[derive(Debug, Clone)]
pub struct DrainSettings {
    /// This node's id (the lease holder's name).
    pub node_id: String,
    /// Jobs per transaction.
    pub batch: usize,
    /// Idle poll interval.
    pub interval: Duration,
    /// Log lines read per job.
    pub max_log_lines: usize,
    /// Bytes of log text read per job.
    pub max_log_bytes: usize,
    /// The outbox's size, for the fill warning.
    pub outbox_max: u64,
}

impl DrainSettings {
    /// The settings `history` gives a node named `node_id`.
    pub fn new(history: &HistoryConfig, node_id: String) -> DrainSettings {
        DrainSettings {
            node_id,
            batch: history.batch_size,
            interval: Duration::from_millis(history.interval_ms),
            max_log_lines: history.max_log_lines,
            max_log_bytes: history.max_log_bytes,
            outbox_max: history.outbox_max,
        }
    }

    /// How long the lease lasts without renewal: a few idle intervals, and long enough for
    /// a slow batch.
    fn lease(&self) -> Duration {
        (self.interval * 5).max(Duration::from_secs(15))
    }
}

/// Runs the drain until `stop`.
pub async fn drain(
    store: Store,
    history: History,
    settings: DrainSettings,
    stop: CancellationToken,
) {
    let mut drain = Drain {
        store,
        history,
        settings,
        backoff: None,
        watch: Watch::default(),
        expired_at: None,
        finished_seen: 0,
    };
    loop {
        let pause = drain.step().await;
        tokio::select! {
            () = stop.cancelled() => {
                // Hand the lease over now rather than in a lease's time.
                let node = &drain.settings.node_id;
                if let Err(e) = drain.store.archive_lease_release(node).await {
                    tracing::debug!("history drain: cannot give up its lease: {e}");
                }
                return;
            }
            () = tokio::time::sleep(pause) => {}
        }
    }
}

struct Drain {
    store: Store,
    history: History,
    settings: DrainSettings,
    /// The current wait after a failure, if the last step failed.
    backoff: Option<Duration>,
    watch: Watch,
    expired_at: Option<Instant>,
    /// [`metrics::Metrics::attempts_finished`] at the last look.
    finished_seen: u64,
}

/// When the outbox was last looked at and warned about.
#[derive(Default)]
struct Watch {
    at: Option<Instant>,
    warned_full: Option<Instant>,
    overflow_seen: Option<u64>,
    warned_overflow: Option<Instant>,
}

impl Drain {
    /// One step: archive a batch if this node holds the lease. Returns how long to wait
    /// before the next (none after a full batch).
    async fn step(&mut self) -> Duration {
        self.watch_outbox().await;
        let held = self
            .store
            .archive_lease(&self.settings.node_id, self.settings.lease())
            .await;
        match held {
            Ok(true) => {}
            Ok(false) => return self.settings.interval,
            Err(e) => {
                tracing::debug!("history drain: cannot reach Redis: {e}");
                return self.settings.interval;
            }
        }
        self.expire().await;
        match self.archive_batch().await {
            Ok(more) => {
                self.backoff = None;
                metrics::global().history_up(true);
                if !more {
                    self.settings.interval
                } else if self.worker_busy() {
                    self.deferred().await
                } else {
                    Duration::ZERO
                }
            }
            Err(e) => self.failed(e),
        }
    }

    /// Whether this node's worker finished attempts since the last look.
    fn worker_busy(&mut self) -> bool {
        let finished = metrics::global().attempts_finished();
        let busy = finished > self.finished_seen;
        self.finished_seen = finished;
        busy
    }

    /// The pause after a full batch while the worker is busy: `interval` with an empty
    /// outbox, shrinking to none as it fills to half of `outbox_max`.
    async fn deferred(&self) -> Duration {
        let waiting = match self.store.archive_backlog().await {
            Ok((waiting, _)) => waiting,
            Err(_) => return self.settings.interval,
        };
        let half = (self.settings.outbox_max / 2).max(1);
        let room = half.saturating_sub(waiting) as f64 / half as f64;
        self.settings.interval.mul_f64(room)
    }

    /// Reads a batch, writes it, releases it. Returns whether more jobs wait.
    async fn archive_batch(&mut self) -> Result<bool, DrainError> {
        let s = &self.settings;
        let batch = self
            .store
            .archive_pending(s.batch, s.max_log_lines, s.max_log_bytes)
            .await?;
        // A job whose record is gone (deleted by hand, say) only leaves the outbox; one
        // whose record is damaged too, said loudly, so that it cannot block the rest.
        let mut release = Vec::new();
        let mut jobs = Vec::new();
        let mut unreadable = Vec::new();
        for entry in batch.entries {
            match entry.job {
                ArchiveRead::Found(job) => jobs.push(*job),
                ArchiveRead::Gone => release.push((entry.id, entry.queued_ms)),
                ArchiveRead::Unreadable(reason) => {
                    tracing::error!(job_id = %entry.id, "a finished job's record cannot be read; it is not archived: {reason}");
                    unreadable.push(entry.id);
                }
            }
        }
        self.store.archive_discard(&unreadable).await?;
        metrics::global().history_refused(unreadable.len());
        let started = Instant::now();
        let written = self.history.archive(&jobs).await?;
        metrics::global().history_batch(written.archived.len(), started.elapsed());
        metrics::global().history_refused(written.refused.len());
        for (id, _, reason) in &written.refused {
            tracing::error!(job_id = %id, "the job history refused this job; it is not archived: {reason}");
        }
        release.extend(written.archived);
        release.extend(written.refused.into_iter().map(|(id, at, _)| (id, at)));
        self.store.archive_release(&release).await?;
        Ok(batch.more)
    }

    /// The wait after a failed step, logged once per outage.
    fn failed(&mut self, error: DrainError) -> Duration {
        let next = match self.backoff {
            None => {
                tracing::warn!(
                    "history drain: {error}; finished jobs wait in Redis and are archived \
                     when it works again"
                );
                self.settings.interval
            }
            Some(d) => (d * 2).min(MAX_BACKOFF),
        };
        if matches!(error, DrainError::History(HistoryError::Unavailable(_))) {
            metrics::global().history_up(false);
        }
        tracing::debug!("history drain: {error}; next try in {next:?}");
        self.backoff = Some(next);
        next
    }

    /// The history's retention, hourly (and when the lease is first taken), a few
    /// thousand rows per step so that archiving goes on in between.
    async fn expire(&mut self) {
        if self
            .expired_at
            .is_some_and(|at| at.elapsed() < EXPIRE_EVERY)
        {
            return;
        }
        match self.history.expire(EXPIRE_PER_STEP).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(
                        deleted = n,
                        "job history: jobs past history.retention_days deleted"
                    );
                }
                // Done for the hour once a step finds less than its share.
                if n < EXPIRE_PER_STEP {
                    self.expired_at = Some(Instant::now());
                }
            }
            Err(e) => {
                self.expired_at = Some(Instant::now());
                tracing::warn!("job history retention: {e}");
            }
        }
    }

    /// The outbox's fill: the metric, a warning from 80 %, an error when jobs overflowed.
    async fn watch_outbox(&mut self) {
        let w = &mut self.watch;
        if w.at.is_some_and(|at| at.elapsed() < WATCH_EVERY) {
            return;
        }
        w.at = Some(Instant::now());
        let Ok((waiting, overflow)) = self.store.archive_backlog().await else {
            return;
        };
        metrics::global().history_outbox(waiting, overflow);
        let recent = |at: Option<Instant>| at.is_some_and(|at| at.elapsed() < WARN_EVERY);
        let max = self.settings.outbox_max;
        if waiting * 5 >= max * 4 && !recent(w.warned_full) {
            w.warned_full = Some(Instant::now());
            tracing::warn!(
                waiting,
                outbox_max = max,
                "the history outbox is {}% full: the job history is not keeping up (is \
                 PostgreSQL reachable?); when full, finished jobs are no longer archived",
                waiting * 100 / max.max(1)
            );
        }
        let grew = w.overflow_seen.is_some_and(|seen| overflow > seen);
        if grew && !recent(w.warned_overflow) {
            w.warned_overflow = Some(Instant::now());
            tracing::error!(
                overflow,
                outbox_max = max,
                "the history outbox is full: finished jobs are NOT archived (they keep their \
                 Redis retention); raise history.outbox_max or bring PostgreSQL back"
            );
        }
        w.overflow_seen = Some(overflow);
    }
}

/// On a node with history off, every minute until `stop`: jobs left in the outbox by an
/// earlier configuration with history on (and no node draining them) would never expire,
/// so they are released: their Redis retention starts, they are not archived.
pub async fn abandon_outbox(store: Store, stop: CancellationToken) {
    loop {
        abandon_once(&store).await;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

async fn abandon_once(store: &Store) {
    let mut released = 0;
    loop {
        match store.archive_abandon(1_000).await {
            Ok(0) => break,
            Ok(n) => released += n,
            Err(e) => {
                tracing::debug!("cannot look at the history outbox: {e}");
                break;
            }
        }
    }
    if released > 0 {
        tracing::warn!(
            released,
            "the job history is off on this node and no node archives: finished jobs that \
             waited in the history outbox now get their Redis retention instead (set \
             history.postgres_url on every node to keep archiving)"
        );
    }
}

/// Why a drain step failed.
#[derive(Debug, thiserror::Error)]
enum DrainError {
    #[error("Redis: {0}")]
    Store(#[from] jobhost_store::StoreError),
    #[error("{0}")]
    History(#[from] HistoryError),
}
