//! `hello`: the plugin template. `just new-plugin NAME` copies this crate to `plugins/NAME`.
//!
//! Spec: JSON `{"name": "..."}`. Output: a greeting.

use jobhost_plugin_sdk::{Job, Outcome, Plugin, PluginInfo, export_plugin, log, progress};

struct Hello;

const SCHEMA: &str =
    r#"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#;

/// Pulls `"name": "..."` out of the spec (a real plugin would use serde_json).
fn name_of(spec: &str) -> Option<&str> {
    let after = spec
        .split_once("\"name\"")?
        .1
        .trim_start()
        .strip_prefix(':')?;
    let quoted = after.trim_start().strip_prefix('"')?;
    quoted.split_once('"').map(|(name, _)| name)
}

impl Plugin for Hello {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "hello",
            env!("CARGO_PKG_VERSION"),
            &["hello"],
            "Greets someone",
        )
        .with_spec_schema(SCHEMA)
    }

    fn validate(spec: String) -> Result<(), String> {
        match name_of(&spec) {
            Some(name) if !name.is_empty() => Ok(()),
            _ => Err("spec must be JSON like {\"name\": \"Ada\"}".into()),
        }
    }

    fn run(job: Job) -> Outcome {
        let name = name_of(&job.spec).unwrap_or("world");
        log::info(&format!("greeting {name} (attempt {})", job.attempt));
        progress(100, "done");
        Outcome::Completed(format!("{{\"greeting\":\"hello, {name}\"}}"))
    }
}

export_plugin!(Hello);
