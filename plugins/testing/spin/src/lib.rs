//! `spin`: never returns; burns CPU until the host's deadline stops it. Its `validate`
//! does the same for the spec `spin` (and accepts any other).

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin};

struct Spin;

impl Plugin for Spin {
    fn describe() -> PluginInfo {
        PluginInfo::new("spin", "0.1.0", &["spin"], "Loops forever (test plugin)")
    }
    fn validate(spec: String) -> Result<(), String> {
        if spec == "spin" {
            burn();
        }
        Ok(())
    }
    fn run(_job: Job) -> Outcome {
        burn()
    }
}

fn burn() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

export_plugin!(Spin);
