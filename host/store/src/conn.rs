//! The connection to Redis: a single server (or Sentinel-managed primary behind one URL) or
//! a Redis Cluster. Both reconnect by themselves; both run the same commands and scripts,
//! because every key of a deployment lives in one hash slot.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::Arc;
use std::time::Duration;

/// Told the duration of every request (a command, script or pipeline), for a latency
/// metric the store itself does not keep.
pub type CallObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// A cheap-to-clone, self-reconnecting connection.
#[derive(Clone)]
pub(super) struct Conn {
    link: Link,
    observer: Option<CallObserver>,
    outage: Arc<Outage>,
}

/// Whether Redis is away, seen from every request of one store (and its clones): the node's
/// log gets one line when Redis goes away and one when it is back, whatever number of
/// requests and retrying loops failed in between.
#[derive(Default)]
struct Outage {
    /// Since when Redis has been away, and how many requests failed since.
    since: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
    /// A lock-free look for the common case: Redis is there.
    away: std::sync::atomic::AtomicBool,
}

impl Outage {
    fn failed(&self, error: &redis::RedisError) {
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        match since.as_mut() {
            Some((_, failed)) => *failed += 1,
            None => {
                tracing::error!(
                    "redis unreachable: {error}; API calls answer UNAVAILABLE and the node's \
                     work is retried until it is back"
                );
                *since = Some((std::time::Instant::now(), 1));
                self.away.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    fn answered(&self) {
        if !self.away.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((start, failed)) = since.take() {
            self.away.store(false, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                "redis reachable again after {:.1}s; {failed} requests failed meanwhile and \
                 were answered UNAVAILABLE or retried",
                start.elapsed().as_secs_f64()
            );
        }
    }

    fn record<T>(&self, result: &redis::RedisResult<T>) {
        match result {
            Ok(_) => self.answered(),
            Err(e) if crate::error::unavailable(e) => self.failed(e),
            // Redis answered, with an error of the request's own.
            Err(_) => self.answered(),
        }
    }
}

#[derive(Clone)]
enum Link {
    /// One Redis server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

impl Conn {
    /// Connects to one server through `client`.
    pub async fn single(client: redis::Client) -> redis::RedisResult<Conn> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            // Reconnect attempts at most half a second apart, so work resumes within about
            // a second of Redis answering again.
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_with_config(client, config).await?;
        Ok(Conn::new(Link::Single(manager)))
    }

    /// Connects to the cluster that `seeds` (some of its nodes) belong to.
    pub async fn cluster(seeds: &[&str]) -> redis::RedisResult<Conn> {
        let client = ClusterClientBuilder::new(seeds.to_vec())
            // (See `with_nodelay`: every node's connection carries requests in flight.)
            .tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true))
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .build()?;
        Ok(Conn::new(Link::Cluster(
            client.get_async_connection().await?,
        )))
    }

    fn new(link: Link) -> Conn {
        Conn {
            link,
            observer: None,
            outage: Arc::default(),
        }
    }

    /// True for a Redis Cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }

    /// Tells `observer` the duration of every request from now on.
    pub fn observe(&mut self, observer: CallObserver) {
        self.observer = Some(observer);
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let call = match &mut self.link {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        };
        timed(call, self.observer.clone(), self.outage.clone())
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let call = match &mut self.link {
            Link::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        };
        timed(call, self.observer.clone(), self.outage.clone())
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// `call`, its result told to `outage` and its duration to `observer` (if any).
fn timed<'a, T: Send + 'a>(
    call: RedisFuture<'a, T>,
    observer: Option<CallObserver>,
    outage: Arc<Outage>,
) -> RedisFuture<'a, T> {
    Box::pin(async move {
        let start = std::time::Instant::now();
        let result = call.await;
        if let Some(observer) = observer {
            observer(start.elapsed());
        }
        outage.record(&result);
        result
    })
}
