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

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use jobhost_config::{Config, ConfigError};

mod certs;
mod configs;
mod plugins;
mod run_local;
mod serve;

use certs::CertsCommand;
use configs::ConfigCommand;
use plugins::{PluginsCommand, StateAction};
use run_local::LocalRun;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that need no configuration of their own.
    let standalone = match &cli.command {
        Command::Certs { command } => Some(certs::certs_command(command)),
        Command::Config { command } => Some(configs::config_command(command)),
        _ => None,
    };
    if let Some(result) = standalone {
        return result.unwrap_or_else(|e| {
            eprintln!("jobhost: {e:#}");
            ExitCode::FAILURE
        });
    }
    let config = match load_config(cli.config.as_deref()) {
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

/// Reads the configuration (`file`, then the `JOBHOST_*` environment) and checks all of it:
/// each section, and each capability's fields of `[plugins.<id>]`.
pub(crate) fn load_config(file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
    let config = Config::load(file)?;
    jobhost_runtime::check_config(&config)?;
    Ok(config)
}

/// Logs to stderr: human-readable, or one JSON object per line (`log.format = "json"` or
/// `JOBHOST_LOG_FORMAT=json`; spans included: a job's lines carry its id, type, plugin
/// version, node and attempt). The level is `log.level` (overridden by `JOBHOST_LOG`,
/// `RUST_LOG` or `JD_LOG_LEVEL`), else `default_level`.
fn init_logging(log: &jobhost_config::LogConfig, default_level: &str) {
    use std::io::IsTerminal;
    let mut filter = log.level.clone().unwrap_or_else(|| default_level.into());
    // PostgreSQL's NOTICEs (e.g. "relation … already exists, skipping" at every start) are
    // logged at info by tokio-postgres: not news to an operator unless asked for.
    if !filter.contains("tokio_postgres") {
        filter.push_str(",tokio_postgres=warn");
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        // A closed stderr (a supervisor gone away) must not crash the node.
        .log_internal_errors(false);
    if log.format == jobhost_config::LogFormat::Json {
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
            serve::serve(config, dev).await
        }
        Command::Plugins { command } => match command {
            PluginsCommand::List { dir, json } => {
                set_dir(&mut config, dir);
                plugins::plugins_list(config, json).await
            }
            PluginsCommand::Inspect { file, json } => {
                plugins::plugins_inspect(config, &file, json).await
            }
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
                plugins::plugins_state(config, &plugin, action, json).await
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
                spec: run_local::read_spec(&spec)?,
                job_type,
                timeout: timeout_ms.map(Duration::from_millis),
                json,
            };
            run_local::run_local(config, local).await
        }
        // Answered by main without loading the config; the same answer here.
        Command::Config { command } => configs::config_command(&command),
        Command::Certs { command } => certs::certs_command(&command),
    }
}

fn set_dir(config: &mut Config, dir: Option<PathBuf>) {
    if let Some(dir) = dir {
        config.runtime.plugins_dir = dir;
    }
}
