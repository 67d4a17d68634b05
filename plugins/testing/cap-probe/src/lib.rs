//! `cap-probe`: a plugin that reaches for capabilities and reports what the host answered,
//! so tests can check grant enforcement from the guest's side. It imports `kv`, `wasi:http`
//! and `process`, so it only loads with all three granted; tests then revoke grants at run
//! time, send requests outside `allowed_hosts`, start executables outside `executables`.
//!
//! The spec is one command per line; the output has one result line per command:
//!
//! | command | result |
//! |---|---|
//! | `kv.get KEY` | `value:<text>` or `none` |
//! | `kv.set KEY VALUE` | `ok` |
//! | `kv.delete KEY` | `deleted:<bool>` |
//! | `kv.list [PREFIX]` | `keys:<k1>,<k2>,...` |
//! | `http.get URL` | `status:<code>` |
//! | `process.run PROGRAM [ARG...]` | `exit:<code>` |
//! | `sleep MS` | `slept` |
//!
//! and `err:<message>` for any error. An argument `*N` stands for N repetitions of `x`
//! (for size limits). A spec whose first line is `validate` runs the rest in `validate()`
//! and fails validation with the results (so they reach the caller). `describe()` tries
//! `kv.get` too and puts the answer in its description.

use std::time::Duration;

use jobhost_plugin_sdk::process::{Command, Limits};
use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin, http, kv, process};

struct CapProbe;

/// `*N` → N times `x`; anything else as is.
fn arg(token: &str) -> String {
    match token
        .strip_prefix('*')
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) => "x".repeat(n),
        None => token.to_owned(),
    }
}

fn one(line: &str) -> Result<String, String> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or("");
    let args: Vec<String> = words.map(arg).collect();
    let first = || args.first().cloned().unwrap_or_default();
    match command {
        "kv.get" => Ok(match kv::get_string(&first())? {
            Some(value) => format!("value:{value}"),
            None => "none".into(),
        }),
        "kv.set" => {
            let value = args.get(1).cloned().unwrap_or_default();
            kv::set(&first(), value).map(|()| "ok".into())
        }
        "kv.delete" => kv::delete(&first()).map(|d| format!("deleted:{d}")),
        "kv.list" => kv::list_keys(&first()).map(|keys| format!("keys:{}", keys.join(","))),
        "http.get" => {
            let url = first();
            let request = http::Request {
                method: "GET",
                url: &url,
                timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            };
            http::send(&request)
                .map(|r| format!("status:{}", r.status))
                .map_err(|e| e.to_string())
        }
        "process.run" => {
            let command = Command {
                program: first(),
                args: args.iter().skip(1).cloned().collect(),
                env: Vec::new(),
                cwd: None,
                limits: Limits {
                    cpu_percent: None,
                    memory_mb: None,
                    pids: None,
                    io_bps: None,
                },
                timeout_ms: Some(10_000),
            };
            process::run(&command).map(|r| format!("exit:{}", r.code.unwrap_or(-1)))
        }
        "sleep" => {
            let ms = first().parse().unwrap_or(0);
            jobhost_plugin_sdk::sleep(Duration::from_millis(ms));
            Ok("slept".into())
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn script<'a>(lines: impl Iterator<Item = &'a str>) -> String {
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| one(line).unwrap_or_else(|e| format!("err:{e}")))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Plugin for CapProbe {
    fn describe() -> PluginInfo {
        let in_describe = match kv::get("probe") {
            Ok(_) => "kv readable".to_owned(),
            Err(e) => e,
        };
        PluginInfo::new(
            "cap-probe",
            "0.1.0",
            &["cap-probe"],
            &format!("Reaches for capabilities (test plugin); kv in describe: {in_describe}"),
        )
        .with_capabilities(&["kv", "http", "process"])
    }

    fn validate(spec: String) -> Result<(), String> {
        let mut lines = spec.lines();
        if lines.next() == Some("validate") {
            return Err(script(lines));
        }
        Ok(())
    }

    fn run(job: Job) -> Outcome {
        Outcome::Completed(script(job.spec.lines()))
    }
}

export_plugin!(CapProbe);
