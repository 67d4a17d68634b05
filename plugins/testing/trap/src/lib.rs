//! `trap`: fails in the way its spec names: `panic` (a Rust panic with a message),
//! `long-panic` (a panic whose message is 10 KiB), `unreachable` (a raw wasm trap), `oob`
//! (a load outside linear memory), or `exit:N` (`std::process::exit(N)`).

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin};

struct Trap;

impl Plugin for Trap {
    fn describe() -> PluginInfo {
        PluginInfo::new("trap", "0.1.0", &["trap"], "Traps on purpose (test plugin)")
    }
    fn validate(spec: String) -> Result<(), String> {
        match spec.as_str() {
            "panic" | "long-panic" | "unreachable" | "oob" => Ok(()),
            exit if exit
                .strip_prefix("exit:")
                .is_some_and(|n| n.parse::<i32>().is_ok()) =>
            {
                Ok(())
            }
            other => Err(format!(
                "unknown trap kind {other:?}: use panic, long-panic, unreachable, oob or exit:N"
            )),
        }
    }
    fn run(job: Job) -> Outcome {
        match job.spec.as_str() {
            "panic" => panic!("boom: the plugin gave up"),
            "long-panic" => panic!("long: {}", "x".repeat(10 * 1024)),
            exit if exit.starts_with("exit:") => {
                std::process::exit(exit[5..].parse().unwrap_or(1));
            }
            "unreachable" => core::arch::wasm32::unreachable(),
            _ => {
                let address = std::hint::black_box(usize::MAX - 15);
                // SAFETY: not safe at all; the point is that the host turns it into a trap.
                let value = unsafe { std::ptr::read_volatile(address as *const u64) };
                Outcome::Completed(value.to_string())
            }
        }
    }
}

export_plugin!(Trap);
