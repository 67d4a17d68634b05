//! Shared helpers for the end-to-end tests: where the workspace, the binaries and the built
//! plugins are, a runtime on a temporary folder, and an events sink that records what a job
//! logged.

pub mod browser;
pub mod chainlink;
pub mod feeds_node;
pub mod receiver;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobhost_config::Config;
use jobhost_runtime::{JobEvents, JobInput, LogLevel, RunOptions, Runtime};

/// The workspace's root folder.
pub fn workspace() -> PathBuf {
    // This test binary belongs to the node crate, in host/node.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `jobctl` binary, built by `cargo build --bins` (`just test` builds it first): it is
/// its own crate, so cargo does not hand its path to this package's tests.
pub fn jobctl_bin() -> PathBuf {
    // The test binary runs from <target>/<profile>/deps; binaries are one level up.
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("jobctl"))
        .expect("a target folder");
    assert!(
        bin.is_file(),
        "no jobctl binary at {}: run the tests with `just test` (it runs `cargo build --bins` first)",
        bin.display()
    );
    bin
}

/// The folder `just plugins` writes components to.
pub fn built_plugins() -> PathBuf {
    let dir = std::env::var_os("JOBHOST_TEST_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/plugins"));
    assert!(
        dir.join("testing/noop.wasm").is_file(),
        "no built plugins in {}: run the tests with `just test` (it builds them first)",
        dir.display()
    );
    dir
}

/// Path of a built plugin: `testing/NAME.wasm` for test plugins, else `NAME.wasm`.
pub fn plugin_file(name: &str) -> PathBuf {
    let dir = built_plugins();
    let testing = dir.join("testing").join(format!("{name}.wasm"));
    if testing.is_file() {
        testing
    } else {
        dir.join(format!("{name}.wasm"))
    }
}

/// Copies built plugins into `dir` (atomically, as an operator's deploy would).
pub fn install(dir: &Path, names: &[&str]) {
    for name in names {
        install_bytes(dir, name, &std::fs::read(plugin_file(name)).unwrap());
    }
}

/// Writes `bytes` as `dir/NAME.wasm` via a temporary file and a rename.
pub fn install_bytes(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).unwrap();
}

/// `bytes` with an extra custom section: the same plugin, a different build (digest).
pub fn rebuilt(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"jobhost-test-build";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push(u8::try_from(payload.len()).expect("short tag")); // LEB128, < 128
    out.extend_from_slice(&payload);
    out
}

/// A config for tests: plugins from `dir`, no disk cache, generous defaults.
pub fn config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.runtime.plugins_dir = dir.to_owned();
    config.runtime.cache = false;
    config.runtime.max_instances = 16;
    config.runtime.watch_debounce_ms = 100;
    config
}

/// A runtime over `dir` with every plugin in it loaded.
pub async fn runtime(config: Config) -> Runtime {
    let runtime = Runtime::new(config).expect("runtime starts");
    runtime.sync_dir().await.expect("plugins folder readable");
    runtime
}

/// Records every log line and progress report of a job.
#[derive(Default)]
pub struct Recorded {
    pub lines: Mutex<Vec<(LogLevel, String)>>,
    pub progress: Mutex<Vec<(u8, String)>>,
}

impl JobEvents for Recorded {
    fn log(&self, level: LogLevel, message: &str) {
        self.lines.lock().unwrap().push((level, message.to_owned()));
    }
    fn progress(&self, percent: u8, message: &str) {
        self.progress
            .lock()
            .unwrap()
            .push((percent, message.to_owned()));
    }
}

impl Recorded {
    /// Total bytes of logged text.
    pub fn bytes(&self) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.len())
            .sum()
    }
    /// True if some line contains `needle`.
    pub fn has(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|(_, l)| l.contains(needle))
    }
}

/// A first attempt of `job_type` with `spec`.
pub fn job(job_type: &str, spec: &str) -> JobInput {
    JobInput {
        id: format!("test-{job_type}"),
        job_type: job_type.to_owned(),
        spec: spec.to_owned(),
        attempt: 1,
        labels: Default::default(),
    }
}

/// Run options recording into a fresh sink, with an optional deadline.
pub fn options(timeout: Option<Duration>) -> (RunOptions, Arc<Recorded>) {
    let events = Arc::new(Recorded::default());
    let mut options = RunOptions::new(events.clone());
    options.timeout = timeout;
    (options, events)
}

/// Polls `check` every 20 ms until it holds or `limit` passes; returns the time it took.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check().then(|| start.elapsed())
}

/// A real `redis-server` of this test alone: own port, own state folder (AOF on).
pub struct TestRedis {
    pub server: jobhost_store::DevRedis,
    pub dir: tempfile::TempDir,
}

impl TestRedis {
    /// Starts a fresh server on a free port.
    pub async fn start() -> TestRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = jobhost_store::free_port();
        let server = jobhost_store::DevRedis::start(dir.path(), Some(port))
            .await
            .expect("redis-server starts (install it, or run the tests with `just test`)");
        TestRedis { server, dir }
    }

    /// Restarts it on the same port and data (AOF replayed).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// Shuts the server down (SHUTDOWN: the AOF is fsynced); [`TestRedis::start_again`]
    /// brings it back on the same port with the same data.
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }

    /// Starts the server stopped by [`TestRedis::stop`] again.
    pub async fn start_again(&mut self) {
        let port = self.server.port();
        self.server = jobhost_store::DevRedis::start(self.dir.path(), Some(port))
            .await
            .expect("redis-server restarts");
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A store on this server with default options.
    pub async fn store(&self) -> jobhost_store::Store {
        self.store_with(jobhost_store::StoreOptions::default())
            .await
    }

    pub async fn store_with(&self, options: jobhost_store::StoreOptions) -> jobhost_store::Store {
        jobhost_store::Store::connect(&self.url(), options)
            .await
            .unwrap()
    }

    /// Runs one command with `redis-cli` (as an operator would, behind the store's back);
    /// its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.server.port().to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A real PostgreSQL of this test alone (Debian's server, as an unprivileged user): own
/// port, own data folder, database `jobhost`.
pub struct TestPostgres {
    pub server: jobhost_history::DevPostgres,
    _dir: tempfile::TempDir,
}

impl TestPostgres {
    /// Initialises and starts a fresh server on a free port.
    pub async fn start() -> TestPostgres {
        let dir = tempfile::tempdir().unwrap();
        let port = jobhost_store::free_port();
        let server = jobhost_history::DevPostgres::start(dir.path(), Some(port))
            .await
            .expect("PostgreSQL starts (install it, or run the tests with `just test`)");
        TestPostgres { server, _dir: dir }
    }

    /// `postgres://jobhost@127.0.0.1:<port>/jobhost`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A client of the `jobhost` database, to look behind the node's back.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("the test's PostgreSQL answers");
        tokio::spawn(connection);
        client
    }

    /// The ids of the job history's rows, in order.
    pub async fn archived_ids(&self) -> Vec<String> {
        self.client()
            .await
            .query("SELECT id FROM job_history ORDER BY id", &[])
            .await
            .expect("the job history is readable")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// Rows in the job history (0 before the node created the table).
    pub async fn archived(&self) -> i64 {
        let client = self.client().await;
        match client
            .query_one("SELECT count(*) FROM job_history", &[])
            .await
        {
            Ok(row) => row.get(0),
            Err(_) => 0,
        }
    }

    /// Stops the server (a fast shutdown); [`TestPostgres::start_again`] brings it back.
    pub async fn stop(&mut self) {
        self.server.stop().await;
    }

    /// Starts the server stopped by [`TestPostgres::stop`] again, same port and data.
    pub async fn start_again(&mut self) {
        self.server.restart().await.expect("PostgreSQL restarts");
    }
}

/// A new job of `job_type` with `spec`, no retries beyond `max_attempts`.
pub fn new_job(job_type: &str, spec: &str) -> jobhost_store::NewJob {
    jobhost_store::NewJob {
        job_type: job_type.to_owned(),
        spec: spec.to_owned(),
        ..Default::default()
    }
}

/// A real 3-shard Redis Cluster (three `redis-server --cluster-enabled yes` processes joined
/// with `redis-cli --cluster create`), no replicas.
pub struct TestCluster {
    servers: Vec<std::process::Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts the three nodes, creates the cluster, waits until it is ok. Ports are picked
    /// free but another test may take one before its server binds it: then the servers are
    /// stopped and started again on other ports.
    pub async fn start() -> TestCluster {
        for _ in 0..5 {
            if let Some(cluster) = TestCluster::try_start().await {
                return cluster;
            }
        }
        panic!("no redis cluster could start: its ports were taken five times over");
    }

    async fn try_start() -> Option<TestCluster> {
        let dir = tempfile::tempdir().unwrap();
        let ports = cluster_ports();
        // Built one server at a time into the struct, so a failure part-way still kills the
        // ones already started (and none holds the test's output pipes).
        let mut cluster = TestCluster {
            servers: Vec::new(),
            ports: ports.clone(),
            _dir: dir,
        };
        for port in &ports {
            let node_dir = cluster._dir.path().join(port.to_string());
            std::fs::create_dir(&node_dir).unwrap();
            let server = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(&node_dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("redis-server starts");
            cluster.servers.push(server);
        }
        for port in &cluster.ports {
            if !answers_ping(*port).await {
                return None; // dropping `cluster` stops the servers
            }
        }
        // `redis-cli --cluster create` waits for the nodes to join without end when they
        // cannot: bound it.
        let mut create = std::process::Command::new("timeout");
        create.args(["60", "redis-cli", "--cluster", "create"]);
        for port in &cluster.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok().await;
        Some(cluster)
    }

    async fn wait_ok(&mut self) {
        for _ in 0..200 {
            let ok = self.ports.iter().all(|port| {
                std::process::Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
            if ok {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("cluster never became ok");
    }

    /// Seed URLs, comma-separated (the form `redis.url` takes for a cluster).
    pub fn url(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// Three distinct free ports whose cluster bus ports (port + 10000) are free too.
fn cluster_ports() -> Vec<u16> {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < 3 {
        let port = 20_000 + (rand_u16() % 30_000);
        if !ports.contains(&port) && free(port) && free(port + 10_000) {
            ports.push(port);
        }
    }
    ports
}

/// A random number without a test-only dependency.
fn rand_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish() as u16
}

/// Whether a redis-server on `port` answers within 5 s.
async fn answers_ping(port: u16) -> bool {
    for _ in 0..200 {
        let pong = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "ping"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
            .unwrap_or(false);
        if pong {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    false
}
