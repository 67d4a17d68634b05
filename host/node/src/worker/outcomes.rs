//! The outcome recorder: one loop per node that records finished attempts in batches.
//!
//! Self-clocking: the first outcome goes to Redis at once; what piles up while that call is
//! in flight forms the next batch (up to [`FINISH_BATCH_MAX`]). A lone job is recorded in
//! one round trip, a burst in a few hundred per script call. A job's slot frees when its
//! plugin returns and its outcome is queued here, not when Redis answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use jobhost_store::{AttemptEnd, ClaimedJob, FINISH_BATCH_MAX, Finish, Store};

use super::retry_until;

/// A finished attempt waiting to be recorded.
pub(super) struct Outcome {
    pub job: ClaimedJob,
    pub finish: Finish,
    /// Whether the attempt stored log lines (see [`AttemptEnd::logged`]).
    pub logged: bool,
}

impl Outcome {
    fn end(&self) -> AttemptEnd<'_> {
        AttemptEnd {
            job: &self.job,
            finish: &self.finish,
            logged: self.logged,
        }
    }
}

/// The sending side: where a job task leaves its outcome.
pub(super) struct Recorder {
    tx: mpsc::Sender<Outcome>,
    /// Jobs whose outcome is on its way to Redis (from [`Recorder::hold`] until recorded or
    /// given up), with how many of their attempts are (a superseded attempt and the new one
    /// may both be): lease renewal names them, so Redis does not take them for forgotten.
    pending: Arc<Mutex<Pending>>,
}

impl Recorder {
    /// Starts the loop recording for `node`; it ends once `stop` fires and every outcome
    /// queued before is recorded (or given up on). `capacity` bounds the queue: a job task
    /// waits for room, so a slow Redis slows claiming instead of growing memory.
    pub fn start(
        store: Store,
        node: String,
        lease: Duration,
        capacity: usize,
        stop: CancellationToken,
    ) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let pending = Arc::new(Mutex::new(Pending::new()));
        let task = tokio::spawn(record_loop(store, node, lease, rx, stop, pending.clone()));
        (Recorder { tx, pending }, task)
    }

    /// Marks `job`'s outcome as on its way: call before the job stops counting as running.
    pub fn hold(&self, job: &str) {
        *lock(&self.pending).entry(job.to_owned()).or_default() += 1;
    }

    /// The jobs whose outcome is on its way.
    pub fn pending(&self) -> Vec<String> {
        lock(&self.pending).keys().cloned().collect()
    }

    /// Queues `outcome` for recording (its job [`Recorder::hold`] first).
    pub async fn record(&self, outcome: Outcome) {
        if let Err(lost) = self.tx.send(outcome).await {
            // Only after the loop ended (the node is stopping): the job is re-queued once
            // its node's lease lapses.
            release(&mut lock(&self.pending), &lost.0.job.id);
            tracing::error!(job = %lost.0.job.id, "outcome not recorded: the recorder stopped");
        }
    }
}

/// Job id → attempts of it whose outcome is on its way.
type Pending = HashMap<String, usize>;

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(|p| p.into_inner())
}

/// One attempt of `job` is recorded (or given up on).
fn release(pending: &mut Pending, job: &str) {
    if let Some(count) = pending.get_mut(job) {
        *count -= 1;
        if *count == 0 {
            pending.remove(job);
        }
    }
}

async fn record_loop(
    store: Store,
    node: String,
    lease: Duration,
    mut rx: mpsc::Receiver<Outcome>,
    stop: CancellationToken,
    pending: Arc<Mutex<Pending>>,
) {
    let mut batch = Vec::with_capacity(FINISH_BATCH_MAX);
    loop {
        let got = tokio::select! {
            got = rx.recv_many(&mut batch, FINISH_BATCH_MAX) => got,
            // Every job task has ended by now (the worker drained them): take what is left.
            () = stop.cancelled() => {
                while batch.len() < FINISH_BATCH_MAX {
                    match rx.try_recv() {
                        Ok(outcome) => batch.push(outcome),
                        Err(_) => break,
                    }
                }
                batch.len()
            }
        };
        if got == 0 {
            return;
        }
        record(&store, &node, lease, &batch).await;
        let mut pending = lock(&pending);
        for outcome in batch.drain(..) {
            release(&mut pending, &outcome.job.id);
        }
    }
}

/// Records `batch`, retrying while Redis is away for at most a lease (after that the jobs'
/// leases lapse and other nodes re-queue them, so recording would be refused anyway).
async fn record(store: &Store, node: &str, lease: Duration, batch: &[Outcome]) {
    let ends: Vec<AttemptEnd<'_>> = batch.iter().map(Outcome::end).collect();
    let give_up = tokio::time::sleep(lease);
    let mut give_up = std::pin::pin!(give_up);
    let states = match retry_until("record job outcomes", give_up.as_mut(), || {
        store.finish_batch(node, &ends)
    })
    .await
    {
        Some(states) => Some(states),
        // Refused for another reason than Redis being away (retry_until logged it): one
        // at a time, so a bad outcome loses only itself.
        None if batch.len() > 1 && !give_up.is_elapsed() => {
            let mut states = Vec::with_capacity(batch.len());
            for end in &ends {
                let job = end.job;
                match store.finish_batch(node, std::slice::from_ref(end)).await {
                    Ok(mut state) => states.push(state.pop().flatten()),
                    Err(e) => {
                        tracing::error!(job = %job.id, "cannot record the outcome: {e}");
                        states.push(None);
                    }
                }
            }
            Some(states)
        }
        None => None,
    };
    let Some(states) = states else {
        for outcome in batch {
            tracing::error!(
                job = %outcome.job.id,
                "outcome not recorded; the job will be re-queued as lost (by this node's next \
                 lease renewal, or by another node when this node's lease lapses)"
            );
        }
        return;
    };
    for (outcome, state) in batch.iter().zip(states) {
        let job = &outcome.job;
        match state {
            Some(state) => {
                tracing::debug!(job = %job.id, attempt = job.attempt, %state, "job attempt recorded")
            }
            None => tracing::warn!(
                job = %job.id,
                attempt = job.attempt,
                "result discarded: the lease was lost and the job re-queued"
            ),
        }
    }
}
