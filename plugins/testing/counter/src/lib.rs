//! `counter`: counts the attempts its instance has served, in a global, and completes with
//! `call N`, so a test can see whether instances are kept between attempts
//! (`plugins.<id>.reuse`). Spec `trap` traps after counting, `partial` prints (and flushes)
//! a line without its newline first, `grow` allocates past any memory limit, and `sleep:MS` sleeps
//! that long (cut short by cancellation) before it completes.
//!
//! `validate` counts its instance's validations in a global of their own: spec
//! `validate-count` is refused with `validation N`, `validate-busy:MS` is too after
//! spinning MS ms, `validate-trap` traps and `validate-spin` spins until its deadline; any
//! other spec is accepted.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin, sleep};

/// Attempts this instance has served.
static CALLS: AtomicU32 = AtomicU32::new(0);
/// Validations this instance has answered.
static VALIDATIONS: AtomicU32 = AtomicU32::new(0);

struct Counter;

impl Plugin for Counter {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "counter",
            env!("CARGO_PKG_VERSION"),
            &["counter"],
            "Counts its instance's attempts (test plugin)",
        )
    }

    fn validate(spec: String) -> Result<(), String> {
        let n = VALIDATIONS.fetch_add(1, Ordering::Relaxed) + 1;
        match spec.as_str() {
            "validate-count" => Err(format!("validation {n}")),
            "validate-trap" => core::arch::wasm32::unreachable(),
            "validate-spin" => loop {
                std::hint::spin_loop();
            },
            spec => match spec
                .strip_prefix("validate-busy:")
                .and_then(|ms| ms.parse().ok())
            {
                Some(ms) => {
                    let start = std::time::Instant::now();
                    while start.elapsed() < Duration::from_millis(ms) {
                        std::hint::spin_loop();
                    }
                    Err(format!("validation {n}"))
                }
                None => Ok(()),
            },
        }
    }

    fn run(job: Job) -> Outcome {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        match job.spec.as_str() {
            "trap" => core::arch::wasm32::unreachable(),
            "partial" => {
                // Flushed, so the host holds it as an unterminated line.
                print!("no newline after call {calls}");
                let _ = std::io::stdout().flush();
            }
            "grow" => {
                let hoard: Vec<u8> = vec![1; 1 << 30];
                return Outcome::Completed(format!("kept {} bytes", hoard.len()));
            }
            spec => {
                if let Some(ms) = spec.strip_prefix("sleep:").and_then(|ms| ms.parse().ok())
                    && !sleep(Duration::from_millis(ms))
                {
                    return Outcome::Failed(format!("cancelled in call {calls}"));
                }
            }
        }
        Outcome::Completed(format!("call {calls}"))
    }
}

export_plugin!(Counter);
