//! `flaky`: asks to be retried (after 50 ms) until its attempt number exceeds the number in
//! its spec, then completes with `succeeded on attempt N`. Spec `fail` fails for good, and
//! `trap` traps on every attempt.

use std::time::Duration;

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin};

struct Flaky;

impl Plugin for Flaky {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "flaky",
            "0.1.0",
            &["flaky"],
            "Fails N times, then succeeds (test plugin)",
        )
    }
    fn validate(spec: String) -> Result<(), String> {
        match spec.as_str() {
            "fail" | "trap" => Ok(()),
            n => n
                .parse::<u32>()
                .map(|_| ())
                .map_err(|_| "spec must be a number, fail or trap".into()),
        }
    }
    fn run(job: Job) -> Outcome {
        match job.spec.as_str() {
            "fail" => Outcome::Failed("failed on purpose".into()),
            "trap" => core::arch::wasm32::unreachable(),
            n => {
                let failures: u32 = n.parse().unwrap_or(0);
                if job.attempt <= failures {
                    Outcome::retry_after(
                        Duration::from_millis(50),
                        format!("attempt {} failed", job.attempt),
                    )
                } else {
                    Outcome::Completed(format!("succeeded on attempt {}", job.attempt))
                }
            }
        }
    }
}

export_plugin!(Flaky);
