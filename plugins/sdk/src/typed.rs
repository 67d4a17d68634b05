//! Plugins whose spec is a typed value: the SDK parses the JSON spec once, the same way for
//! `validate` and `run`, so a plugin writes its parsing and checks once.
//!
//! ```ignore
//! use jobhost_plugin_sdk::typed::{TypedPlugin, export_typed_plugin};
//! use jobhost_plugin_sdk::{Job, Outcome, PluginInfo};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Spec { name: String }
//!
//! struct Hello;
//!
//! impl TypedPlugin for Hello {
//!     type Spec = Spec;
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("hello", env!("CARGO_PKG_VERSION"), &["hello"], "Greets")
//!     }
//!     fn check(spec: &Spec) -> Result<(), String> {
//!         if spec.name.is_empty() { Err("`name` must not be empty".into()) } else { Ok(()) }
//!     }
//!     fn run(_job: &Job, spec: Spec) -> Outcome {
//!         Outcome::Completed(format!("hello, {}", spec.name))
//!     }
//! }
//!
//! export_typed_plugin!(Hello);
//! ```

use crate::{Job, Outcome, PluginInfo};

/// A plugin with a typed spec. `validate` is [`parse`] then [`TypedPlugin::check`]; `run`
/// gets the spec parsed and checked the same way (a job is validated when submitted, but a
/// plugin update may have changed the rules since: then the attempt fails with the reason).
pub trait TypedPlugin {
    /// The spec, as JSON deserializes into it (`#[serde(deny_unknown_fields)]` refuses typos).
    type Spec: serde::de::DeserializeOwned;

    /// A spec that works, shown in every parse error: `spec must be JSON like <EXAMPLE>:
    /// missing field `name` at line 1 column 2`.
    const EXAMPLE: Option<&'static str> = None;

    /// What the plugin says about itself (called once, at load).
    fn describe() -> PluginInfo;

    /// Checks what the type alone cannot say (ranges, forms); the message reaches the
    /// submitter as it is.
    fn check(_spec: &Self::Spec) -> Result<(), String> {
        Ok(())
    }

    /// Runs one attempt with the parsed, checked spec.
    fn run(job: &Job, spec: Self::Spec) -> Outcome;
}

/// Parses and checks `spec` for plugin `P`: the message says what is wrong, and where.
pub fn parse<P: TypedPlugin>(spec: &str) -> Result<P::Spec, String> {
    // The host says "invalid spec for job type ..." around it already.
    let parsed: P::Spec = serde_json::from_str(spec).map_err(|e| match P::EXAMPLE {
        Some(example) => format!("spec must be JSON like {example}: {e}"),
        None => e.to_string(),
    })?;
    P::check(&parsed)?;
    Ok(parsed)
}

/// `validate` of plugin `P` (used by [`export_typed_plugin!`]).
pub fn validate<P: TypedPlugin>(spec: &str) -> Result<(), String> {
    parse::<P>(spec).map(drop)
}

/// `run` of plugin `P` (used by [`export_typed_plugin!`]).
pub fn run<P: TypedPlugin>(job: Job) -> Outcome {
    match parse::<P>(&job.spec) {
        Ok(spec) => P::run(&job, spec),
        Err(reason) => Outcome::Failed(format!("invalid spec: {reason}")),
    }
}

/// Exports a [`TypedPlugin`] as the component's `describe`, `validate` and `run`.
#[macro_export]
macro_rules! export_typed_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __JobhostTypedPlugin;

        impl $crate::Plugin for __JobhostTypedPlugin {
            fn describe() -> $crate::PluginInfo {
                <$plugin as $crate::typed::TypedPlugin>::describe()
            }
            fn validate(spec: String) -> Result<(), String> {
                $crate::typed::validate::<$plugin>(&spec)
            }
            fn run(job: $crate::Job) -> $crate::Outcome {
                $crate::typed::run::<$plugin>(job)
            }
        }

        $crate::export_plugin!(__JobhostTypedPlugin);
    };
}

pub use crate::export_typed_plugin;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Spec {
        n: u32,
    }

    struct Doubler;

    impl TypedPlugin for Doubler {
        type Spec = Spec;
        const EXAMPLE: Option<&'static str> = Some(r#"{"n": 2}"#);
        fn describe() -> PluginInfo {
            PluginInfo::new("doubler", "1", &["doubler"], "Doubles")
        }
        fn check(spec: &Spec) -> Result<(), String> {
            if spec.n > 100 {
                return Err("`n` must be at most 100".into());
            }
            Ok(())
        }
        fn run(_job: &Job, spec: Spec) -> Outcome {
            Outcome::Completed((spec.n * 2).to_string())
        }
    }

    fn job(spec: &str) -> Job {
        Job {
            id: "j".into(),
            job_type: "doubler".into(),
            spec: spec.into(),
            attempt: 1,
            labels: Vec::new(),
        }
    }

    #[test]
    fn the_spec_is_parsed_and_checked_the_same_way_for_validate_and_run() {
        assert_eq!(validate::<Doubler>(r#"{"n": 3}"#), Ok(()));
        let missing = validate::<Doubler>("{}").unwrap_err();
        assert!(
            missing.starts_with(r#"spec must be JSON like {"n": 2}: missing field `n`"#),
            "{missing}"
        );
        assert_eq!(
            validate::<Doubler>(r#"{"n": 101}"#),
            Err("`n` must be at most 100".into())
        );
        assert!(matches!(run::<Doubler>(job(r#"{"n": 21}"#)), Outcome::Completed(o) if o == "42"));
        // A job accepted by an older build, refused by this one, fails with the reason.
        assert!(matches!(
            run::<Doubler>(job(r#"{"n": 101}"#)),
            Outcome::Failed(r) if r == "invalid spec: `n` must be at most 100"
        ));
    }
}
