//! The snapshots of `GET /v1/stream`, made once a second by one producer per node and
//! shared by every open stream, so a hundred open dashboards cost Redis what one does. The
//! producer runs only while some stream is open, and starts again with the next one. What
//! a snapshot holds is the producer function's business ([`Snapshotter`]), not the feed's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::api::Services;

/// Makes one snapshot of the cluster.
pub type Snapshotter = fn(Services) -> BoxFuture<'static, Tick>;

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

/// The latest snapshot, for every open stream. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SnapshotFeed {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    make: Snapshotter,
    latest: watch::Sender<Option<Arc<Tick>>>,
    /// Whether the producer runs; changed only under this lock, with the receiver count
    /// checked under it too, so a stream opening as the producer stops is never left
    /// without one.
    running: Mutex<bool>,
}

impl SnapshotFeed {
    /// A feed whose producer makes each snapshot with `make`.
    pub fn new(make: Snapshotter) -> Self {
        SnapshotFeed {
            shared: Arc::new(Shared {
                make,
                latest: watch::channel(None).0,
                running: Mutex::new(false),
            }),
        }
    }

    /// Follows the snapshots of `services`, starting the producer if none runs.
    pub fn subscribe(&self, services: &Services) -> watch::Receiver<Option<Arc<Tick>>> {
        let mut running = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let receiver = self.shared.latest.subscribe();
        if !*running {
            *running = true;
            tokio::spawn(produce(self.clone(), services.clone()));
        }
        receiver
    }
}

async fn produce(feed: SnapshotFeed, services: Services) {
    let mut guard = Producing {
        feed: feed.clone(),
        services: services.clone(),
        done: false,
    };
    let shared = &feed.shared;
    loop {
        let tick = (shared.make)(services.clone()).await;
        crate::metrics::global().stream_snapshot();
        shared.latest.send_replace(Some(Arc::new(tick)));
        tokio::time::sleep(SNAPSHOT_EVERY).await;
        let mut running = shared.running.lock().unwrap_or_else(|e| e.into_inner());
        if shared.latest.receiver_count() == 0 {
            // Nobody watches: stop, and let the next stream start from a fresh snapshot.
            shared.latest.send_replace(None);
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
    feed: SnapshotFeed,
    services: Services,
    done: bool,
}

impl Drop for Producing {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let shared = &self.feed.shared;
        let mut running = shared.running.lock().unwrap_or_else(|e| e.into_inner());
        shared.latest.send_replace(None);
        *running = false;
        if shared.latest.receiver_count() == 0 {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        *running = true;
        let (feed, services) = (self.feed.clone(), self.services.clone());
        runtime.spawn(async move {
            tokio::time::sleep(SNAPSHOT_EVERY).await;
            produce(feed, services).await;
        });
    }
}
