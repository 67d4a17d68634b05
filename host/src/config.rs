//! One typed configuration for a jobhost node.
//!
//! Sources, lowest precedence first: built-in defaults, a TOML file, `JOBHOST_*` environment
//! variables, command-line flags (applied by the binary on top of [`Config::load`]).
//! Every knob is documented in README.md under "Configuration".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Errors reading or checking configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// An environment variable holds a value of the wrong type.
    #[error("invalid value {value:?} for environment variable {name}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
    /// A value is out of its allowed range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration of a node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The WebAssembly runtime: plugin folder, cache, limits.
    pub runtime: RuntimeConfig,
    /// Per-plugin grants and limits, keyed by plugin id (the `.wasm` file name without extension).
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Where jobs, queues and nodes live.
    pub redis: RedisConfig,
    /// How this node takes and runs jobs.
    pub worker: WorkerConfig,
    /// Per-job-type limits, cluster-wide, keyed by job type: `[job_types.<type>]`.
    pub job_types: BTreeMap<String, JobTypeConfig>,
    /// The APIs this node serves.
    pub api: ApiConfig,
    /// Inbound webhook triggers: `POST /v1/hooks/<name>` starts the job described here.
    pub hooks: BTreeMap<String, HookConfig>,
    /// Native processes (the `process` capability): defaults and maxima of their limits.
    pub sandbox: SandboxConfig,
    /// The Chainlink Job Distributor API.
    pub jd: JdConfig,
    /// The node's own log.
    pub log: LogConfig,
    /// TLS of the gRPC and HTTP APIs, with client certificates (mTLS).
    pub tls: TlsConfig,
    /// Bearer tokens accepted by the APIs, besides client certificates.
    pub auth: AuthConfig,
}

/// TLS of the APIs. Clients authenticate with a certificate signed by `client_ca_file`
/// (its subject OU is the role) or with a bearer token from `[auth.tokens]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Serve TLS. `false` (or `serve --dev` without certificates) serves plaintext, with a
    /// warning at start.
    pub enabled: bool,
    /// The server's certificate chain (PEM).
    pub cert_file: Option<PathBuf>,
    /// The server's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// The CA that signs client certificates (PEM).
    pub client_ca_file: Option<PathBuf>,
    /// How often the three files are checked for changes, in milliseconds; changed files are
    /// read again and used for new connections (0: read only at start).
    pub reload_interval_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: true,
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            reload_interval_ms: 30_000,
        }
    }
}

/// Bearer tokens (`authorization: Bearer <token>`), each mapped to a role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Tokens by name; the name identifies the caller in logs and rate limits.
    pub tokens: BTreeMap<String, TokenConfig>,
}

/// One bearer token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// What the token may do.
    pub role: crate::api::auth::Role,
    /// Where the token is read (at start, and again on SIGHUP): `env:NAME` or `file:/path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Or the token's SHA-256, hex, so the config holds no usable secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The node's own log (stderr).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (human-readable) or `json` (one object per line); `JOBHOST_LOG_FORMAT`
    /// overrides it.
    pub format: LogFormat,
    /// Level filter, e.g. `info` or `info,plugin=warn`; `JOBHOST_LOG`, `RUST_LOG` and
    /// `JD_LOG_LEVEL` override it. Unset: `info` for `serve`, `warn` for other commands.
    pub level: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The Chainlink Job Distributor API (`api.job.v1`, `api.node.v1`, `api.csa.v1` on the
/// gRPC port) and delivery of approved job specs to nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JdConfig {
    /// Serve the Job Distributor services.
    pub enabled: bool,
    /// Approve proposals at once (and deliver them); off: they wait as PENDING.
    pub auto_approve: bool,
    /// The operator's nodes file (YAML, like the CCIP deployer's nodes.yaml): each node's
    /// `chainlink_url`, `chainlink_email`, `chainlink_password`, optional `chain_configs`.
    pub nodes_file: Option<PathBuf>,
    /// Job type (and plugin id) that delivers specs to nodes; that plugin alone may read
    /// the nodes' credentials as secrets `chainlink/<node>/email|password`.
    pub delivery_job_type: String,
    /// Delivery attempts in all before it is FAILED for good.
    pub delivery_max_attempts: u32,
    /// Delay before the second delivery attempt, doubling after each.
    pub delivery_backoff_ms: u64,
    /// Longest delay between delivery attempts.
    pub delivery_backoff_max_ms: u64,
    /// How often each node's HTTP API is probed (`GET /health`) for `is_connected`.
    pub probe_interval_ms: u64,
}

impl Default for JdConfig {
    fn default() -> Self {
        JdConfig {
            enabled: true,
            auto_approve: true,
            nodes_file: None,
            delivery_job_type: "ccip-submit".into(),
            delivery_max_attempts: 10,
            delivery_backoff_ms: 1_000,
            delivery_backoff_max_ms: 60_000,
            probe_interval_ms: 10_000,
        }
    }
}

/// Limits of native job processes. Whatever a plugin asks for is clamped to the maxima.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// CPU percent of one core when the job does not say.
    pub default_cpu_percent: u32,
    /// Highest CPU percent a job may have.
    pub max_cpu_percent: u32,
    /// Memory cap in MiB when the job does not say.
    pub default_memory_mb: u64,
    /// Highest memory cap in MiB.
    pub max_memory_mb: u64,
    /// Process/thread cap when the job does not say (a fork bomb hits it).
    pub default_pids: u64,
    /// Highest process/thread cap.
    pub max_pids: u64,
    /// On stop: time between SIGTERM to the process group and SIGKILL to the whole cgroup.
    pub stop_grace_ms: u64,
    /// Where the cgroup filesystem is mounted.
    pub cgroup_root: PathBuf,
    /// Where no writable cgroup hierarchy exists (not root, no cgroupfs), run processes
    /// anyway, without limits (a warning per job). Off: such jobs are refused.
    pub allow_unconfined: bool,
    /// Empty job cgroups kept ready with the default limits, so starting a process does not
    /// wait for one to be created (0: create each when its job starts).
    pub warm_cgroups: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            default_cpu_percent: 100,
            max_cpu_percent: 100,
            default_memory_mb: 512,
            max_memory_mb: 4096,
            default_pids: 512,
            max_pids: 4096,
            stop_grace_ms: 100,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            allow_unconfined: false,
            warm_cgroups: 4,
        }
    }
}

/// A job template started by `POST /v1/hooks/<name>`, with the request body as its spec.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HookConfig {
    /// The job type to start.
    pub job_type: String,
    /// Where the hook's bearer token comes from: `env:VARIABLE` or `file:/path`.
    pub token: String,
    /// Labels put on every job it starts.
    pub labels: BTreeMap<String, String>,
    /// Priority of its jobs (0-255).
    pub priority: u8,
    /// Attempts in all (0 means the default, 3).
    pub max_attempts: u32,
}

/// The APIs a node serves and their input limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address of the gRPC API.
    pub grpc_addr: String,
    /// Largest job spec accepted, in bytes.
    pub max_spec_bytes: usize,
    /// Most labels on one job.
    pub max_labels: usize,
    /// Address of the HTTP API (webhook triggers, health).
    pub http_addr: String,
    /// Largest request body a webhook trigger accepts, in bytes.
    pub max_hook_body_bytes: usize,
    /// Requests per second one client (certificate, token or address) may make on average;
    /// 0 turns rate limiting off.
    pub rate_limit_per_sec: f64,
    /// Requests one client may make at once after a quiet spell (the bucket's size).
    pub rate_limit_burst: u32,
    /// Long-lived streams (log follows, live snapshots, health watches) one client may keep
    /// open at once; 0 means no limit.
    pub max_streams_per_client: usize,
    /// How long an HTTP client has to send a request's headers, in milliseconds, counted
    /// from when its connection is ready for a request: slow senders and idle keep-alive
    /// connections are closed after it. Also how long any client (gRPC too) has to send its
    /// first bytes once connected.
    pub http_header_timeout_ms: u64,
    /// Connections one client address may hold open at once on each API; 0 means no limit.
    pub max_connections_per_address: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            grpc_addr: "0.0.0.0:50051".into(),
            max_spec_bytes: 1024 * 1024,
            max_labels: 64,
            http_addr: "0.0.0.0:8080".into(),
            max_hook_body_bytes: 1024 * 1024,
            rate_limit_per_sec: 100.0,
            rate_limit_burst: 200,
            max_streams_per_client: 32,
            http_header_timeout_ms: 30_000,
            max_connections_per_address: 256,
        }
    }
}

/// The Redis shared by every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://...`; empty: none configured
    /// (`serve --dev` then starts a local one).
    pub url: String,
    /// Prefix of every key (and Redis Cluster hash tag); separates deployments on one Redis.
    pub prefix: String,
    /// How long finished jobs (record, attempts, log) are kept, in seconds.
    pub retention_secs: u64,
    /// How long an idempotency key returns its job, in seconds.
    pub idempotency_ttl_secs: u64,
    /// Most entries kept in one job's log stream.
    pub log_max_entries: usize,
    /// State folder of the local Redis started by `serve --dev`.
    pub dev_dir: PathBuf,
    /// CA certificate (PEM) for `rediss://` servers signed by a private CA.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for Redis servers that require client authentication.
    pub tls_cert_file: Option<PathBuf>,
    /// Client private key (PEM), with `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: String::new(),
            prefix: "jobhost".into(),
            retention_secs: 7 * 24 * 3600,
            idempotency_ttl_secs: 24 * 3600,
            log_max_entries: 100_000,
            dev_dir: PathBuf::from(".jobhost/redis"),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// Limits of one job type, enforced cluster-wide in Redis (every node sharing the Redis
/// should have the same `[job_types]`). Unset: no limit; 0 is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobTypeConfig {
    /// Most jobs of the type RUNNING at once across all nodes; more stay QUEUED until a
    /// place frees (other types are not held up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    /// Most jobs of the type waiting (QUEUED + SCHEDULED, i.e. delayed or backing off before
    /// a retry); a new job beyond it is refused with RESOURCE_EXHAUSTED / 429. Overrides
    /// `worker.max_queued_per_type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued: Option<u64>,
}

/// How a node takes and runs jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Jobs this node runs at once; 0 means `runtime.max_instances`.
    pub concurrency: u32,
    /// Lease on a claimed job, in ms: if the node does not renew it (it died, or lost
    /// Redis) within this time, another node re-queues the job.
    pub lease_ms: u64,
    /// Interval of node heartbeats, in ms; the registration expires after three missed.
    pub heartbeat_ms: u64,
    /// On SIGTERM, time running jobs get to finish before they are stopped and re-queued.
    pub shutdown_grace_ms: u64,
    /// Fallback poll interval for new work when no notification arrives, in ms.
    pub poll_ms: u64,
    /// Queue limit (QUEUED + SCHEDULED jobs) of every job type without its own
    /// `job_types.<type>.max_queued`; unset: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queued_per_type: Option<u64>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 0,
            lease_ms: 30_000,
            heartbeat_ms: 5_000,
            shutdown_grace_ms: 10_000,
            poll_ms: 1_000,
            max_queued_per_type: None,
        }
    }
}

/// Settings of the component runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Folder whose `.wasm` files are the loaded plugins; watched for changes.
    pub plugins_dir: PathBuf,
    /// Keep compiled components on disk so a restart does not recompile.
    pub cache: bool,
    /// Folder of the compiled-component cache; default `$XDG_CACHE_HOME/jobhost` or
    /// `~/.cache/jobhost`. One folder per node: a node prunes entries it does not use.
    pub cache_dir: Option<PathBuf>,
    /// Wall-clock deadline of one job attempt, in milliseconds, unless the job sets its own.
    pub default_timeout_ms: u64,
    /// Linear-memory cap of one plugin instance, in MiB, unless the plugin's config sets one.
    pub memory_limit_mb: u64,
    /// Maximum plugin instances alive at once; further jobs wait for a free slot.
    pub max_instances: u32,
    /// Use the pooling instance allocator (falls back to on-demand if it cannot reserve memory).
    pub pooling: bool,
    /// Bytes of log (host `log` calls plus stdout/stderr) kept per job; the rest is dropped.
    pub log_limit_bytes: usize,
    /// Time a cancelled plugin gets to return on its own before it is interrupted, in ms.
    pub cancel_grace_ms: u64,
    /// Quiet time after the last change in the plugins folder before it is re-read, in ms.
    pub watch_debounce_ms: u64,
    /// Interval of the epoch ticker that enforces deadlines and cancellation, in ms.
    pub epoch_tick_ms: u64,
    /// Connect and response timeout of a plugin's outbound HTTP request, in ms.
    pub http_timeout_ms: u64,
    /// Largest response body a plugin may receive, in bytes.
    pub http_max_response_bytes: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            plugins_dir: PathBuf::from("target/plugins"),
            cache: true,
            cache_dir: None,
            default_timeout_ms: 30_000,
            memory_limit_mb: 64,
            max_instances: 64,
            pooling: true,
            log_limit_bytes: 1024 * 1024,
            cancel_grace_ms: 2_000,
            watch_debounce_ms: 200,
            epoch_tick_ms: 10,
            http_timeout_ms: 30_000,
            http_max_response_bytes: 10 * 1024 * 1024,
        }
    }
}

impl RuntimeConfig {
    /// Where compiled components are cached, if caching is on and a folder is known.
    pub fn cache_folder(&self) -> Option<PathBuf> {
        if !self.cache {
            return None;
        }
        if let Some(dir) = &self.cache_dir {
            return Some(dir.clone());
        }
        let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from);
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache"));
        xdg.or(home).map(|base| base.join("jobhost"))
    }

    /// The default per-job deadline.
    pub fn default_timeout(&self) -> Duration {
        Duration::from_millis(self.default_timeout_ms)
    }
}

/// What one plugin is granted, beyond the basics every plugin gets (logging, progress,
/// clocks, random, and WASI with nothing opened).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginConfig {
    /// Capabilities granted, by name (see [`crate::runtime::capabilities`]); empty denies all.
    pub grants: Vec<String>,
    /// Memory cap of one instance in MiB (overrides `runtime.memory_limit_mb`).
    pub memory_limit_mb: Option<u64>,
    /// Deadline of one attempt in ms (overrides `runtime.default_timeout_ms`).
    pub timeout_ms: Option<u64>,
    /// Hosts the plugin may send HTTP requests to (with the `http` grant): `*`,
    /// `example.com`, `https://*.example.com`, `http://127.0.0.1:8080`. Empty denies all.
    pub allowed_hosts: Vec<String>,
    /// Secrets the plugin may read by name: `env:VARIABLE` or `file:/path` (never the value
    /// itself, so config files can be shared and logged).
    pub secrets: BTreeMap<String, String>,
    /// Executables the plugin may start (with the `process` grant); empty allows any.
    pub executables: Vec<String>,
    /// Most keys the plugin may keep in its key-value state (with the `kv` grant); unset:
    /// [`KV_DEFAULT_MAX_KEYS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_max_keys: Option<u64>,
    /// Largest value, in bytes, the plugin may store under one key (with the `kv` grant);
    /// unset: [`KV_DEFAULT_MAX_VALUE_BYTES`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_max_value_bytes: Option<u64>,
}

/// Keys a plugin may keep in its key-value state unless `plugins.<id>.kv_max_keys` says.
pub const KV_DEFAULT_MAX_KEYS: u64 = 1000;
/// Largest key-value value unless `plugins.<id>.kv_max_value_bytes` says (64 KiB).
pub const KV_DEFAULT_MAX_VALUE_BYTES: u64 = 64 * 1024;
/// Upper bound of `plugins.<id>.kv_max_keys`.
pub const KV_MAX_KEYS_LIMIT: u64 = 1_000_000;
/// Upper bound of `plugins.<id>.kv_max_value_bytes` (16 MiB): a value passes through the
/// plugin's memory and one Redis command.
pub const KV_MAX_VALUE_BYTES_LIMIT: u64 = 16 * 1024 * 1024;

/// Where a secret's value comes from. Only the source is kept; the value is read when a
/// plugin asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file (its content, trailing newline trimmed).
    File(PathBuf),
}

impl SecretSource {
    /// Parses `env:NAME` or `file:/path`.
    pub fn parse(source: &str) -> Result<SecretSource, String> {
        match source.split_once(':') {
            Some(("env", name)) if !name.is_empty() => Ok(SecretSource::Env(name.to_owned())),
            Some(("file", path)) if !path.is_empty() => Ok(SecretSource::File(path.into())),
            _ => Err("must be env:VARIABLE or file:/path (not the secret itself)".into()),
        }
    }

    /// The value, if the variable or file exists.
    pub fn read(&self) -> Option<String> {
        match self {
            SecretSource::Env(name) => std::env::var(name).ok(),
            SecretSource::File(path) => std::fs::read_to_string(path)
                .ok()
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned()),
        }
    }
}

impl Config {
    /// Reads `file` if given, then applies `JOBHOST_*` environment overrides, then checks.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with(file, |name| std::env::var(name).ok())
    }

    /// Like [`Config::load`], reading environment variables through `var`.
    pub fn load_with(
        file: Option<&Path>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        // JD_PORT (the Job Distributor this replaces) sets the gRPC port only where the
        // file says nothing of api.grpc_addr; JOBHOST_GRPC_ADDR and flags still win.
        let (mut config, file_sets_grpc) = match file {
            Some(path) => {
                let (text, config) = Config::read_file(path)?;
                let sets_grpc = text
                    .parse::<toml::Table>()
                    .is_ok_and(|t| t.get("api").and_then(|a| a.get("grpc_addr")).is_some());
                (config, sets_grpc)
            }
            None => (Config::default(), false),
        };
        if !file_sets_grpc && let Some(port) = var("JD_PORT") {
            let port: u16 = parse_env("JD_PORT", port)?;
            config.api.grpc_addr = format!("0.0.0.0:{port}");
        }
        config.apply_env(&var)?;
        config.check()?;
        Ok(config)
    }

    /// Parses a TOML file; unknown keys are errors so typos do not pass silently.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::read_file(path).map(|(_, config)| config)
    }

    /// The file's text and the config it holds.
    fn read_file(path: &Path) -> Result<(String, Config), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Config::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        Ok((text, config))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies environment overrides, reading variables through `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = var("JOBHOST_REDIS_URL") {
            self.redis.url = v;
        }
        if let Some(v) = var("JOBHOST_REDIS_PREFIX") {
            self.redis.prefix = v;
        }
        if let Some(v) = var("JOBHOST_GRPC_ADDR") {
            self.api.grpc_addr = v;
        }
        if let Some(v) = var("JOBHOST_HTTP_ADDR") {
            self.api.http_addr = v;
        }
        if let Some(v) = var("JOBHOST_LOG_FORMAT") {
            self.log.format = match v.trim().to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                _ => {
                    return Err(ConfigError::Env {
                        name: "JOBHOST_LOG_FORMAT",
                        value: v,
                        reason: "text or json",
                    });
                }
            };
        }
        if let Some(v) = var("JOBHOST_LOG")
            .or_else(|| var("RUST_LOG"))
            .or_else(|| var("JD_LOG_LEVEL"))
        {
            self.log.level = Some(v);
        }
        if let Some(v) = var("JOBHOST_RATE_LIMIT_PER_SEC") {
            self.api.rate_limit_per_sec = parse_env("JOBHOST_RATE_LIMIT_PER_SEC", v)?;
        }
        if let Some(v) = var("JOBHOST_TLS_ENABLED") {
            self.tls.enabled = parse_env("JOBHOST_TLS_ENABLED", v)?;
        }
        if let Some(v) = var("JOBHOST_TLS_CERT_FILE") {
            self.tls.cert_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("JOBHOST_TLS_KEY_FILE") {
            self.tls.key_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("JOBHOST_TLS_CLIENT_CA_FILE") {
            self.tls.client_ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = var("JOBHOST_TLS_RELOAD_INTERVAL_MS") {
            self.tls.reload_interval_ms = parse_env("JOBHOST_TLS_RELOAD_INTERVAL_MS", v)?;
        }
        if let Some(v) = var("JOBHOST_CONCURRENCY") {
            self.worker.concurrency = parse_env("JOBHOST_CONCURRENCY", v)?;
        }
        if let Some(v) = var("JOBHOST_MAX_QUEUED_PER_TYPE") {
            self.worker.max_queued_per_type = Some(parse_env("JOBHOST_MAX_QUEUED_PER_TYPE", v)?);
        }
        let rt = &mut self.runtime;
        if let Some(v) = var("JOBHOST_PLUGINS_DIR") {
            rt.plugins_dir = PathBuf::from(v);
        }
        if let Some(v) = var("JOBHOST_CACHE") {
            rt.cache = parse_env("JOBHOST_CACHE", v)?;
        }
        if let Some(v) = var("JOBHOST_CACHE_DIR") {
            rt.cache_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = var("JOBHOST_DEFAULT_TIMEOUT_MS") {
            rt.default_timeout_ms = parse_env("JOBHOST_DEFAULT_TIMEOUT_MS", v)?;
        }
        if let Some(v) = var("JOBHOST_MEMORY_LIMIT_MB") {
            rt.memory_limit_mb = parse_env("JOBHOST_MEMORY_LIMIT_MB", v)?;
        }
        if let Some(v) = var("JOBHOST_MAX_INSTANCES") {
            rt.max_instances = parse_env("JOBHOST_MAX_INSTANCES", v)?;
        }
        if let Some(v) = var("JOBHOST_POOLING") {
            rt.pooling = parse_env("JOBHOST_POOLING", v)?;
        }
        Ok(())
    }

    /// Checks ranges that the types alone cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        let rt = &self.runtime;
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if rt.max_instances == 0 {
            return invalid("runtime.max_instances must be at least 1".into());
        }
        if rt.default_timeout_ms == 0 {
            return invalid("runtime.default_timeout_ms must be at least 1".into());
        }
        // Deadlines and cancellation are only as prompt as the tick.
        if !(1..=MAX_EPOCH_TICK_MS).contains(&rt.epoch_tick_ms) {
            return invalid(format!(
                "runtime.epoch_tick_ms must be 1 to {MAX_EPOCH_TICK_MS}"
            ));
        }
        if self.sandbox.warm_cgroups > MAX_WARM_CGROUPS {
            return invalid(format!(
                "sandbox.warm_cgroups must be at most {MAX_WARM_CGROUPS}"
            ));
        }
        let redis = &self.redis;
        if !(redis.url.is_empty()
            || redis.url.starts_with("redis://")
            || redis.url.starts_with("rediss://"))
        {
            return invalid("redis.url must start with redis:// or rediss://".into());
        }
        let prefix_ok = !redis.prefix.is_empty()
            && redis
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !prefix_ok {
            return invalid(format!(
                "redis.prefix {:?} must be letters, digits, '-', '_' or '.'",
                redis.prefix
            ));
        }
        if self.api.grpc_addr.parse::<std::net::SocketAddr>().is_err() {
            return invalid(format!(
                "api.grpc_addr {:?} must be an address like 0.0.0.0:50051",
                self.api.grpc_addr
            ));
        }
        if self.api.http_addr.parse::<std::net::SocketAddr>().is_err() {
            return invalid(format!(
                "api.http_addr {:?} must be an address like 0.0.0.0:8080",
                self.api.http_addr
            ));
        }
        for (name, hook) in &self.hooks {
            if hook.job_type.is_empty() {
                return invalid(format!("hooks.{name}.job_type is required"));
            }
            if let Err(e) = SecretSource::parse(&hook.token) {
                return invalid(format!("hooks.{name}.token: {e}"));
            }
            let name_ok = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
            if !name_ok {
                return invalid(format!(
                    "hook name {name:?}: use letters, digits, '-' and '_'"
                ));
            }
        }
        let api = &self.api;
        let rate = api.rate_limit_per_sec;
        if !(rate.is_finite() && (rate == 0.0 || rate >= 0.001)) {
            return invalid("api.rate_limit_per_sec must be 0 (off) or at least 0.001".into());
        }
        if api.rate_limit_per_sec > 0.0 && api.rate_limit_burst == 0 {
            return invalid(
                "api.rate_limit_burst must be at least 1 when rate limiting is on".into(),
            );
        }
        let reload = self.tls.reload_interval_ms;
        if reload != 0 && reload < 100 {
            return invalid(
                "tls.reload_interval_ms must be 0 (read at start only) or at least 100".into(),
            );
        }
        if api.http_header_timeout_ms == 0 {
            return invalid("api.http_header_timeout_ms must be at least 1".into());
        }
        for (name, token) in &self.auth.tokens {
            match (&token.token, &token.sha256) {
                (Some(source), None) => {
                    if let Err(e) = SecretSource::parse(source) {
                        return invalid(format!("auth.tokens.{name}.token: {e}"));
                    }
                }
                (None, Some(digest)) => {
                    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return invalid(format!(
                            "auth.tokens.{name}.sha256 must be 64 hex digits (sha256sum of the token)"
                        ));
                    }
                }
                _ => {
                    return invalid(format!(
                        "auth.tokens.{name}: set exactly one of token (env:NAME or file:/path) and sha256"
                    ));
                }
            }
        }
        let sb = &self.sandbox;
        for (name, default, max) in [
            (
                "cpu_percent",
                u64::from(sb.default_cpu_percent),
                u64::from(sb.max_cpu_percent),
            ),
            ("memory_mb", sb.default_memory_mb, sb.max_memory_mb),
            ("pids", sb.default_pids, sb.max_pids),
        ] {
            if default == 0 || default > max {
                return invalid(format!(
                    "sandbox.default_{name} ({default}) must be between 1 and sandbox.max_{name} ({max})"
                ));
            }
        }
        let w = &self.worker;
        if w.lease_ms < 1_000 || w.heartbeat_ms == 0 || w.poll_ms == 0 {
            return invalid(
                "worker.lease_ms must be at least 1000; heartbeat_ms and poll_ms at least 1".into(),
            );
        }
        if w.max_queued_per_type == Some(0) {
            return invalid(
                "worker.max_queued_per_type must be at least 1 (leave it out for no limit)".into(),
            );
        }
        for (job_type, limits) in &self.job_types {
            if job_type.is_empty()
                || job_type
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control())
            {
                return invalid(format!(
                    "job_types: {job_type:?} is not a job type name (no spaces or control characters)"
                ));
            }
            for (knob, value) in [
                ("max_concurrent", limits.max_concurrent),
                ("max_queued", limits.max_queued),
            ] {
                if value == Some(0) {
                    return invalid(format!(
                        "job_types.{job_type}.{knob} must be at least 1 (leave it out for no limit)"
                    ));
                }
            }
        }
        for (id, plugin) in self.plugins.iter() {
            for (name, source) in &plugin.secrets {
                if let Err(e) = SecretSource::parse(source) {
                    return invalid(format!("plugins.{id}.secrets.{name}: {e}"));
                }
            }
            for pattern in &plugin.allowed_hosts {
                if let Err(e) = crate::runtime::capabilities::http::HostPattern::parse(pattern) {
                    return invalid(format!("plugins.{id}.allowed_hosts: {e}"));
                }
            }
            if let Some(n) = plugin.kv_max_keys
                && !(1..=KV_MAX_KEYS_LIMIT).contains(&n)
            {
                return invalid(format!(
                    "plugins.{id}.kv_max_keys must be between 1 and {KV_MAX_KEYS_LIMIT}, got {n}"
                ));
            }
            if let Some(n) = plugin.kv_max_value_bytes
                && !(1..=KV_MAX_VALUE_BYTES_LIMIT).contains(&n)
            {
                return invalid(format!(
                    "plugins.{id}.kv_max_value_bytes must be between 1 and \
                     {KV_MAX_VALUE_BYTES_LIMIT}, got {n}"
                ));
            }
            for grant in &plugin.grants {
                if !crate::runtime::capabilities::is_grantable(grant) {
                    return invalid(format!(
                        "plugins.{id}.grants: unknown capability {grant:?} (known: {})",
                        crate::runtime::capabilities::grantable_names().join(", ")
                    ));
                }
            }
        }
        for (name, mb) in self.memory_limits_mb() {
            if mb == 0 || mb > 4096 {
                return invalid(format!("{name} must be between 1 and 4096 MiB, got {mb}"));
            }
        }
        Ok(())
    }

    /// Every configured memory limit with its config key, for range checks and pool sizing.
    fn memory_limits_mb(&self) -> Vec<(String, u64)> {
        let mut limits = vec![(
            "runtime.memory_limit_mb".to_owned(),
            self.runtime.memory_limit_mb,
        )];
        for (id, plugin) in &self.plugins {
            if let Some(mb) = plugin.memory_limit_mb {
                limits.push((format!("plugins.{id}.memory_limit_mb"), mb));
            }
        }
        limits
    }

    /// The largest memory limit of any plugin, in bytes: the size of one pool slot.
    pub fn max_memory_bytes(&self) -> u64 {
        self.memory_limits_mb()
            .into_iter()
            .map(|(_, mb)| mb)
            .max()
            .unwrap_or(self.runtime.memory_limit_mb)
            * 1024
            * 1024
    }

    /// Jobs this node runs at once.
    pub fn concurrency(&self) -> u32 {
        match self.worker.concurrency {
            0 => self.runtime.max_instances,
            n => n,
        }
    }

    /// The per-job-type limits the store enforces.
    pub fn job_limits(&self) -> crate::store::JobLimits {
        crate::store::JobLimits {
            types: self
                .job_types
                .iter()
                .map(|(job_type, limits)| {
                    let limits = crate::store::TypeLimits {
                        max_queued: limits.max_queued,
                        max_concurrent: limits.max_concurrent,
                    };
                    (job_type.clone(), limits)
                })
                .collect(),
            default_max_queued: self.worker.max_queued_per_type,
        }
    }

    /// The config of plugin `id` (defaults when the file has no section for it).
    pub fn plugin(&self, id: &str) -> PluginConfig {
        self.plugins.get(id).cloned().unwrap_or_default()
    }
}

fn parse_env<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Env {
        name,
        value,
        reason: std::any::type_name::<T>(),
    })
}

/// Which defaults `jobhost config init` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Every knob at its built-in default (`examples/jobhost.toml`).
    Development,
    /// JSON logs at `info`, lower maxima for native processes, smaller specs, and Redis
    /// expected to be configured.
    Production,
}

/// The commented configuration file of every knob at its default.
const DEVELOPMENT: &str = include_str!("../../examples/jobhost.toml");

/// Changes from the development file to the production one: (exact line, replacement).
const PRODUCTION_CHANGES: &[(&str, &str)] = &[
    ("format = \"text\"", "format = \"json\""),
    ("# level = \"info\"", "level = \"info\""),
    ("max_memory_mb = 4096", "max_memory_mb = 2048"),
    ("max_pids = 4096", "max_pids = 1024"),
    ("max_spec_bytes = 1048576", "max_spec_bytes = 262144"),
    (
        "# max_queued_per_type = 100000",
        "max_queued_per_type = 100000",
    ),
    (
        "# cert_file = \"/etc/jobhost/tls/server-cert.pem\"",
        "cert_file = \"/etc/jobhost/tls/server-cert.pem\"",
    ),
    (
        "# key_file = \"/etc/jobhost/tls/server-key.pem\"",
        "key_file = \"/etc/jobhost/tls/server-key.pem\"",
    ),
    (
        "# client_ca_file = \"/etc/jobhost/tls/ca-cert.pem\"",
        "client_ca_file = \"/etc/jobhost/tls/ca-cert.pem\"",
    ),
];

impl Profile {
    /// The commented TOML file of this profile.
    pub fn file(self) -> String {
        match self {
            Profile::Development => DEVELOPMENT.to_owned(),
            Profile::Production => {
                let mut text = String::from(
                    "# Production profile (`jobhost config init --profile production`): JSON logs,\n\
                     # lower maxima for native processes and specs, TLS with client certificates\n\
                     # from /etc/jobhost/tls (your PKI's, or `jobhost certs init` for a trial).\n\
                     # Set redis.url (or JOBHOST_REDIS_URL) to the Redis every node shares.\n",
                );
                for line in DEVELOPMENT.lines() {
                    let changed = PRODUCTION_CHANGES
                        .iter()
                        .find(|(from, _)| line == *from)
                        .map_or(line, |(_, to)| to);
                    text.push_str(changed);
                    text.push('\n');
                }
                text
            }
        }
    }
}

impl Config {
    /// A copy fit to print: the password in `redis.url` is masked. (Other secrets are only
    /// ever named in the config, as `env:` or `file:` sources, never held in it.)
    pub fn masked(&self) -> Config {
        let mut copy = self.clone();
        copy.redis.url = copy
            .redis
            .url
            .split(',')
            .map(mask_url_password)
            .collect::<Vec<_>>()
            .join(",");
        copy
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let masked = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        "***".to_owned()
    };
    format!("{scheme}://{masked}@{host}")
}

/// The slowest epoch tick accepted: deadlines and cancellation of wasm wait up to a tick.
const MAX_EPOCH_TICK_MS: u64 = 1000;

/// The most empty cgroups a node keeps ready.
const MAX_WARM_CGROUPS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_and_warm_cgroups_are_bounded() {
        for (toml, knob) in [
            ("[runtime]\nepoch_tick_ms = 0\n", "runtime.epoch_tick_ms"),
            ("[runtime]\nepoch_tick_ms = 1001\n", "runtime.epoch_tick_ms"),
            ("[sandbox]\nwarm_cgroups = 257\n", "sandbox.warm_cgroups"),
        ] {
            let err = Config::from_toml(toml).unwrap().check().unwrap_err();
            assert!(err.to_string().contains(knob), "{toml}: {err}");
        }
        let fine = "[runtime]\nepoch_tick_ms = 1000\n[sandbox]\nwarm_cgroups = 256\n";
        Config::from_toml(fine).unwrap().check().unwrap();
    }

    #[test]
    fn env_overrides_file() {
        let mut config = Config::from_toml("[runtime]\nmemory_limit_mb = 32\n").unwrap();
        config
            .apply_env(|name| (name == "JOBHOST_MEMORY_LIMIT_MB").then(|| "128".to_owned()))
            .unwrap();
        assert_eq!(config.runtime.memory_limit_mb, 128);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = Config::from_toml("[runtime]\nmemory_limit = 32\n").unwrap_err();
        assert!(err.contains("memory_limit"), "{err}");
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let mut config = Config::default();
        let err = config
            .apply_env(|name| (name == "JOBHOST_POOLING").then(|| "maybe".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("JOBHOST_POOLING"), "{err}");
    }

    #[test]
    fn kv_limits_are_range_checked() {
        let config = Config::from_toml("[plugins.x]\nkv_max_keys = 0\n").unwrap();
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("plugins.x.kv_max_keys"), "{err}");
        let config = Config::from_toml("[plugins.x]\nkv_max_value_bytes = 99999999999\n").unwrap();
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("plugins.x.kv_max_value_bytes"), "{err}");
        let config =
            Config::from_toml("[plugins.x]\nkv_max_keys = 10\nkv_max_value_bytes = 100\n").unwrap();
        config.check().unwrap();
        assert_eq!(config.plugin("x").kv_max_keys, Some(10));
    }

    #[test]
    fn job_type_limits_are_checked_and_named_by_their_knob() {
        let config = Config::from_toml(
            "[worker]\nmax_queued_per_type = 50\n[job_types.timer]\nmax_queued = 7\nmax_concurrent = 2\n[job_types.noop]\nmax_concurrent = 1\n",
        )
        .unwrap();
        config.check().unwrap();
        let limits = config.job_limits();
        assert_eq!(
            limits.max_queued("timer"),
            Some((7, "job_types.timer.max_queued".to_owned()))
        );
        assert_eq!(
            limits.max_queued("noop"),
            Some((50, "worker.max_queued_per_type".to_owned()))
        );
        assert_eq!(limits.max_concurrent("timer"), Some(2));
        assert_eq!(limits.max_concurrent("other"), None);
        for bad in [
            "[job_types.timer]\nmax_queued = 0\n",
            "[job_types.timer]\nmax_concurrent = 0\n",
            "[worker]\nmax_queued_per_type = 0\n",
        ] {
            let err = Config::from_toml(bad)
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("at least 1") && err.contains("no limit"),
                "{err}"
            );
        }
        let err = Config::from_toml("[job_types.timer]\nmax_running = 3\n").unwrap_err();
        assert!(err.contains("max_running"), "{err}");
        let mut config = Config::default();
        config
            .apply_env(|name| (name == "JOBHOST_MAX_QUEUED_PER_TYPE").then(|| "9".to_owned()))
            .unwrap();
        assert_eq!(config.worker.max_queued_per_type, Some(9));
        // Unlimited by default; the production profile sets a queue limit.
        assert_eq!(
            Config::default().job_limits(),
            crate::store::JobLimits::default()
        );
        let prod = Config::from_toml(&Profile::Production.file()).unwrap();
        assert_eq!(prod.worker.max_queued_per_type, Some(100_000));
    }

    #[test]
    fn unknown_grant_is_rejected() {
        let config = Config::from_toml("[plugins.x]\ngrants = [\"teleport\"]\n").unwrap();
        let err = config.check().unwrap_err().to_string();
        assert!(
            err.contains("plugins.x.grants") && err.contains("teleport"),
            "{err}"
        );
    }

    #[test]
    fn the_example_config_is_valid_and_states_the_defaults() {
        let example = include_str!("../../examples/jobhost.toml");
        let config = Config::from_toml(example).unwrap();
        config.check().unwrap();
        let defaults = RuntimeConfig::default();
        let as_toml = |r: &RuntimeConfig| toml::to_string(r).unwrap();
        assert_eq!(as_toml(&config.runtime), as_toml(&defaults));
        let redis = |r: &RedisConfig| toml::to_string(r).unwrap();
        assert_eq!(redis(&config.redis), redis(&RedisConfig::default()));
        let worker = |w: &WorkerConfig| toml::to_string(w).unwrap();
        assert_eq!(worker(&config.worker), worker(&WorkerConfig::default()));
        let api = |a: &ApiConfig| toml::to_string(a).unwrap();
        assert_eq!(api(&config.api), api(&ApiConfig::default()));
        let sandbox = |s: &SandboxConfig| toml::to_string(s).unwrap();
        assert_eq!(sandbox(&config.sandbox), sandbox(&SandboxConfig::default()));
        let jd = |j: &JdConfig| toml::to_string(j).unwrap();
        assert_eq!(jd(&config.jd), jd(&JdConfig::default()));
        let log = |l: &LogConfig| toml::to_string(l).unwrap();
        assert_eq!(log(&config.log), log(&LogConfig::default()));
        let tls = |t: &TlsConfig| toml::to_string(t).unwrap();
        assert_eq!(tls(&config.tls), tls(&TlsConfig::default()));
        assert!(config.auth.tokens.is_empty());
        assert_eq!(config.plugin("net-probe").grants, ["network"]);
    }

    #[test]
    fn jd_port_applies_only_where_jobhost_says_nothing_of_the_grpc_address() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        let explicit = dir.path().join("explicit.toml");
        std::fs::write(&explicit, "[api]\ngrpc_addr = \"127.0.0.1:7000\"\n").unwrap();
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let jd = env(&[("JD_PORT", "42242")]);
        let addr = |file: &Path, var| Config::load_with(Some(file), var).unwrap().api.grpc_addr;
        assert_eq!(addr(&empty, jd), "0.0.0.0:42242");
        assert_eq!(
            addr(&explicit, env(&[("JD_PORT", "42242")])),
            "127.0.0.1:7000"
        );
        let both = env(&[
            ("JD_PORT", "42242"),
            ("JOBHOST_GRPC_ADDR", "127.0.0.1:9000"),
        ]);
        assert_eq!(addr(&empty, both), "127.0.0.1:9000");
        assert!(Config::load_with(Some(&empty), env(&[("JD_PORT", "port")])).is_err());
    }

    #[test]
    fn both_profiles_are_valid_and_production_changes_what_it_says() {
        let dev = Config::from_toml(&Profile::Development.file()).unwrap();
        dev.check().unwrap();
        let prod = Config::from_toml(&Profile::Production.file()).unwrap();
        prod.check().unwrap();
        assert_eq!(prod.log.format, LogFormat::Json);
        assert_eq!(prod.log.level.as_deref(), Some("info"));
        assert_eq!(prod.sandbox.max_memory_mb, 2048);
        assert_eq!(prod.sandbox.max_pids, 1024);
        assert_eq!(prod.api.max_spec_bytes, 262_144);
        assert!(prod.tls.enabled && dev.tls.enabled);
        assert_eq!(
            prod.tls.client_ca_file.as_deref(),
            Some(Path::new("/etc/jobhost/tls/ca-cert.pem"))
        );
        assert!(prod.tls.cert_file.is_some() && prod.tls.key_file.is_some());
        assert!(dev.tls.cert_file.is_none());
        // Every change found its line (the example file is the source of both).
        for (from, _) in PRODUCTION_CHANGES {
            assert!(DEVELOPMENT.lines().any(|l| l == *from), "{from}");
        }
    }

    #[test]
    fn printed_configs_mask_redis_passwords() {
        let mut config = Config::default();
        config.redis.url = "redis://app:s3cret@a:6379,rediss://:pw@b:6380,redis://c:1".into();
        let shown = toml::to_string(&config.masked()).unwrap();
        assert!(
            !shown.contains("s3cret") && !shown.contains(":pw@"),
            "{shown}"
        );
        assert!(shown.contains("redis://app:***@a:6379,rediss://:***@b:6380,redis://c:1"));
    }

    #[test]
    fn the_job_examples_are_valid_config() {
        for example in [
            include_str!("../../examples/jobs/timer-with-callback.toml"),
            include_str!("../../examples/jobs/cron-webhook.toml"),
            include_str!("../../examples/jobs/inbound-hook.toml"),
        ] {
            Config::from_toml(example).unwrap().check().unwrap();
        }
    }

    #[test]
    fn secrets_are_sources_not_values() {
        assert_eq!(
            SecretSource::parse("env:X"),
            Ok(SecretSource::Env("X".into()))
        );
        assert!(SecretSource::parse("hunter2").is_err());
        let config = Config::from_toml("[plugins.w.secrets]\nk = \"hunter2\"\n").unwrap();
        let err = config.check().unwrap_err().to_string();
        assert!(
            err.contains("plugins.w.secrets.k") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn pool_slot_fits_the_largest_plugin_limit() {
        let config = Config::from_toml("[plugins.big]\nmemory_limit_mb = 256\n").unwrap();
        assert_eq!(config.max_memory_bytes(), 256 * 1024 * 1024);
    }
}
