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
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_with_config(client, config).await?;
        Ok(Conn::new(Link::Single(manager)))
    }

    /// Connects to the cluster that `seeds` (some of its nodes) belong to.
    pub async fn cluster(seeds: &[&str]) -> redis::RedisResult<Conn> {
        let client = ClusterClientBuilder::new(seeds.to_vec())
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
        }
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
        timed(call, self.observer.clone())
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
        timed(call, self.observer.clone())
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// `call`, its duration told to `observer` (if any).
fn timed<'a, T: Send + 'a>(
    call: RedisFuture<'a, T>,
    observer: Option<CallObserver>,
) -> RedisFuture<'a, T> {
    let Some(observer) = observer else {
        return call;
    };
    Box::pin(async move {
        let start = std::time::Instant::now();
        let result = call.await;
        observer(start.elapsed());
        result
    })
}
