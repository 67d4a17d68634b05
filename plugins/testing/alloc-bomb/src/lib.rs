//! `alloc-bomb`: allocates (and touches) memory until the host's memory cap stops it.

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin};

struct AllocBomb;

impl Plugin for AllocBomb {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "alloc-bomb",
            "0.1.0",
            &["alloc-bomb"],
            "Allocates without end (test plugin)",
        )
    }
    fn validate(_spec: String) -> Result<(), String> {
        Ok(())
    }
    fn run(_job: Job) -> Outcome {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

export_plugin!(AllocBomb);
