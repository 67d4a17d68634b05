//! `shell`: runs a native command confined in a cgroup (grant: `process`).
//!
//! Spec (JSON): `command` (required), `args`, `env` (object; the whole environment, PATH
//! defaults to /usr/local/bin:/usr/bin:/bin), `cwd`, `limits` {`cpu_percent` (default 100),
//! `memory_mb` (default 512), `pids`, `io_bps` (read and write bytes/s on the disk holding
//! `cwd`; default unlimited)}, `timeout_ms`. The host clamps limits to its
//! configured maxima. Output goes to the job log; exit code 0 completes with a summary,
//! anything else fails saying how it ended.

use std::collections::BTreeMap;

use jobhost_plugin_sdk::process::{self, Command, Limits};
use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    limits: SpecLimits,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SpecLimits {
    cpu_percent: Option<u32>,
    memory_mb: Option<u64>,
    pids: Option<u64>,
    io_bps: Option<u64>,
}

const SCHEMA: &str = r#"{"type":"object","required":["command"],"properties":{"command":{"type":"string","minLength":1},
"args":{"type":"array","items":{"type":"string"}},"env":{"type":"object","additionalProperties":{"type":"string"}},
"cwd":{"type":"string"},"timeout_ms":{"type":"integer","minimum":1},
"limits":{"type":"object","properties":{"cpu_percent":{"type":"integer","minimum":1},"memory_mb":{"type":"integer","minimum":1},"pids":{"type":"integer","minimum":1},"io_bps":{"type":"integer","minimum":1}}}}}"#;

fn parse(spec: &str) -> Result<Spec, String> {
    let spec: Spec = serde_json::from_str(spec).map_err(|e| format!("invalid shell spec: {e}"))?;
    if spec.command.trim().is_empty() {
        return Err("command is required".into());
    }
    let zero = [
        spec.limits.cpu_percent.map(u64::from),
        spec.limits.memory_mb,
        spec.limits.pids,
        spec.limits.io_bps,
    ];
    if zero.contains(&Some(0)) {
        return Err("limits must be at least 1".into());
    }
    Ok(spec)
}

struct Shell;

impl Plugin for Shell {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "shell",
            env!("CARGO_PKG_VERSION"),
            &["shell"],
            "Runs a command confined in a cgroup",
        )
        .with_capabilities(&["process"])
        .with_spec_schema(SCHEMA)
    }

    fn validate(spec: String) -> Result<(), String> {
        parse(&spec).map(|_| ())
    }

    fn run(job: Job) -> Outcome {
        let spec = match parse(&job.spec) {
            Ok(spec) => spec,
            Err(e) => return Outcome::Failed(e),
        };
        let mut env = spec.env;
        env.entry("PATH".into())
            .or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".into());
        let command = Command {
            program: spec.command,
            args: spec.args,
            env: env.into_iter().collect(),
            cwd: spec.cwd,
            limits: Limits {
                cpu_percent: spec.limits.cpu_percent,
                memory_mb: spec.limits.memory_mb,
                pids: spec.limits.pids,
                io_bps: spec.limits.io_bps,
            },
            timeout_ms: spec.timeout_ms,
        };
        let report = match process::run(&command) {
            Ok(report) => report,
            Err(e) => return Outcome::Failed(e),
        };
        let summary = serde_json::json!({
            "exit_code": report.code, "signal": report.signal, "oom_killed": report.oom_killed,
            "timed_out": report.timed_out, "cpu_ms": report.cpu_ms,
            "peak_memory_bytes": report.peak_memory_bytes,
        });
        match (report.code, report.signal) {
            _ if report.oom_killed => Outcome::Failed(format!(
                "out of memory (killed by the OOM killer): {summary}"
            )),
            _ if report.timed_out => Outcome::Failed(format!(
                "timed out after {} ms: {summary}",
                command.timeout_ms.unwrap_or(0)
            )),
            (Some(0), _) => Outcome::Completed(summary.to_string()),
            (Some(code), _) => Outcome::Failed(format!("exit code {code}: {summary}")),
            (None, Some(signal)) => {
                Outcome::Failed(format!("killed by signal {signal}: {summary}"))
            }
            (None, None) => Outcome::Failed(format!("ended without a status: {summary}")),
        }
    }
}

export_plugin!(Shell);
