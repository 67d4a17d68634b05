//! `recursion`: recurses without bound until the stack runs out.

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin};

struct Recursion;

#[inline(never)]
#[allow(unconditional_recursion)] // the point of this plugin
fn deeper(depth: u64, pad: [u64; 16]) -> u64 {
    let pad = std::hint::black_box(pad);
    deeper(depth + 1, pad) + pad[(depth % 16) as usize]
}

impl Plugin for Recursion {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "recursion",
            "0.1.0",
            &["recursion"],
            "Recurses forever (test plugin)",
        )
    }
    fn validate(_spec: String) -> Result<(), String> {
        Ok(())
    }
    fn run(_job: Job) -> Outcome {
        Outcome::Completed(deeper(0, [1; 16]).to_string())
    }
}

export_plugin!(Recursion);
