//! `hostile`: text and sizes a plugin controls, used against the host. Its `describe` puts
//! a newline and a terminal escape sequence in its version and description; `run` does
//! what its spec says (and `validate` refuses `invalid:N` with a message of N bytes):
//!
//! | spec | outcome |
//! |---|---|
//! | `output:N` | completes with an output of N bytes |
//! | `fail:N` | fails with a reason of N bytes |
//! | `log:TEXT` | logs TEXT (with `\n` read as a newline) and completes with `logged` |
//! | `resources:N` | holds N host resources (clock pollables) and completes with `held N` |

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin, log};

struct Hostile;

impl Plugin for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "hostile",
            "6.6.6\nforged-row  loaded  1.0",
            &["hostile"],
            "\u{1b}[2J\u{1b}[31mred alert\u{7}\nsecond line",
        )
    }

    fn validate(spec: String) -> Result<(), String> {
        match spec.strip_prefix("invalid:") {
            Some(n) => Err("v".repeat(n.parse().unwrap_or(0))),
            None => Ok(()),
        }
    }

    fn run(job: Job) -> Outcome {
        let size = |n: &str| n.parse::<usize>().unwrap_or(0);
        if let Some(n) = job.spec.strip_prefix("output:") {
            Outcome::Completed("o".repeat(size(n)))
        } else if let Some(n) = job.spec.strip_prefix("fail:") {
            Outcome::Failed("f".repeat(size(n)))
        } else if let Some(n) = job.spec.strip_prefix("resources:") {
            let held: Vec<_> = (0..size(n))
                .map(|_| wasi::clocks::monotonic_clock::subscribe_duration(1_000_000_000))
                .collect();
            Outcome::Completed(format!("held {}", held.len()))
        } else if let Some(text) = job.spec.strip_prefix("log:") {
            log::info(&text.replace("\\n", "\n"));
            Outcome::Completed("logged".into())
        } else {
            Outcome::Failed(format!("unknown spec {:?}", job.spec))
        }
    }
}

export_plugin!(Hostile);
