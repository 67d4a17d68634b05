//! `hello`: the plugin template. `just new-plugin NAME` copies this crate to `plugins/NAME`.
//!
//! Spec: JSON `{"name": "..."}`. Output: a greeting. The SDK's [`TypedPlugin`] parses the
//! spec once for `validate` and `run`; this plugin only says what the spec is and what it
//! does with it.

use jobhost_plugin_sdk::typed::{TypedPlugin, export_typed_plugin};
use jobhost_plugin_sdk::{Job, Outcome, PluginInfo, log, progress};

/// What a job of type `hello` asks for.
#[derive(serde::Deserialize)]
struct Spec {
    /// Who to greet.
    name: String,
}

const SCHEMA: &str = r#"{"type":"object","properties":{"name":{"type":"string","minLength":1}},"required":["name"]}"#;

struct Hello;

impl TypedPlugin for Hello {
    type Spec = Spec;
    const EXAMPLE: Option<&'static str> = Some(r#"{"name": "Ada"}"#);

    fn describe() -> PluginInfo {
        PluginInfo::new(
            "hello",
            env!("CARGO_PKG_VERSION"),
            &["hello"],
            "Greets someone",
        )
        .with_spec_schema(SCHEMA)
    }

    fn check(spec: &Spec) -> Result<(), String> {
        if spec.name.is_empty() {
            return Err(
                r#"spec must be JSON like {"name": "Ada"}: `name` must not be empty"#.into(),
            );
        }
        Ok(())
    }

    fn run(job: &Job, spec: Spec) -> Outcome {
        log::info(&format!("greeting {} (attempt {})", spec.name, job.attempt));
        progress(100, "done");
        Outcome::Completed(
            serde_json::json!({ "greeting": format!("hello, {}", spec.name) }).to_string(),
        )
    }
}

export_typed_plugin!(Hello);
