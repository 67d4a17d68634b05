//! `noop`: returns its spec as output. With a label `sleep_ms`, first sleeps that long
//! (cut short by cancellation), logging before and after. Rejects specs starting with
//! `reject:` in `validate`.

use std::time::Duration;

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin, log, sleep};

struct Noop;

impl Plugin for Noop {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "noop",
            env!("CARGO_PKG_VERSION"),
            &["noop"],
            "Returns its input",
        )
    }

    fn validate(spec: String) -> Result<(), String> {
        match spec.strip_prefix("reject:") {
            Some(why) => Err(format!("spec rejected: {why}")),
            None => Ok(()),
        }
    }

    fn run(job: Job) -> Outcome {
        if let Some(ms) = job.label("sleep_ms").and_then(|v| v.parse().ok()) {
            log::info(&format!("sleeping {ms} ms"));
            if !sleep(Duration::from_millis(ms)) {
                return Outcome::Failed("cancelled while sleeping".into());
            }
            log::info(&format!("slept {ms} ms"));
        }
        Outcome::Completed(job.spec)
    }
}

export_plugin!(Noop);
