//! A node's work loop: claim jobs from the shared queue, run them through the runtime,
//! record the outcome. Also the node's housekeeping: heartbeat, lease renewal, re-queueing
//! the jobs of dead nodes, promoting delayed jobs, firing cron schedules (leader only).
//!
//! Guarantees: at-least-once execution. A claimed job carries a lease that this node renews;
//! if the node dies, the lease lapses and any other node re-queues the job (the attempt
//! counts). A node that lost its lease discards its result (the store's `finish` is fenced
//! by node and attempt number).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use jobhost_config::Config;
use jobhost_runtime::{JobEvents, JobInput, LogLevel, RunError, RunOptions, RunOutcome, Runtime};
use jobhost_store::{ClaimedJob, Event, Finish, NodeInfo, Store, StoreError};

/// Settings of a node's worker, from [`Config`].
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// This node's id.
    pub node_id: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Lease on a claimed job.
    pub lease: Duration,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Grace period for running jobs on shutdown.
    pub shutdown_grace: Duration,
    /// Fallback poll interval.
    pub poll: Duration,
}

impl WorkerSettings {
    /// Settings from `config`, with a fresh node id.
    pub fn from_config(config: &Config) -> Self {
        let w = &config.worker;
        WorkerSettings {
            node_id: new_node_id(),
            concurrency: config.concurrency() as usize,
            lease: Duration::from_millis(w.lease_ms),
            heartbeat: Duration::from_millis(w.heartbeat_ms),
            shutdown_grace: Duration::from_millis(w.shutdown_grace_ms),
            poll: Duration::from_millis(w.poll_ms),
        }
    }
}

/// A unique node id: `<hostname>-<pid>-<random>`.
pub fn new_node_id() -> String {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "node".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// A job running on this node.
struct Running {
    /// The attempt this entry is for: a job re-claimed by this same node after its lease
    /// lapsed must not be confused with the stale attempt still winding down.
    attempt: u32,
    cancel: CancellationToken,
    /// Set when the node itself stops the job (shutdown): re-queue instead of CANCELLED.
    interrupted: Arc<std::sync::atomic::AtomicBool>,
}

/// Forgets its job's attempt when dropped (see [`Worker::forget`]).
struct Forget<'a>(&'a Worker, &'a ClaimedJob);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.forget(self.1);
    }
}

/// Shared state of one node's loops.
struct Worker {
    store: Store,
    runtime: Runtime,
    settings: WorkerSettings,
    running: Mutex<HashMap<String, Running>>,
    wake: Notify,
    stopping: CancellationToken,
    outcomes: outcomes::Recorder,
}

mod outcomes;

/// Runs a node until `shutdown` fires, then drains: stops claiming, gives running jobs
/// `shutdown_grace` to finish, interrupts and re-queues the rest, deregisters.
pub async fn run(
    store: Store,
    runtime: Runtime,
    settings: WorkerSettings,
    shutdown: CancellationToken,
) {
    let recorder_stop = CancellationToken::new();
    let (outcomes, recorder) = outcomes::Recorder::start(
        store.clone(),
        settings.node_id.clone(),
        settings.lease,
        settings.concurrency,
        recorder_stop.clone(),
    );
    let node = Arc::new(Worker {
        store,
        runtime,
        settings,
        running: Mutex::new(HashMap::new()),
        wake: Notify::new(),
        stopping: shutdown.clone(),
        outcomes,
    });
    tracing::info!(
        node = %node.settings.node_id,
        concurrency = node.settings.concurrency,
        "node started"
    );
    crate::metrics::global().worker_slots(0, node.settings.concurrency);
    let background = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(node.clone().heartbeat_loop(background.clone()));
    tasks.spawn(node.clone().event_loop(background.clone()));
    tasks.spawn(node.clone().renew_loop(background.clone()));
    tasks.spawn(node.clone().maintenance_loop(background.clone()));

    let mut jobs = JoinSet::new();
    node.clone().claim_loop(&mut jobs).await;

    drain(&node, &mut jobs).await;
    // Every job task has handed over its outcome: record the last ones before leaving.
    recorder_stop.cancel();
    recorder.await.ok();
    background.cancel();
    while tasks.join_next().await.is_some() {}
    if let Err(e) = node.store.deregister(&node.settings.node_id).await {
        tracing::warn!("could not deregister node: {e}");
    }
    tracing::info!(node = %node.settings.node_id, "node stopped");
}

async fn drain(node: &Arc<Worker>, jobs: &mut JoinSet<()>) {
    if jobs.is_empty() {
        return;
    }
    tracing::info!(
        running = jobs.len(),
        grace = ?node.settings.shutdown_grace,
        "waiting for running jobs"
    );
    let waited = tokio::time::timeout(node.settings.shutdown_grace, async {
        while jobs.join_next().await.is_some() {}
    })
    .await;
    if waited.is_err() {
        let running = node.running.lock().unwrap_or_else(|p| p.into_inner());
        tracing::warn!(
            jobs = running.len(),
            "grace period over: stopping and re-queueing running jobs"
        );
        for job in running.values() {
            job.interrupted
                .store(true, std::sync::atomic::Ordering::Relaxed);
            job.cancel.cancel();
        }
    }
    while jobs.join_next().await.is_some() {}
}

/// Logs a failed store call: at warn, unless Redis is away, which the store logs once for
/// all its callers (one line when it goes, one when it is back).
fn log_store_error(what: &str, e: &StoreError) {
    if e.is_unavailable() {
        tracing::debug!("{what}: {e}");
    } else {
        tracing::warn!("{what}: {e}");
    }
}

/// Retries `op` while Redis is unreachable, with capped exponential backoff; gives up when
/// `until` fires. Other errors are returned at once.
async fn with_backoff<T, F, Fut>(what: &str, until: &CancellationToken, op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    retry_until(what, until.cancelled(), op).await
}

/// [`with_backoff`] until `stop` completes (a deadline, say). `stop` is owned by the call,
/// so nothing of it outlives the call: no task, no timer.
async fn retry_until<T, F, Fut>(what: &str, stop: impl Future<Output = ()>, mut op: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut stop = std::pin::pin!(stop);
    let mut delay = Duration::from_millis(100);
    let mut warned = false;
    loop {
        match op().await {
            Ok(value) => {
                if warned {
                    tracing::debug!("{what} resumed");
                }
                return Some(value);
            }
            Err(e) if e.is_unavailable() => {
                // The store logs the outage itself, once for all its callers.
                if !warned {
                    tracing::debug!("redis unreachable while trying to {what}: {e}; retrying");
                    warned = true;
                }
            }
            Err(e) => {
                tracing::error!("cannot {what}: {e}");
                return None;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut stop => return None,
        }
        // At most half a second between tries, so work resumes within about a second of
        // Redis answering again; a try while Redis is away costs a refused connection.
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

impl Worker {
    fn id(&self) -> &str {
        &self.settings.node_id
    }

    fn running_ids(&self) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.keys().cloned().collect()
    }

    /// Drops `job`'s attempt from the running set (if it is still this attempt's entry), so
    /// lease renewal stops covering it.
    fn forget(&self, job: &ClaimedJob) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running
            .get(&job.id)
            .is_some_and(|r| r.attempt == job.attempt)
        {
            running.remove(&job.id);
        }
        crate::metrics::global().worker_slots(running.len(), self.settings.concurrency);
    }

    fn cancel_local(&self, id: &str) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = running.get(id) {
            tracing::info!(job = id, "cancelling running job");
            job.cancel.cancel();
        }
    }

    fn info(&self) -> NodeInfo {
        let job_types = self.runtime.job_types();
        NodeInfo {
            id: self.id().to_owned(),
            hostname: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            job_types,
            capacity: self.settings.concurrency as u32,
            started_ms: 0,
            running: 0,
            heartbeat_ms: 0,
        }
    }

    /// Claims work while there are free slots; sleeps until notified (or the poll interval)
    /// when there is none. Returns when the node is stopping, with every job it claimed
    /// started.
    ///
    /// Up to [`CLAIMS_IN_FLIGHT`] claims are out at once: while one is on its way, slots
    /// that free up are asked for by the next, so the node runs jobs while Redis claims
    /// more and Redis claims while the node runs (one claim at a time, measured, kept each
    /// side idle about a third of the time, the other waiting for it). The second claim
    /// waits for a quarter of the slots, so that claims stay batches.
    async fn claim_loop(self: Arc<Self>, jobs: &mut JoinSet<()>) {
        let mut claims = futures::stream::FuturesUnordered::new();
        // Slots asked for by the claims in flight.
        let mut asked = 0;
        // The last claim found less than it asked for: wait for news before asking again.
        let mut idle = false;
        let batch = (self.settings.concurrency / 4).max(1);
        while !self.stopping.is_cancelled() {
            while jobs.try_join_next().is_some() {}
            let free = self.settings.concurrency.saturating_sub(jobs.len() + asked);
            let least = if claims.is_empty() { 1 } else { batch };
            if !idle && free >= least && claims.len() < CLAIMS_IN_FLIGHT {
                let types = self.claim_order();
                if !types.is_empty() {
                    asked += free;
                    claims.push(self.claim(types, free));
                }
            }
            tokio::select! {
                Some((asked_for, claimed)) = claims.next() => {
                    asked -= asked_for;
                    idle = claimed.len() < asked_for;
                    for job in claimed {
                        self.start(job, jobs);
                    }
                }
                () = self.wake.notified() => idle = false,
                Some(_) = jobs.join_next(), if !jobs.is_empty() => idle = false,
                () = tokio::time::sleep(self.settings.poll) => idle = false,
                () = self.stopping.cancelled() => {}
            }
        }
        // What claims in flight bring is this node's in Redis: run it (the drain gives it
        // the grace period, then re-queues what is left).
        while let Some((_, claimed)) = claims.next().await {
            for job in claimed {
                self.start(job, jobs);
            }
        }
    }

    /// The job types to claim, rotated so that no type starves another (queues are
    /// drained in the order given).
    fn claim_order(&self) -> Vec<String> {
        let mut types = self.runtime.job_types();
        if !types.is_empty() {
            let shift = rand::random::<u32>() as usize % types.len();
            types.rotate_left(shift);
        }
        types
    }

    /// Claims up to `free` jobs of `types`; answers how many it asked for, and what it got.
    async fn claim(&self, types: Vec<String>, free: usize) -> (usize, Vec<ClaimedJob>) {
        let (store, id, lease) = (&self.store, self.id(), self.settings.lease);
        let claimed = with_backoff("claim jobs", &self.stopping, || {
            store.claim(id, &types, free, lease)
        })
        .await
        .unwrap_or_default();
        (free, claimed)
    }

    fn start(self: &Arc<Self>, job: ClaimedJob, jobs: &mut JoinSet<()>) {
        let cancel = CancellationToken::new();
        if job.cancel_requested {
            cancel.cancel();
        }
        let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let entry = Running {
            attempt: job.attempt,
            cancel: cancel.clone(),
            interrupted: interrupted.clone(),
        };
        let stale = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.id.clone(), entry);
        crate::metrics::global().worker_slots(
            self.running.lock().unwrap_or_else(|p| p.into_inner()).len(),
            self.settings.concurrency,
        );
        if let Some(stale) = stale {
            // Our earlier attempt lost its lease; its result would be discarded anyway.
            tracing::warn!(job = %job.id, attempt = stale.attempt, "stopping a superseded attempt");
            stale.cancel.cancel();
        }
        let node = self.clone();
        // The span is at debug: off (and its fields not even built) at the default level.
        let span = if tracing::enabled!(tracing::Level::DEBUG) {
            let version = self
                .runtime
                .plugin_for(&job.job_type)
                .map(|p| p.info.version.clone())
                .unwrap_or_default();
            tracing::debug_span!(
                "job",
                id = %job.id,
                r#type = %job.job_type,
                plugin_version = %version,
                node = %self.settings.node_id,
                attempt = job.attempt,
            )
        } else {
            tracing::Span::none()
        };
        jobs.spawn(
            async move {
                // Forgotten even if the task panics: then renewals stop naming it, and
                // Redis ends it as lost a lease later instead of holding it for ever.
                let _forget = Forget(&node, &job);
                node.execute(&job, cancel, &interrupted).await;
            }
            .instrument(span),
        );
    }

    async fn execute(
        &self,
        job: &ClaimedJob,
        cancel: CancellationToken,
        interrupted: &std::sync::atomic::AtomicBool,
    ) {
        let log = Arc::new(JobLog::new(self.store.clone(), job));
        let input = JobInput {
            id: job.id.clone(),
            job_type: job.job_type.clone(),
            spec: job.spec.clone(),
            attempt: job.attempt,
            labels: job.labels.clone(),
        };
        let options = RunOptions {
            timeout: job.timeout_ms.map(Duration::from_millis),
            cancel,
            events: log.clone(),
        };
        let started = std::time::Instant::now();
        let result = self.runtime.run(&input, options).await;
        let took = started.elapsed();
        // The plugin is done: renewals name it as being recorded, no longer as running (a
        // renewal racing the record would otherwise report the finished job as lost), and
        // before it stops counting as running (or Redis would take it for forgotten).
        self.outcomes.hold(&job.id);
        self.forget(job);
        // Logs first, so a reader that sees the job finished has its whole log.
        log.close().await;
        let finish = to_finish(
            job,
            result,
            interrupted.load(std::sync::atomic::Ordering::Relaxed),
        );
        crate::metrics::global().attempt_finished(&job.job_type, finish.label(), took);
        let job = job.clone();
        let logged = log.logged();
        self.outcomes
            .record(outcomes::Outcome {
                job,
                finish,
                logged,
            })
            .await;
    }

    async fn heartbeat_loop(self: Arc<Self>, stop: CancellationToken) {
        let ttl = self.settings.heartbeat * 3;
        let mut info = self.info();
        info.started_ms = jobhost_store::now_ms();
        loop {
            let running = self.running.lock().unwrap_or_else(|p| p.into_inner()).len();
            let current = NodeInfo {
                job_types: self.info().job_types,
                running: u32::try_from(running).unwrap_or(u32::MAX),
                heartbeat_ms: jobhost_store::now_ms(),
                ..info.clone()
            };
            if let Err(e) = self.store.heartbeat(&current, ttl).await {
                log_store_error("heartbeat failed", &e);
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.heartbeat) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    async fn event_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            match self.store.events().await {
                Ok(events) => {
                    let mut events = std::pin::pin!(events);
                    loop {
                        tokio::select! {
                            event = events.next() => match event {
                                Some(Event::Ready(_)) => self.wake.notify_one(),
                                Some(Event::Cancel(id)) => self.cancel_local(&id),
                                // The Job Distributor's channel listens for its own.
                                Some(Event::JdOutbox(_)) => {}
                                None => break,
                            },
                            () = stop.cancelled() => return,
                        }
                    }
                    tracing::warn!("event subscription dropped; resubscribing");
                }
                Err(e) => log_store_error("cannot subscribe to events", &e),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Renews the leases of running jobs on a fixed beat (a slow call does not push the
    /// next one back), each call bounded well under the lease. If no renewal has succeeded
    /// for most of a lease, the node fences itself: other nodes are about to re-queue these
    /// jobs, so the local attempts stop rather than run twice.
    async fn renew_loop(self: Arc<Self>, stop: CancellationToken) {
        let lease = self.settings.lease;
        let mut beat = tokio::time::interval(lease / 6);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = beat.tick() => {}
                () = stop.cancelled() => return,
            }
            let ids = self.running_ids();
            let recording = self.outcomes.pending();
            if ids.is_empty() && recording.is_empty() {
                last_ok = tokio::time::Instant::now();
                continue;
            }
            let renewal = self.store.renew(self.id(), &ids, &recording, lease);
            match tokio::time::timeout(lease / 6, renewal).await {
                Ok(Ok((cancelled, lost))) => {
                    last_ok = tokio::time::Instant::now();
                    for id in cancelled {
                        self.cancel_local(&id);
                    }
                    for id in lost {
                        // A job that finished while this renewal was in flight is no longer
                        // running here: only a still-running attempt has really lost its lease.
                        if self.running_ids().contains(&id) {
                            tracing::warn!(job = %id, "lease lost; stopping the local attempt");
                            self.cancel_local(&id);
                        }
                    }
                }
                Ok(Err(e)) => log_store_error("lease renewal failed", &e),
                Err(_) => tracing::warn!("lease renewal timed out"),
            }
            if last_ok.elapsed() > lease * 5 / 6 {
                tracing::error!(
                    jobs = ids.len(),
                    "leases not renewed for {:?}: stopping local attempts before other nodes re-run them",
                    last_ok.elapsed()
                );
                for id in &ids {
                    self.cancel_local(id);
                }
            }
        }
    }

    /// Work any node may do (idempotent scripts), and cron firing for the leader.
    async fn maintenance_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut tick: u64 = 0;
        let mut leader_token;
        loop {
            tick += 1;
            let store = &self.store;
            if let Err(e) = store.promote_due(1000).await {
                tracing::debug!("promote failed: {e}");
            }
            match store.reap_expired(1000).await {
                Ok(n) if n > 0 => tracing::info!(jobs = n, "re-queued jobs of a lost node"),
                Ok(_) => {}
                Err(e) => tracing::debug!("reap failed: {e}"),
            }
            if tick.is_multiple_of(150)
                && let Err(e) = store.sweep(1000).await
            {
                tracing::debug!("sweep failed: {e}");
            }
            leader_token = store
                .lead(self.id(), Duration::from_secs(5))
                .await
                .unwrap_or_default();
            if let Some(token) = leader_token {
                fire_crons(store, self.id(), token).await;
            }
            tokio::select! {
                () = tokio::time::sleep(MAINTENANCE_TICK) => {}
                () = stop.cancelled() => break,
            }
        }
        if let Some(token) = leader_token {
            let _ = self.store.resign(self.id(), token).await;
        }
    }
}

/// How often a node promotes due delayed jobs, re-queues lost ones and checks leadership:
/// the granularity of delayed jobs and timers.
const MAINTENANCE_TICK: Duration = Duration::from_millis(100);

/// Claims a node keeps in flight at once (see `claim_loop`).
const CLAIMS_IN_FLIGHT: usize = 2;

/// Fires every due cron schedule once: enqueue (idempotent per fire time), then advance
/// (fenced by the leader token), so neither a crash nor a lost leadership double-fires. A
/// fire refused by its job type's queue limit is skipped, not retried.
async fn fire_crons(store: &Store, node: &str, token: u64) {
    let now = jobhost_store::now_ms();
    let due = match store.due_crons(now).await {
        Ok(due) => due,
        Err(e) => return tracing::debug!("cron read failed: {e}"),
    };
    for (cron, due_ms) in due {
        let mut job = cron.template.clone();
        job.idempotency_key = Some(format!("cron:{}:{due_ms}", cron.name));
        if job.name.is_empty() {
            job.name = cron.name.clone();
        }
        match store.enqueue(&job).await {
            Ok(_) => {}
            // A full queue drops this fire (the schedule moves on to its next one) rather
            // than retrying it every tick until there is room.
            Err(e @ StoreError::QueueFull { .. }) => {
                crate::metrics::global().job_refused(&job.job_type, "queue_full");
                tracing::warn!(cron = %cron.name, "cron fire skipped: {e}");
            }
            Err(e) => {
                log_store_error(&format!("cron {} fire failed", cron.name), &e);
                continue;
            }
        }
        let next = crate::cron::next_fire(&cron.schedule, now).unwrap_or(u64::MAX);
        match store
            .advance_cron(node, token, &cron.name, due_ms, next)
            .await
        {
            Ok(true) => tracing::debug!(cron = %cron.name, "cron fired"),
            Ok(false) => {}
            Err(e) => tracing::warn!(cron = %cron.name, "cron advance failed: {e}"),
        }
    }
}

fn to_finish(
    job: &ClaimedJob,
    result: Result<jobhost_runtime::RunReport, RunError>,
    interrupted: bool,
) -> Finish {
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            return Finish::Interrupted {
                reason: format!("{e} on this node"),
            };
        }
    };
    match report.outcome {
        RunOutcome::Completed { output } => Finish::Succeeded { output },
        RunOutcome::Failed { reason } => Finish::Failed { reason },
        // A delay of zero leaves it to the job's backoff policy.
        RunOutcome::Retry { after, reason } if after.is_zero() => Finish::Retry {
            after: job.retry.backoff(job.attempt, rand::random::<f64>()),
            reason,
            outcome: "retry",
        },
        RunOutcome::Retry { after, reason } => Finish::Retry {
            after,
            reason,
            outcome: "retry",
        },
        RunOutcome::Crashed { reason, .. } => Finish::Retry {
            after: job.retry.backoff(job.attempt, rand::random::<f64>()),
            reason,
            outcome: "crashed",
        },
        RunOutcome::Cancelled if interrupted => Finish::Interrupted {
            reason: "node shutting down".into(),
        },
        RunOutcome::Cancelled => Finish::Cancelled {
            reason: "cancelled on request".into(),
        },
    }
}

/// Streams a job's log lines to Redis without ever blocking the plugin: lines go through a
/// bounded channel to a writer task that appends them in batches. The task starts with the
/// first line, so a job that logs nothing costs no task. Each `host.log` line within the
/// job's log budget also goes to the node's own log under target `plugin`, with the job's
/// id, type and attempt (filter with e.g. `JOBHOST_LOG=info,plugin=warn`); the plugin's
/// stdout and stderr and the host's notes stay in the job's log only.
struct JobLog {
    store: Store,
    job: String,
    job_type: String,
    attempt: u32,
    writer: Mutex<Option<LogWriter>>,
    /// Whether a line was sent (a writer started): the job may have a log.
    wrote: std::sync::atomic::AtomicBool,
    /// Lines dropped because the writer fell behind.
    dropped: std::sync::atomic::AtomicU64,
}

/// The running writer of one job's log: its channel and its task.
struct LogWriter {
    tx: mpsc::Sender<(LogLevel, String)>,
    task: tokio::task::JoinHandle<()>,
}

const LOG_CHANNEL: usize = 4096;
const LOG_BATCH: usize = 256;

impl JobLog {
    fn new(store: Store, job: &ClaimedJob) -> JobLog {
        JobLog {
            store,
            job: job.id.clone(),
            job_type: job.job_type.clone(),
            attempt: job.attempt,
            writer: Mutex::new(None),
            wrote: Default::default(),
            dropped: Default::default(),
        }
    }

    fn spawn_writer(&self) -> LogWriter {
        let (tx, mut rx) = mpsc::channel::<(LogLevel, String)>(LOG_CHANNEL);
        let (store, id, attempt) = (self.store.clone(), self.job.clone(), self.attempt);
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(LOG_BATCH);
            while rx.recv_many(&mut batch, LOG_BATCH).await > 0 {
                let refs: Vec<(&str, &str)> = batch
                    .iter()
                    .map(|(level, line)| (level.as_str(), line.as_str()))
                    .collect();
                if let Err(e) = store.append_log(&id, attempt, &refs).await {
                    log_store_error(&format!("job {id}: cannot store log lines"), &e);
                }
                batch.clear();
            }
        });
        LogWriter { tx, task }
    }

    fn send(&self, level: LogLevel, line: String) {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let writer = writer.get_or_insert_with(|| {
            self.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
            self.spawn_writer()
        });
        if writer.tx.try_send((level, line)).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether this attempt stored (or tried to store) log lines.
    fn logged(&self) -> bool {
        self.wrote.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until every line sent is stored; then records how many were dropped, if any.
    async fn close(&self) {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(LogWriter { tx, task }) = writer {
            drop(tx);
            task.await.ok();
        }
        let dropped = self.dropped.load(std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            let line = format!("{dropped} log lines dropped: Redis could not keep up");
            let _ = self
                .store
                .append_log(&self.job, self.attempt, &[("WARN", &line)])
                .await;
        }
    }
}

impl JobEvents for JobLog {
    fn backlog(&self) -> usize {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer
            .as_ref()
            .map_or(0, |w| w.tx.max_capacity() - w.tx.capacity())
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.send(level, message.to_owned());
    }

    fn plugin_log(&self, level: LogLevel, message: &str) {
        let (job, job_type, attempt) = (&self.job, &self.job_type, self.attempt);
        macro_rules! node_log {
            ($level:expr) => {
                tracing::event!(target: "plugin", $level, job = %job, job_type = %job_type, attempt, "{}", crate::text::printable(message))
            };
        }
        match level {
            LogLevel::Trace => node_log!(tracing::Level::TRACE),
            LogLevel::Debug => node_log!(tracing::Level::DEBUG),
            LogLevel::Info => node_log!(tracing::Level::INFO),
            LogLevel::Warn => node_log!(tracing::Level::WARN),
            LogLevel::Error => node_log!(tracing::Level::ERROR),
        }
        self.send(level, message.to_owned());
    }
    fn progress(&self, percent: u8, message: &str) {
        self.send(LogLevel::Info, format!("progress {percent}%: {message}"));
    }
}
