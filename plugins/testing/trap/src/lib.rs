//! `trap`: fails in the way its spec names: `panic` (a Rust panic with a message),
//! `unreachable` (a raw wasm trap), or `oob` (a load outside linear memory).

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin};

struct Trap;

impl Plugin for Trap {
    fn describe() -> PluginInfo {
        PluginInfo::new("trap", "0.1.0", &["trap"], "Traps on purpose (test plugin)")
    }
    fn validate(spec: String) -> Result<(), String> {
        match spec.as_str() {
            "panic" | "unreachable" | "oob" => Ok(()),
            other => Err(format!(
                "unknown trap kind {other:?}: use panic, unreachable or oob"
            )),
        }
    }
    fn run(job: Job) -> Outcome {
        match job.spec.as_str() {
            "panic" => panic!("boom: the plugin gave up"),
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
