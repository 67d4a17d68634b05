//! `log-flood`: logs through the host API and prints to stdout without end.

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin, log};

struct LogFlood;

impl Plugin for LogFlood {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "log-flood",
            "0.1.0",
            &["log-flood"],
            "Logs without end (test plugin)",
        )
    }
    fn validate(_spec: String) -> Result<(), String> {
        Ok(())
    }
    fn run(_job: Job) -> Outcome {
        let line = "x".repeat(1000);
        let mut n: u64 = 0;
        loop {
            n += 1;
            log::info(&format!("{n} {line}"));
            println!("stdout {n} {line}");
        }
    }
}

export_plugin!(LogFlood);
