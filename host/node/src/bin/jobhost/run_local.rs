//! `jobhost run-local`: one job in-process, without Redis, for plugin authors.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use jobhost_config::Config;
use jobhost_runtime::{JobEvents, JobInput, LogLevel, RunOptions, Runtime};

use crate::serve::ShutdownSignal;

/// One local run, as the command line asked for it.
pub(crate) struct LocalRun {
    /// The plugin id.
    pub plugin: String,
    /// The job spec.
    pub spec: String,
    /// The job type (default: the plugin's first).
    pub job_type: Option<String>,
    /// The deadline (default: the plugin's).
    pub timeout: Option<Duration>,
    /// Print the whole report as JSON.
    pub json: bool,
}

pub(crate) fn read_spec(path: &Path) -> Result<String> {
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
pub(crate) struct StderrEvents;

impl JobEvents for StderrEvents {
    fn log(&self, level: LogLevel, message: &str) {
        eprintln!("[{level}] {}", jobhost::text::printable(message));
    }
    fn progress(&self, percent: u8, message: &str) {
        eprintln!(
            "[progress {percent}%] {}",
            jobhost::text::printable(message)
        );
    }
}

pub(crate) async fn run_local(config: Config, local: LocalRun) -> Result<ExitCode> {
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
            jobhost_runtime::RunOutcome::Completed { output } => outln!("{output}"),
            other => eprintln!("{other}"),
        }
    }
    Ok(if report.outcome.is_completed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
