//! One typed configuration for a jobhost node.
//!
//! Sources, lowest precedence first: built-in defaults, a TOML file, `JOBHOST_*` environment
//! variables ([`Config::apply_env`]), command-line flags (applied by the binary on top of
//! [`Config::load`]). One module per section (`[runtime]`, `[redis]`, ...), each with its
//! type, its defaults and a `check` of what the types alone cannot express. The plugin
//! capabilities' own fields (grant names, `allowed_hosts`, key-value limits) are checked by
//! the capabilities themselves (`jobhost_runtime::check_config`).
//!
//! Every knob, with its default and its environment variable, is in
//! `examples/jobhost.toml` (kept equal to the defaults by a test); `docs/configuration.md`
//! is generated from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod api;
mod auth;
mod env;
mod history;
mod jd;
mod log;
mod plugins;
mod profile;
mod redis;
mod runtime;
mod sandbox;
mod secret;
mod tls;
mod worker;

pub use api::{ApiConfig, HookConfig};
pub use auth::{AuthConfig, Role, TokenConfig};
pub use history::HistoryConfig;
pub use jd::JdConfig;
pub use log::{LogConfig, LogFormat};
pub use plugins::{MAX_REUSE, PluginConfig};
pub use profile::{Profile, mask_url_password};
pub use redis::RedisConfig;
pub use runtime::{MAX_MEMORY_LIMIT_MB, RuntimeConfig};
pub use sandbox::SandboxConfig;
pub use secret::SecretSource;
pub use tls::TlsConfig;
pub use worker::{JobTypeConfig, WorkerConfig, is_valid_job_type};

use env::parse_env;

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

impl ConfigError {
    /// An [`ConfigError::Invalid`] with `message`, which names the knob.
    pub fn invalid(message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid(message.into())
    }
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
    /// Finished jobs archived in PostgreSQL (off unless a URL is set).
    pub history: HistoryConfig,
    /// The node's own log.
    pub log: LogConfig,
    /// TLS of the gRPC and HTTP APIs, with client certificates (mTLS).
    pub tls: TlsConfig,
    /// Bearer tokens accepted by the APIs, besides client certificates.
    pub auth: AuthConfig,
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
        // JD_PORT and PORT (the Job Distributor this replaces: its gRPC port) and
        // NODE_RPC_PORT (its wsrpc port, as the Chainlink testing framework passes it) set the
        // port only where the file says nothing of that address; JOBHOST_* and flags still win.
        let (mut config, text) = match file {
            Some(path) => {
                let (text, config) = Config::read_file(path)?;
                (config, text.parse::<toml::Table>().ok())
            }
            None => (Config::default(), None),
        };
        let file_sets = |section: &str, key: &str| {
            text.as_ref()
                .and_then(|t| t.get(section))
                .and_then(|s| s.get(key))
                .is_some()
        };
        if !file_sets("api", "grpc_addr") {
            for name in ["PORT", "JD_PORT"] {
                if let Some(port) = var(name) {
                    let port: u16 = parse_env(name, port)?;
                    config.api.grpc_addr = format!("0.0.0.0:{port}");
                }
            }
        }
        if !file_sets("jd", "wsrpc_addr")
            && let Some(port) = var("NODE_RPC_PORT")
        {
            let port: u16 = parse_env("NODE_RPC_PORT", port)?;
            config.jd.wsrpc_addr = format!("0.0.0.0:{port}");
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

    /// Checks every section (ranges and forms that the types alone cannot express).
    pub fn check(&self) -> Result<(), ConfigError> {
        self.runtime.check()?;
        self.redis.check()?;
        self.worker.check()?;
        for (job_type, limits) in &self.job_types {
            limits.check(job_type)?;
        }
        self.api.check()?;
        for (name, hook) in &self.hooks {
            hook.check(name)?;
        }
        self.sandbox.check()?;
        self.tls.check()?;
        self.auth.check()?;
        self.jd.check()?;
        self.history.check()?;
        for (id, plugin) in &self.plugins {
            plugin.check(id)?;
        }
        Ok(())
    }

    /// The largest memory limit of any plugin, in bytes: the size of one pool slot.
    pub fn max_memory_bytes(&self) -> u64 {
        let plugins = self.plugins.values().filter_map(|p| p.memory_limit_mb);
        plugins.fold(self.runtime.memory_limit_mb, u64::max) * 1024 * 1024
    }

    /// Jobs this node runs at once.
    pub fn concurrency(&self) -> u32 {
        match self.worker.concurrency {
            0 => self.runtime.max_instances,
            n => n,
        }
    }

    /// The config of plugin `id` (defaults when the file has no section for it).
    pub fn plugin(&self, id: &str) -> PluginConfig {
        self.plugins.get(id).cloned().unwrap_or_default()
    }

    /// Whether any plugin keeps instances between attempts (`plugins.<id>.reuse` above 1).
    pub fn keeps_instances(&self) -> bool {
        self.plugins.values().any(|p| p.reuse() > 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{DEVELOPMENT, PRODUCTION_CHANGES};

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
    fn job_type_limits_are_checked_and_named_by_their_knob() {
        let config = Config::from_toml(
            "[worker]\nmax_queued_per_type = 50\n[job_types.timer]\nmax_queued = 7\nmax_concurrent = 2\n[job_types.noop]\nmax_concurrent = 1\n",
        )
        .unwrap();
        config.check().unwrap();
        assert_eq!(config.job_types["timer"].max_queued, Some(7));
        assert_eq!(config.job_types["noop"].max_concurrent, Some(1));
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
        // A type is pinned to a plugin by id; the key must be a type plugins can serve.
        let pinned = Config::from_toml("[job_types.timer]\nplugin = \"timer\"\n").unwrap();
        pinned.check().unwrap();
        assert_eq!(pinned.job_types["timer"].plugin.as_deref(), Some("timer"));
        for (bad, says) in [
            (
                "[job_types.Timer]\nplugin = \"timer\"\n",
                "is not a job type name",
            ),
            ("[job_types.timer]\nplugin = \"\"\n", "is not a plugin id"),
        ] {
            let err = Config::from_toml(bad)
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
        let mut config = Config::default();
        config
            .apply_env(|name| (name == "JOBHOST_MAX_QUEUED_PER_TYPE").then(|| "9".to_owned()))
            .unwrap();
        assert_eq!(config.worker.max_queued_per_type, Some(9));
        // Unlimited by default; the production profile sets a queue limit.
        assert_eq!(Config::default().worker.max_queued_per_type, None);
        let prod = Config::from_toml(&Profile::Production.file()).unwrap();
        assert_eq!(prod.worker.max_queued_per_type, Some(100_000));
    }

    #[test]
    fn the_example_config_is_valid_and_states_the_defaults() {
        let example = include_str!("../../../examples/jobhost.toml");
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

    /// An environment holding only `pairs`.
    fn env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> + Copy {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_real_jds_port_variables_apply_where_the_file_says_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        let explicit = dir.path().join("explicit.toml");
        std::fs::write(&explicit, "[jd]\nwsrpc_addr = \"127.0.0.1:7001\"\n").unwrap();
        let load = |file: &Path, var| Config::load_with(Some(file), var).unwrap();
        let ports = env(&[("PORT", "14231"), ("NODE_RPC_PORT", "8081")]);
        let config = load(&empty, ports);
        assert_eq!(config.api.grpc_addr, "0.0.0.0:14231");
        assert_eq!(config.jd.wsrpc_addr, "0.0.0.0:8081");
        let config = load(&explicit, env(&[("NODE_RPC_PORT", "8081")]));
        assert_eq!(config.jd.wsrpc_addr, "127.0.0.1:7001", "the file wins");
        let over = env(&[
            ("NODE_RPC_PORT", "8081"),
            ("JOBHOST_JD_WSRPC_ADDR", "127.0.0.1:9001"),
        ]);
        assert_eq!(load(&empty, over).jd.wsrpc_addr, "127.0.0.1:9001");
        assert_eq!(Config::default().jd.wsrpc_addr, "0.0.0.0:42243");
        assert!(Config::load_with(Some(&empty), env(&[("NODE_RPC_PORT", "x")])).is_err());
        for bad in [
            "[jd]\nwsrpc_addr = \"nowhere\"\n",
            "[jd]\ncsa_key_secret = \"hunter2\"\n",
            "[jd]\nwsrpc_max_message_bytes = 10\n",
            "[jd]\nwsrpc_pong_timeout_ms = 0\n",
            "[jd]\nwsrpc_ping_interval_ms = 30000\nwsrpc_pong_timeout_ms = 10000\n",
        ] {
            let err = Config::from_toml(bad)
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(err.contains("jd."), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(
            Config::from_toml("[jd]\nwsrpc_addr = \"\"\n")
                .unwrap()
                .check()
                .is_ok()
        );
    }

    #[test]
    fn jd_port_applies_only_where_jobhost_says_nothing_of_the_grpc_address() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "").unwrap();
        let explicit = dir.path().join("explicit.toml");
        std::fs::write(&explicit, "[api]\ngrpc_addr = \"127.0.0.1:7000\"\n").unwrap();
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
        config.history.postgres_url = "postgres://u:s3cret@h/db?password=s3cret&x=1".into();
        let shown = toml::to_string(&config.masked()).unwrap();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://u:***@h/db?password=***&x=1"),
            "{shown}"
        );
    }

    #[test]
    fn the_job_examples_are_valid_config() {
        for example in [
            include_str!("../../../examples/jobs/timer-with-callback.toml"),
            include_str!("../../../examples/jobs/cron-webhook.toml"),
            include_str!("../../../examples/jobs/inbound-hook.toml"),
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
        assert_eq!(Config::default().max_memory_bytes(), 64 * 1024 * 1024);
        for bad in [
            "[runtime]\nmemory_limit_mb = 0\n",
            "[plugins.big]\nmemory_limit_mb = 4097\n",
        ] {
            let err = Config::from_toml(bad)
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("memory_limit_mb must be between 1 and 4096"),
                "{err}"
            );
        }
    }

    #[test]
    fn instance_reuse_is_a_count_of_attempts_from_1() {
        let config = Config::from_toml("[plugins.fast]\nreuse = 100\n").unwrap();
        config.check().unwrap();
        assert_eq!(config.plugin("fast").reuse(), 100);
        assert_eq!(
            config.plugin("other").reuse(),
            1,
            "unset: a fresh instance each"
        );
        for bad in [
            "[plugins.fast]\nreuse = 0\n",
            "[plugins.fast]\nreuse = 1000001\n",
        ] {
            let err = Config::from_toml(bad)
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("plugins.fast.reuse must be between 1 and 1000000"),
                "{err}"
            );
        }
        assert!(Config::from_toml("[plugins.fast]\nreuse = -1\n").is_err());
    }

    #[test]
    fn kept_instances_idle_from_1_second_to_a_day() {
        assert_eq!(Config::default().runtime.kept_idle_secs, 60);
        Config::from_toml("[runtime]\nkept_idle_secs = 86400\n")
            .unwrap()
            .check()
            .unwrap();
        for bad in ["0", "86401"] {
            let err = Config::from_toml(&format!("[runtime]\nkept_idle_secs = {bad}\n"))
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("runtime.kept_idle_secs must be between 1 and 86400, got"),
                "{err}"
            );
        }
    }
}
