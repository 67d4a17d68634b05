//! `jobhost`: the job host server and its operator commands.

/// `println!` that ends the process quietly when stdout is closed (e.g. piped to `head`),
/// instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use jobhost::api::auth::Gate;
use jobhost::api::{grpc, http};
use jobhost::config::Config;
use jobhost::runtime::plugin::{ImportCheck, capability_report};
use jobhost::runtime::{
    CapabilityUse, JobEvents, JobInput, LogLevel, PluginStatus, RunOptions, Runtime,
};
use jobhost::store::{DevRedis, Store, StoreOptions, TlsFiles};
use jobhost::worker::{self, WorkerSettings};
use tokio_util::sync::CancellationToken;

/// A host for sandboxed job plugins (WebAssembly components).
#[derive(Parser)]
#[command(name = "jobhost", version)]
struct Cli {
    /// Config file (TOML). Environment variables `JOBHOST_*` override it; flags override both.
    #[arg(long, short, global = true, env = "JOBHOST_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: load the plugins folder (reloading it on change), take jobs from Redis,
    /// until SIGINT/SIGTERM.
    Serve {
        /// Development mode: create the plugins folder if missing, start a local
        /// redis-server (state in `redis.dev_dir`, AOF on) when no Redis URL is configured,
        /// and serve the APIs in plaintext unless `tls.cert_file` is set.
        #[arg(long)]
        dev: bool,
        /// Redis URL (overrides `redis.url` and JOBHOST_REDIS_URL).
        #[arg(long)]
        redis_url: Option<String>,
        /// gRPC listen address (overrides `api.grpc_addr` and JOBHOST_GRPC_ADDR).
        #[arg(long)]
        grpc_addr: Option<String>,
        /// HTTP listen address (overrides `api.http_addr` and JOBHOST_HTTP_ADDR).
        #[arg(long)]
        http_addr: Option<String>,
        /// Plugins folder (overrides `runtime.plugins_dir`).
        #[arg(long)]
        plugins_dir: Option<PathBuf>,
    },
    /// Inspect plugins without running a server.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Write a starting configuration file, or check one.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Create development certificates for mTLS.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Run one job in-process, without Redis (for plugin authors).
    RunLocal {
        /// Plugin id: the `.wasm` file name without extension.
        #[arg(long)]
        plugin: String,
        /// File holding the job spec; `-` reads standard input.
        #[arg(long)]
        spec: PathBuf,
        /// Job type, when the plugin serves several (default: its first).
        #[arg(long)]
        job_type: Option<String>,
        /// Deadline in milliseconds (default: the plugin's configured timeout).
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Plugins folder (overrides `runtime.plugins_dir`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the whole run report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Write a commented configuration file with every knob.
    Init {
        /// `development` (the built-in defaults) or `production` (JSON logs, lower limits).
        #[arg(long, default_value = "development", value_parser = ["development", "production"])]
        profile: String,
        /// Where to write it; `-` prints it.
        #[arg(default_value = "jobhost.toml")]
        file: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Validate FILE (with the JOBHOST_* environment overrides) and print the effective
    /// configuration, passwords masked.
    Check {
        /// The config file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a development CA, a server certificate (localhost, 127.0.0.1, ::1 and every
    /// --name), and admin and viewer client certificates into DIR.
    Init {
        /// The folder (created if missing).
        #[arg(default_value = "certs")]
        dir: PathBuf,
        /// Another name (DNS or IP) the server certificate is valid for; repeatable.
        #[arg(long = "name")]
        names: Vec<String>,
        /// Replace certificates already in DIR.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Load every `.wasm` in the folder and show what loaded and what was rejected, and why.
    List {
        /// Plugins folder (overrides `runtime.plugins_dir`).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one plugin file: name, version, job types, imports and whether they are granted,
    /// and each capability requested (imported or declared) against granted.
    Inspect {
        /// The `.wasm` file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show or change a plugin's `kv` state in Redis: its keys with their sizes, one value
    /// (`--get`), or remove one key (`--delete`) or all of them (`--clear`).
    State {
        /// The plugin id (its file name without `.wasm`).
        plugin: String,
        /// Print this key's value (as stored: text or bytes) to standard output.
        #[arg(long, conflicts_with_all = ["delete", "clear"])]
        get: Option<String>,
        /// Remove this key.
        #[arg(long, conflicts_with = "clear")]
        delete: Option<String>,
        /// Remove every key of the plugin.
        #[arg(long)]
        clear: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Redis URL (overrides `redis.url` / JOBHOST_REDIS_URL).
        #[arg(long)]
        redis_url: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that need no configuration of their own.
    let standalone = match &cli.command {
        Command::Certs { command } => Some(certs_command(command)),
        Command::Config { command } => Some(config_command(command)),
        _ => None,
    };
    if let Some(result) = standalone {
        return result.unwrap_or_else(|e| {
            eprintln!("jobhost: {e:#}");
            ExitCode::FAILURE
        });
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("jobhost: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A node logs its progress; one-shot commands only say what went wrong.
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        _ => "warn",
    };
    init_logging(&config.log, default_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jobhost: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jobhost: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `jobhost certs init`.
fn certs_command(command: &CertsCommand) -> Result<ExitCode> {
    let CertsCommand::Init { dir, names, force } = command;
    jobhost::certs::init_dir(dir, names, *force)?;
    use jobhost::certs::files::*;
    let show = |file: &str| dir.join(file).display().to_string();
    outln!(
        "wrote a development CA and certificates to {}",
        dir.display()
    );
    outln!();
    outln!("Serve with them (add to the config file):");
    outln!("  [tls]");
    outln!("  cert_file = {:?}", show(SERVER_CERT));
    outln!("  key_file = {:?}", show(SERVER_KEY));
    outln!("  client_ca_file = {:?}", show(CA_CERT));
    outln!();
    outln!("Call as admin (or with the viewer-client-*.pem files, as a viewer):");
    outln!(
        "  jobctl --server https://localhost:50051 --ca {} --cert {} --key {} list",
        show(CA_CERT),
        show(ADMIN_CERT),
        show(ADMIN_KEY)
    );
    outln!();
    outln!(
        "{} signs new clients: keep it off servers. For production use your own PKI.",
        show(CA_KEY)
    );
    Ok(ExitCode::SUCCESS)
}

/// `jobhost config init|check`.
fn config_command(command: &ConfigCommand) -> Result<ExitCode> {
    match command {
        ConfigCommand::Init {
            profile,
            file,
            force,
        } => {
            let profile = match profile.as_str() {
                "production" => jobhost::config::Profile::Production,
                _ => jobhost::config::Profile::Development,
            };
            let text = profile.file();
            if file.as_os_str() == "-" {
                outln!("{}", text.trim_end());
                return Ok(ExitCode::SUCCESS);
            }
            if file.exists() && !force {
                bail!("{} exists; pass --force to replace it", file.display());
            }
            std::fs::write(file, text)
                .with_context(|| format!("cannot write {}", file.display()))?;
            outln!("wrote {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check { file } => {
            let config = Config::load(Some(file))?;
            let shown = toml::to_string_pretty(&config.masked())
                .context("cannot print the configuration")?;
            outln!(
                "# {}: valid. Effective configuration (file < JOBHOST_* env):",
                file.display()
            );
            outln!("{}", shown.trim_end());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Logs to stderr: human-readable, or one JSON object per line (`log.format = "json"` or
/// `JOBHOST_LOG_FORMAT=json`; spans included: a job's lines carry its id, type, plugin
/// version, node and attempt). The level is `log.level` (overridden by `JOBHOST_LOG`,
/// `RUST_LOG` or `JD_LOG_LEVEL`), else `default_level`.
fn init_logging(log: &jobhost::config::LogConfig, default_level: &str) {
    use std::io::IsTerminal;
    let filter = log.level.clone().unwrap_or_else(|| default_level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // A closed stderr (a supervisor gone away) must not crash the node.
        .log_internal_errors(false);
    if log.format == jobhost::config::LogFormat::Json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

async fn dispatch(cli: Cli, mut config: Config) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            dev,
            redis_url,
            grpc_addr,
            http_addr,
            plugins_dir,
        } => {
            if let Some(addr) = http_addr {
                config.api.http_addr = addr;
            }
            set_dir(&mut config, plugins_dir);
            if let Some(url) = redis_url {
                config.redis.url = url;
            }
            if let Some(addr) = grpc_addr {
                config.api.grpc_addr = addr;
            }
            config.check()?;
            serve(config, dev).await
        }
        Command::Plugins { command } => match command {
            PluginsCommand::List { dir, json } => {
                set_dir(&mut config, dir);
                plugins_list(config, json).await
            }
            PluginsCommand::Inspect { file, json } => plugins_inspect(config, &file, json).await,
            PluginsCommand::State {
                plugin,
                get,
                delete,
                clear,
                json,
                redis_url,
            } => {
                if let Some(url) = redis_url {
                    config.redis.url = url;
                }
                let action = match (get, delete, clear) {
                    (Some(key), _, _) => StateAction::Get(key),
                    (_, Some(key), _) => StateAction::Delete(key),
                    (_, _, true) => StateAction::Clear,
                    _ => StateAction::List,
                };
                plugins_state(config, &plugin, action, json).await
            }
        },
        Command::RunLocal {
            plugin,
            spec,
            job_type,
            timeout_ms,
            dir,
            json,
        } => {
            set_dir(&mut config, dir);
            let local = LocalRun {
                plugin,
                spec: read_spec(&spec)?,
                job_type,
                timeout: timeout_ms.map(Duration::from_millis),
                json,
            };
            run_local(config, local).await
        }
        // Answered by main without loading the config; the same answer here.
        Command::Config { command } => config_command(&command),
        Command::Certs { command } => certs_command(&command),
    }
}

fn set_dir(config: &mut Config, dir: Option<PathBuf>) {
    if let Some(dir) = dir {
        config.runtime.plugins_dir = dir;
    }
}

async fn serve(config: Config, dev: bool) -> Result<ExitCode> {
    let mut signal = ShutdownSignal::install()?;
    // TLS files are checked before anything starts, so a typo fails at once.
    let gate = Arc::new(Gate::from_config(&config, dev)?);
    if gate.tls().is_none() {
        let why = if config.tls.enabled {
            "--dev without tls.cert_file"
        } else {
            "tls.enabled = false"
        };
        let who = if config.auth.tokens.is_empty() {
            "anyone who can reach them is admin"
        } else {
            "bearer tokens travel in the clear"
        };
        tracing::warn!(
            "the gRPC and HTTP APIs are PLAINTEXT ({why}): {who}. Use TLS outside development \
             (`jobhost certs init`, then tls.cert_file, tls.key_file, tls.client_ca_file)"
        );
    }
    let dir = config.runtime.plugins_dir.clone();
    if dev && !dir.exists() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating plugins folder {}", dir.display()))?;
    }
    if !dir.is_dir() {
        bail!(
            "plugins folder {} does not exist: create it, point `runtime.plugins_dir` \
             (or JOBHOST_PLUGINS_DIR, or --plugins-dir) at one, or run `just plugins`",
            dir.display()
        );
    }
    // Keep the local Redis (if any) alive until the node has drained.
    let (store, mut dev_redis) = connect_store(&config, dev).await?;
    let runtime = Runtime::new(config.clone())?;
    // Plugin state (the `kv` capability) is shared by every node, through Redis.
    runtime.use_store(store.clone());
    runtime.detect_sandbox();
    let report = runtime.sync_dir().await?;
    tracing::info!(
        loaded = report.loaded.len(),
        rejected = report.rejected.len(),
        "plugins folder loaded"
    );
    let _watcher = runtime.watch()?;
    let jd = if config.jd.enabled {
        Some(jobhost::jd::Distributor::new(
            store.clone(),
            config.jd.clone(),
        )?)
    } else {
        None
    };
    // Both ports are bound before either API serves: a node that answers health on one has
    // the other open too, and a taken port stops the start before anything is served.
    let (listener, grpc_addr) = grpc::bind(&config.api).await?;
    let (http_listener, http_addr) = http::bind(&config).await?;
    let api_stop = CancellationToken::new();
    reload_on_hangup(gate.clone())?;
    if let (Some(tls), true) = (gate.tls(), config.tls.reload_interval_ms > 0) {
        let every = std::time::Duration::from_millis(config.tls.reload_interval_ms);
        tokio::spawn(tls.clone().watch(every, api_stop.clone()));
    }
    if let Some(jd) = &jd {
        tokio::spawn(jd.clone().probe_nodes(api_stop.clone()));
    }
    let api = tokio::spawn(grpc::serve(
        listener,
        gate.clone(),
        store.clone(),
        runtime.clone(),
        config.api.clone(),
        jd,
        api_stop.clone(),
    ));
    let tls = gate.tls().is_some();
    tracing::info!(addr = %grpc_addr, tls, job_distributor = config.jd.enabled, "gRPC API listening");
    let http_api = {
        let (store, runtime, config, stop) = (
            store.clone(),
            runtime.clone(),
            config.clone(),
            api_stop.clone(),
        );
        tokio::spawn(async move {
            http::serve(http_listener, gate, store, runtime, &config, stop).await
        })
    };
    tracing::info!(addr = %http_addr, tls, hooks = config.hooks.len(), "HTTP API listening");
    let shutdown = CancellationToken::new();
    let node = tokio::spawn(worker::run(
        store,
        runtime,
        WorkerSettings::from_config(&config),
        shutdown.clone(),
    ));
    tokio::select! {
        () = signal.received() => {}
        result = api => {
            // The API server only ends by itself on an error; the node cannot serve without it.
            shutdown.cancel();
            node.await.context("node task")?;
            return Err(match result {
                Ok(Err(e)) => e.into(),
                Ok(Ok(())) => anyhow::anyhow!("gRPC server stopped unexpectedly"),
                Err(e) => anyhow::anyhow!("gRPC server task failed: {e}"),
            });
        }
    }
    tracing::info!("shutting down: no new jobs are claimed");
    shutdown.cancel();
    node.await.context("node task")?;
    api_stop.cancel();
    if let Err(e) = http_api.await {
        tracing::warn!("HTTP API task failed: {e}");
    }
    if let Some(redis) = dev_redis.as_mut() {
        redis.stop().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Connects to the configured Redis; in `--dev` mode without one, starts a local
/// `redis-server` child (AOF on) first.
async fn connect_store(config: &Config, dev: bool) -> Result<(Store, Option<DevRedis>)> {
    let options = StoreOptions {
        prefix: config.redis.prefix.clone(),
        retention: Duration::from_secs(config.redis.retention_secs),
        idempotency_ttl: Duration::from_secs(config.redis.idempotency_ttl_secs),
        log_max_entries: config.redis.log_max_entries,
        tls: TlsFiles {
            ca_file: config.redis.tls_ca_file.clone(),
            cert_file: config.redis.tls_cert_file.clone(),
            key_file: config.redis.tls_key_file.clone(),
        },
        limits: config.job_limits(),
    };
    let mut dev_redis = None;
    let url = if !config.redis.url.is_empty() {
        config.redis.url.clone()
    } else if dev {
        let redis = DevRedis::start(&config.redis.dev_dir, None).await?;
        tracing::info!(
            url = %redis.url(),
            dir = %redis.dir().display(),
            "started a local redis-server for development"
        );
        let url = redis.url();
        dev_redis = Some(redis);
        url
    } else {
        bail!(
            "no Redis configured: set JOBHOST_REDIS_URL (or `redis.url` in the config file) \
             to redis://host:port, or run `jobhost serve --dev` to start a local one"
        );
    };
    let store = Store::connect(&url, options)
        .await
        .with_context(|| format!("cannot reach Redis at {}", redacted(&url)))?;
    Ok((store, dev_redis))
}

/// `url` without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// SIGINT/SIGTERM, caught from the moment it is created (so a signal that arrives while the
/// node is still starting is not lost, nor fatal).
struct ShutdownSignal {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn install() -> Result<ShutdownSignal> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignal {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn received(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// On SIGHUP, reads the TLS files and the `file:` tokens again at once (the TLS files are
/// also checked every `tls.reload_interval_ms`); what cannot be used is logged and the ones
/// in use are kept.
fn reload_on_hangup(gate: Arc<Gate>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            if let Some(tls) = gate.tls() {
                match tls.reload_if_changed() {
                    Ok(true) => {
                        tracing::info!("SIGHUP: TLS certificate, key or client CA reloaded")
                    }
                    Ok(false) => tracing::info!("SIGHUP: TLS files unchanged"),
                    Err(e) => tracing::error!(
                        "SIGHUP: TLS files cannot be used, keeping the ones in use: {e}"
                    ),
                }
            }
            match gate.reload_tokens() {
                Ok(count) => tracing::info!(tokens = count, "SIGHUP: auth tokens read again"),
                Err(e) => tracing::error!(
                    "SIGHUP: auth tokens cannot be read, keeping the ones in use: {e}"
                ),
            }
        }
    });
    Ok(())
}

/// What `plugins state` does.
enum StateAction {
    List,
    Get(String),
    Delete(String),
    Clear,
}

async fn plugins_state(
    config: Config,
    plugin: &str,
    action: StateAction,
    json: bool,
) -> Result<ExitCode> {
    let (store, _) = connect_store(&config, false).await?;
    match action {
        StateAction::List => {
            let sizes = store.kv_sizes(plugin).await?;
            if json {
                let entries: Vec<_> = sizes
                    .iter()
                    .map(|(key, bytes)| serde_json::json!({"key": key, "bytes": bytes}))
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&entries)?);
            } else if sizes.is_empty() {
                outln!("plugin {plugin:?} has no state");
            } else {
                outln!("{:<40} BYTES", "KEY");
                for (key, bytes) in &sizes {
                    outln!("{key:<40} {bytes}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StateAction::Get(key) => match store.kv_get(plugin, &key).await? {
            Some(value) => {
                use std::io::Write as _;
                std::io::stdout().write_all(&value)?;
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("plugin {plugin:?} has no key {key:?}");
                Ok(ExitCode::FAILURE)
            }
        },
        StateAction::Delete(key) => {
            if store.kv_delete(plugin, &key).await? {
                outln!("deleted {key:?} of plugin {plugin:?}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("plugin {plugin:?} has no key {key:?}");
                Ok(ExitCode::FAILURE)
            }
        }
        StateAction::Clear => {
            let count = store.kv_clear(plugin).await?;
            tracing::info!(plugin, keys = count, "plugin state cleared");
            outln!("cleared {count} keys of plugin {plugin:?}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn plugins_list(config: Config, json: bool) -> Result<ExitCode> {
    let runtime = Runtime::new(config)?;
    runtime.sync_dir().await?;
    let statuses = runtime.plugins();
    if json {
        outln!("{}", serde_json::to_string_pretty(&statuses)?);
        return Ok(ExitCode::SUCCESS);
    }
    if statuses.is_empty() {
        outln!("no .wasm files in {}", runtime.plugins_dir().display());
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<16} {:<9} {:<10} {:<24} DETAIL",
        "ID",
        "STATUS",
        "VERSION",
        "JOB TYPES"
    );
    for status in &statuses {
        print_status_row(status);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status_row(status: &PluginStatus) {
    let (version, job_types, description) = match &status.info {
        Some(info) => (
            info.version.as_str(),
            info.job_types.join(","),
            info.description.as_str(),
        ),
        None => ("-", "-".to_owned(), ""),
    };
    let detail = match &status.rejection {
        Some(reason) if status.status == "loaded" => format!("update rejected: {reason}"),
        Some(reason) => reason.clone(),
        None => description.to_owned(),
    };
    outln!(
        "{:<16} {:<9} {:<10} {:<24} {detail}",
        status.id,
        status.status,
        version,
        job_types
    );
}

async fn plugins_inspect(config: Config, file: &Path, json: bool) -> Result<ExitCode> {
    let runtime = Runtime::new(config)?;
    let inspection = runtime.inspect(file).await;
    let (imports, code) = match &inspection.result {
        Ok(plugin) => (plugin.imports.clone(), ExitCode::SUCCESS),
        Err(rejection) => (rejection.imports.clone(), ExitCode::FAILURE),
    };
    // Requested (imports, and describe()'s list when it ran) against granted (config).
    let grants = runtime.grants(&inspection.id);
    let declared = match &inspection.result {
        Ok(plugin) => plugin.info.capabilities.clone(),
        Err(_) => Vec::new(),
    };
    let capabilities = capability_report(&imports, &declared, &grants);
    if json {
        let value = match &inspection.result {
            Ok(plugin) => serde_json::json!({
                "id": inspection.id, "file": file, "status": "loadable",
                "digest": plugin.digest, "info": plugin.info, "imports": imports,
                "grants": grants, "capabilities": capabilities,
            }),
            Err(rejection) => serde_json::json!({
                "id": inspection.id, "file": file, "status": "rejected",
                "digest": rejection.digest, "reason": rejection.error.to_string(),
                "imports": imports, "grants": grants, "capabilities": capabilities,
            }),
        };
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(code);
    }
    outln!("id:          {}", inspection.id);
    outln!("file:        {}", file.display());
    match &inspection.result {
        Ok(plugin) => {
            let info = &plugin.info;
            outln!("status:      loadable");
            outln!("sha256:      {}", plugin.digest);
            outln!("name:        {}", info.name);
            outln!("version:     {}", info.version);
            outln!("job types:   {}", info.job_types.join(", "));
            outln!("description: {}", info.description);
            outln!("requests:    {}", list_or_none(&info.capabilities));
            outln!(
                "schema:      {}",
                if info.spec_schema.is_some() {
                    "yes"
                } else {
                    "no"
                }
            );
        }
        Err(rejection) => {
            outln!("status:      rejected");
            if let Some(digest) = &rejection.digest {
                outln!("sha256:      {digest}");
            }
            outln!("reason:      {}", rejection.error);
        }
    }
    print_imports(&imports);
    // Without imports the file never compiled: nothing is known of what it requests.
    if !imports.is_empty() {
        print_capabilities(&capabilities, inspection.result.is_ok());
    }
    Ok(code)
}

/// The capability table: requested by the plugin against granted by the config.
fn print_capabilities(rows: &[CapabilityUse], described: bool) {
    outln!("capabilities:");
    if rows.is_empty() {
        outln!("  (none requested or granted)");
        return;
    }
    outln!(
        "  {:<12} {:<18} {:<8} STATUS",
        "CAPABILITY",
        "REQUESTED",
        "GRANTED"
    );
    for row in rows {
        let requested = match (row.imported, row.declared) {
            (true, true) => "import, describe",
            (true, false) => "import",
            (false, true) => "describe",
            (false, false) => "-",
        };
        let granted = if row.granted { "yes" } else { "no" };
        outln!(
            "  {:<12} {:<18} {:<8} {}",
            row.capability,
            requested,
            granted,
            row.status.phrase()
        );
    }
    if !described {
        outln!("  (describe() did not run: requested means imported)");
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

fn print_imports(imports: &[ImportCheck]) {
    if imports.is_empty() {
        return;
    }
    outln!("imports:");
    for import in imports {
        let verdict = match (import.capability, import.granted) {
            (None, _) => "not provided by this host".to_owned(),
            (Some(cap), true) => format!("granted ({cap})"),
            (Some(cap), false) => format!("NOT granted (needs `{cap}`)"),
        };
        outln!("  {:<44} {verdict}", import.interface);
    }
}

struct LocalRun {
    plugin: String,
    spec: String,
    job_type: Option<String>,
    timeout: Option<Duration>,
    json: bool,
}

fn read_spec(path: &Path) -> Result<String> {
    if path == Path::new("-") {
        let mut spec = String::new();
        std::io::stdin()
            .read_to_string(&mut spec)
            .context("reading the spec from standard input")?;
        return Ok(spec);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading spec {}", path.display()))
}

/// Prints job log lines to stderr as they come.
struct StderrEvents;

impl JobEvents for StderrEvents {
    fn log(&self, level: LogLevel, message: &str) {
        eprintln!("[{level}] {message}");
    }
    fn progress(&self, percent: u8, message: &str) {
        eprintln!("[progress {percent}%] {message}");
    }
}

async fn run_local(config: Config, local: LocalRun) -> Result<ExitCode> {
    let file = config
        .runtime
        .plugins_dir
        .join(format!("{}.wasm", local.plugin));
    if !file.is_file() {
        bail!(
            "no plugin `{}`: {} does not exist (run `just plugins`, or pass --dir)",
            local.plugin,
            file.display()
        );
    }
    let runtime = Runtime::new(config)?;
    runtime.load_file(&file).await;
    let Some(plugin) = runtime.plugin(&local.plugin) else {
        let reason = runtime
            .plugins()
            .into_iter()
            .find(|s| s.id == local.plugin)
            .and_then(|s| s.rejection)
            .unwrap_or_else(|| "unknown reason".into());
        bail!("plugin `{}` was rejected: {reason}", local.plugin);
    };
    let job_type = local
        .job_type
        .unwrap_or_else(|| plugin.info.job_types[0].clone());
    if let Err(e) = runtime.validate(&job_type, &local.spec).await {
        bail!("invalid spec: {e}");
    }
    let job = JobInput {
        id: "local".into(),
        job_type,
        spec: local.spec,
        attempt: 1,
        labels: Default::default(),
    };
    let mut options = RunOptions::new(Arc::new(StderrEvents));
    options.timeout = local.timeout;
    let cancel = options.cancel.clone();
    let mut signal = ShutdownSignal::install()?;
    tokio::spawn(async move {
        signal.received().await;
        cancel.cancel();
    });
    let report = runtime.run(&job, options).await?;
    if local.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &report.outcome {
            jobhost::runtime::RunOutcome::Completed { output } => outln!("{output}"),
            other => eprintln!("{other}"),
        }
    }
    Ok(if report.outcome.is_completed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redacted("redis://:s3cret@db:6379/0"),
            "redis://***@db:6379/0"
        );
        assert_eq!(redacted("rediss://u:p@h:1"), "rediss://***@h:1");
        assert_eq!(redacted("redis://h:1"), "redis://h:1");
    }
}
