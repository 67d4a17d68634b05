//! The snapshots of `GET /v1/stream`, made once a second by one producer per node and
//! shared by every open stream, so a hundred open dashboards cost Redis what one does. The
//! producer runs only while some stream is open, and starts again with the next one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::AppState;

/// How often a snapshot is made while a stream is open.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// One event of the stream: its name (`snapshot`, or `error` while Redis is unreachable)
/// and its JSON data.
#[derive(Debug)]
pub struct Tick {
    /// The SSE event name.
    pub name: &'static str,
    /// The event's data.
    pub json: String,
}

/// The latest snapshot, for every open stream.
#[derive(Debug)]
pub struct SnapshotFeed {
    latest: watch::Sender<Option<Arc<Tick>>>,
    /// Whether the producer runs; changed only under this lock, with the receiver count
    /// checked under it too, so a stream opening as the producer stops is never left
    /// without one.
    running: Mutex<bool>,
}

impl Default for SnapshotFeed {
    fn default() -> Self {
        SnapshotFeed {
            latest: watch::channel(None).0,
            running: Mutex::new(false),
        }
    }
}

impl SnapshotFeed {
    /// Follows the snapshots of `state`'s feed, starting its producer if none runs.
    pub fn subscribe(state: &Arc<AppState>) -> watch::Receiver<Option<Arc<Tick>>> {
        let feed = &state.feed;
        let mut running = feed.running.lock().unwrap_or_else(|e| e.into_inner());
        let receiver = feed.latest.subscribe();
        if !*running {
            *running = true;
            tokio::spawn(produce(state.clone()));
        }
        receiver
    }
}

async fn produce(state: Arc<AppState>) {
    let mut guard = Producing {
        state: state.clone(),
        done: false,
    };
    loop {
        let tick = super::rest::snapshot_tick(&state).await;
        crate::metrics::global().stream_snapshot();
        state.feed.latest.send_replace(Some(Arc::new(tick)));
        tokio::time::sleep(SNAPSHOT_EVERY).await;
        let mut running = state.feed.running.lock().unwrap_or_else(|e| e.into_inner());
        if state.feed.latest.receiver_count() == 0 {
            // Nobody watches: stop, and let the next stream start from a fresh snapshot.
            state.feed.latest.send_replace(None);
            *running = false;
            guard.done = true;
            return;
        }
    }
}

/// The running producer. Should it end any other way than by finding no stream open (a
/// panic), the streams still open get a new producer a moment later, so the feed never
/// stays marked running with nobody producing.
struct Producing {
    state: Arc<AppState>,
    done: bool,
}

impl Drop for Producing {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let feed = &self.state.feed;
        let mut running = feed.running.lock().unwrap_or_else(|e| e.into_inner());
        feed.latest.send_replace(None);
        *running = false;
        if feed.latest.receiver_count() == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        *running = true;
        let state = self.state.clone();
        runtime.spawn(async move {
            tokio::time::sleep(SNAPSHOT_EVERY).await;
            produce(state).await;
        });
    }
}
