//! `jobhost:plugin/process`: native processes confined in cgroups (grant: `process`).
//!
//! The plugin describes the command; the host checks the `process` grant (again: see
//! [`super::GrantCheck`]), clamps the limits to `sandbox.*` maxima, checks the executable
//! against `plugins.<id>.executables` (when set; a refusal goes to the job log), starts it through
//! [`jobhost_sandbox`], and streams its stdout and stderr into the job log. Cancellation
//! stops the whole process tree; a deadline that drops the call does too (the sandboxed
//! process is killed when dropped).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use wasmtime::component::Linker;

use super::CallState;
use super::Capability;
use crate::bindings::jobhost::plugin::process;
use crate::context::CurrentCall;
use crate::output::GuestOutput;
use jobhost_config::SandboxConfig;
use jobhost_sandbox::{CommandSpec, Limits, Options, Sandbox};

/// The `process` capability.
pub struct Process;

impl Capability for Process {
    fn name(&self) -> &'static str {
        "process"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["jobhost:plugin/process"]
    }
    fn link(&self, _linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        // Linked with the rest of the jobhost:plugin world (see `host.rs`); a plugin only
        // imports it, and so only needs the grant, if it calls `run`.
        Ok(())
    }
}

/// Process-wide state of the capability: the detected cgroup setup and the operator's limits.
pub struct ProcessHost {
    sandbox: std::sync::OnceLock<Sandbox>,
    config: SandboxConfig,
}

impl ProcessHost {
    /// Process support with `config`; cgroups are detected on first use.
    pub fn new(config: SandboxConfig) -> Self {
        ProcessHost {
            sandbox: std::sync::OnceLock::new(),
            config,
        }
    }

    /// The cgroup setup, detected (and logged) once; leftovers of a crashed node are removed
    /// then.
    pub fn sandbox(&self) -> &Sandbox {
        self.sandbox.get_or_init(|| {
            let c = &self.config;
            let sandbox = Sandbox::detect_with(Options {
                mount: c.cgroup_root.clone(),
                allow_unconfined: c.allow_unconfined,
                warm_cgroups: c.warm_cgroups,
                warm_limits: Limits {
                    cpu_percent: c.default_cpu_percent,
                    memory_mb: c.default_memory_mb,
                    pids: c.default_pids,
                    io: None,
                },
            });
            sandbox.reap_orphans();
            sandbox
        })
    }

    /// `asked`, with defaults filled in and every value clamped to the configured maxima.
    /// An I/O limit applies to the disk holding `cwd`.
    fn limits(&self, asked: &process::Limits, cwd: &std::path::Path) -> Result<Limits, String> {
        let c = &self.config;
        let io = match asked.io_bps {
            None => None,
            Some(bps) => {
                let (major, minor) = jobhost_sandbox::disk_of(cwd).ok_or_else(|| {
                    format!(
                        "an I/O limit needs the working directory on a block device; {} is not",
                        cwd.display()
                    )
                })?;
                Some((major, minor, bps.max(1)))
            }
        };
        Ok(Limits {
            cpu_percent: asked
                .cpu_percent
                .unwrap_or(c.default_cpu_percent)
                .clamp(1, c.max_cpu_percent),
            memory_mb: asked
                .memory_mb
                .unwrap_or(c.default_memory_mb)
                .clamp(1, c.max_memory_mb),
            pids: asked.pids.unwrap_or(c.default_pids).clamp(1, c.max_pids),
            io,
        })
    }
}

impl process::Host for CallState {
    async fn run(&mut self, command: process::Command) -> Result<process::ExitReport, String> {
        self.grants().require("process")?;
        let host = self.process_host();
        let (plugin, executables) = self.process_policy();
        if !executables.is_empty() && !executables.contains(&command.program) {
            let refusal = format!(
                "executable {:?} is not in plugins.{plugin}.executables",
                command.program
            );
            self.grants().deny("process", &refusal);
            return Err(refusal);
        }
        let cwd = command.cwd.clone().unwrap_or_else(|| "/".into());
        let limits = host.limits(&command.limits, std::path::Path::new(&cwd))?;
        let spec = CommandSpec {
            program: command.program,
            args: command.args,
            env: command.env,
            cwd: command.cwd.map(Into::into),
        };
        let mut child = host
            .sandbox()
            .spawn(&spec, limits)
            .map_err(|e| e.to_string())?;
        tracing::debug!(
            plugin = %plugin,
            program = %spec.program,
            cgroup = child.cgroup_name().unwrap_or("none"),
            "process started"
        );
        let context = self.context_arc();
        let readers = [
            child
                .stdout()
                .map(|out| pump(out, GuestOutput::stdout(CurrentCall::new(context.clone())))),
            child
                .stderr()
                .map(|err| pump(err, GuestOutput::stderr(CurrentCall::new(context.clone())))),
        ];
        let grace = Duration::from_millis(host.config.stop_grace_ms);
        let timeout = command
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(Duration::MAX);
        let mut timed_out = false;
        let status = tokio::select! {
            status = child.exited() => status,
            () = context.cancel.cancelled() => child.terminate(grace).await.map_err(|e| e.to_string())?,
            () = tokio::time::sleep(timeout) => {
                timed_out = true;
                child.terminate(grace).await.map_err(|e| e.to_string())?
            }
        };
        // The job ends with its main process: descendants still holding the pipes open are
        // killed, then whatever is left in the pipes is read to the end.
        child.kill_everything().map_err(|e| e.to_string())?;
        for reader in readers.into_iter().flatten() {
            let _ = reader.await;
        }
        let report = child.report(status).map_err(|e| e.to_string())?;
        Ok(process::ExitReport {
            code: report.code,
            signal: report.signal,
            oom_killed: report.oom_killed,
            cpu_ms: u64::try_from(report.cpu_time.as_millis()).unwrap_or(u64::MAX),
            peak_memory_bytes: report.peak_memory,
            timed_out,
        })
    }
}

/// Backlog (lines) above which a process's output pipe is not read until it drains: the
/// process then blocks on its writes, so fast output is never dropped and memory stays
/// bounded.
const BACKLOG_HIGH: usize = 1024;

/// Copies a pipe into the job log, line by line, until it closes.
fn pump(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    sink: GuestOutput,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while sink.backlog() > BACKLOG_HIGH {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.write_bytes(&buf[..n]),
            }
        }
    })
}

/// Shared handle type stored in each store.
pub type SharedProcessHost = Arc<ProcessHost>;
