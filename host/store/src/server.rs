//! A local `redis-server` child for development (`jobhost serve --dev`) and tests: its own
//! state folder, AOF on, stopped with the parent.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a local Redis could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DevRedisError {
    /// `redis-server` is not installed.
    #[error(
        "redis-server is not installed: install it (e.g. `apt-get install redis-server`) \
         or point jobhost at a Redis with JOBHOST_REDIS_URL"
    )]
    NotInstalled,
    /// The state folder could not be created.
    #[error("cannot create Redis state folder {0}: {1}")]
    StateDir(PathBuf, std::io::Error),
    /// The process could not be started.
    #[error("cannot start redis-server: {0}")]
    Spawn(std::io::Error),
    /// It started but did not answer.
    #[error("redis-server on port {port} did not become ready: {reason} (log: {log})")]
    NotReady {
        /// Its port.
        port: u16,
        /// What failed.
        reason: String,
        /// Its log file.
        log: PathBuf,
    },
}

/// A `redis-server` child process.
pub struct DevRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

/// The port `serve --dev` prefers for its Redis.
pub const DEV_PORT: u16 = 6390;

impl DevRedis {
    /// Starts `redis-server` with its data in `dir` (AOF on) on `port`, or on
    /// [`DEV_PORT`] if free, else on any free port. Waits until it answers.
    pub async fn start(dir: &Path, port: Option<u16>) -> Result<DevRedis, DevRedisError> {
        std::fs::create_dir_all(dir).map_err(|e| DevRedisError::StateDir(dir.to_owned(), e))?;
        let dir =
            std::fs::canonicalize(dir).map_err(|e| DevRedisError::StateDir(dir.to_owned(), e))?;
        let port = port.unwrap_or_else(|| {
            if TcpListener::bind(("127.0.0.1", DEV_PORT)).is_ok() {
                DEV_PORT
            } else {
                free_port()
            }
        });
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => DevRedisError::NotInstalled,
                _ => DevRedisError::Spawn(e),
            })?;
        let mut redis = DevRedis {
            child: Some(child),
            port,
            dir,
        };
        redis.wait_ready(Duration::from_secs(10)).await?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its state folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), DevRedisError> {
        let start = Instant::now();
        let mut last = String::from("no answer");
        while start.elapsed() < limit {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                last = format!("exited with {status}");
                break;
            }
            match self.ping().await {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(DevRedisError::NotReady {
            port: self.port,
            reason: last,
            log: self.dir.join("redis.log"),
        })
    }

    async fn ping(&self) -> redis::RedisResult<()> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Stops the server cleanly (`SHUTDOWN`, which fsyncs the AOF) and waits for it.
    pub async fn stop(&mut self) {
        if let Ok(client) = redis::Client::open(self.url())
            && let Ok(mut conn) = client.get_multiplexed_async_connection().await
        {
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query_async(&mut conn).await;
        }
        if let Some(mut child) = self.child.take() {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for DevRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The ports [`free_port`] hands out: a band outside the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`, 32768-60999 by default), so the kernel never gives one
/// of them to an outgoing connection between the moment a port is chosen and the moment its
/// server binds it. `None` when the ephemeral range leaves no room for a band.
fn chosen_ports() -> Option<std::ops::Range<u16>> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|_| "32768 60999".into());
    let mut bounds = range.split_whitespace().map(|n| n.parse::<u16>().ok());
    let (Some(Some(low)), Some(Some(high))) = (bounds.next(), bounds.next()) else {
        return None;
    };
    const BAND: u16 = 4000;
    if low >= 10_000 + BAND {
        Some(10_000..low.min(32_000))
    } else if high <= u16::MAX - BAND {
        Some(high + 1..u16::MAX)
    } else {
        None
    }
}

/// A TCP port free on 127.0.0.1 right now, for a server about to be started (a test's Redis,
/// a test node). A process never gets the same port twice, and each process starts at a
/// random place in the band, so parallel tests and concurrent test runs do not pick the
/// same port before either has bound it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static BAND: std::sync::OnceLock<Option<std::ops::Range<u16>>> = std::sync::OnceLock::new();
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    if let Some(band) = BAND.get_or_init(chosen_ports) {
        let span = u32::from(band.end - band.start);
        let next = NEXT.get_or_init(|| AtomicU32::new(rand::random_range(0..span)));
        for _ in 0..span {
            let offset = next.fetch_add(1, Ordering::Relaxed) % span;
            let port = band.start + offset as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    // No band, or every port in it busy: let the kernel pick one.
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(DEV_PORT)
}
