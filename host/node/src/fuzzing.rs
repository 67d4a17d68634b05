//! Entry points for hostile-input fuzzing: the cargo-fuzz targets in `fuzz/` and their
//! regression test (`tests/fuzz_regressions.rs`) call these same functions, so the two
//! cannot drift apart.
//!
//! Each takes arbitrary bytes, feeds them through one path of the host that sees input from
//! outside, and returns the verdict: `Ok` (accepted) or `Err` with the message a client or
//! operator would read. Whatever the bytes, it must return: a panic, a hang or a stack
//! overflow is a bug. Invariants of accepted input are asserted here, so a fuzzer also finds
//! inputs that are accepted but should not be.
//!
//! Not a stable API: it exists for `fuzz/` and the tests.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;

use crate::api::grpc::jd::selectors_in;
use crate::api::grpc::{first_fire, new_job};
use crate::api::http::json::NewJobJson;
use crate::jd::{self, Labels, SelectorOp};
use jobhost_config::{ApiConfig, Config};
use jobhost_proto::api::label;
use jobhost_proto::scheduler::ScheduleJobRequest;
use jobhost_runtime::Runtime;

/// The verdict on one input: accepted, or the error message it got.
pub type Verdict = Result<(), String>;

/// A fuzz target's entry point.
pub type Target = fn(&[u8]) -> Verdict;

/// The fuzz targets, by name (as in `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/regressions/<name>/`), with their entry points.
pub const TARGETS: &[(&str, Target)] = &[
    ("schedule_request", schedule_request),
    ("labels", labels),
    ("jd_spec", jd_spec),
    ("config", config),
    ("nodes_file", nodes_file),
    ("plugin_loader", plugin_loader),
];

/// Text input as the APIs receive it: protobuf and JSON strings are valid UTF-8.
fn text(data: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))
}

/// What an error must be: something a person can read.
fn refused(message: String) -> String {
    assert!(!message.trim().is_empty(), "an error without a message");
    message
}

/// `ScheduleJob` (gRPC) and `POST /v1/jobs` (JSON): every check the host makes before the
/// plugin's `validate` and the store see the request. The first byte chooses the encoding
/// (even: protobuf `ScheduleJobRequest`, odd: the REST body) and scales the limits, so small
/// inputs reach the size checks.
pub fn schedule_request(data: &[u8]) -> Verdict {
    let Some((&mode, body)) = data.split_first() else {
        return Err("empty input".into());
    };
    let mut request = if mode % 2 == 0 {
        ScheduleJobRequest::decode(body).map_err(|e| format!("not a ScheduleJobRequest: {e}"))?
    } else {
        serde_json::from_slice::<NewJobJson>(body)
            .map_err(|e| format!("not a job request: {e}"))?
            .into()
    };
    let limits = match usize::from(mode >> 1) {
        0 => ApiConfig::default(),
        scale => ApiConfig {
            max_spec_bytes: scale * 16,
            max_labels: scale % 16,
            ..ApiConfig::default()
        },
    };
    // As `Scheduler::schedule_job` does.
    let (name, cron) = (request.name.clone(), std::mem::take(&mut request.cron));
    let job = new_job(request, !cron.is_empty(), &limits)
        .map_err(|status| refused(status.message().to_owned()))?;
    if !cron.is_empty() {
        first_fire(&name, &cron).map_err(|status| refused(status.message().to_owned()))?;
    }
    assert!(!job.job_type.is_empty(), "a job without a type");
    assert!(
        job.labels.len() <= limits.max_labels,
        "labels over the limit"
    );
    assert!(job.retry.max_attempts <= 100, "max_attempts over the limit");
    // What the store and the worker later do with an accepted job.
    serde_json::to_string(&job).map_err(|e| refused(e.to_string()))?;
    for attempt in [0, 1, 2, 63, 64, 65, job.retry.max_attempts, u32::MAX] {
        for jitter in [0.0, 0.5, 1.0] {
            job.retry.backoff(attempt, jitter);
        }
    }
    Ok(())
}

/// Job Distributor labels and selectors. The input is UTF-8 lines:
/// `L<key>[=<value>]` is a label (no `=`: no value); `S<op><key>[=<value>]` a selector, where
/// `<op>` is one character: `0`-`5` are EQ, NOT_EQ, IN, NOT_IN, EXIST, NOT_EXIST, others
/// give unknown op numbers. Labels go through the naming rules, selectors through the wire
/// conversion, then every selector is matched against the labels.
pub fn labels(data: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(data);
    let mut pairs = Vec::new();
    let mut selectors = Vec::new();
    let split = |s: &str| match s.split_once('=') {
        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
        None => (s.to_owned(), None),
    };
    for line in text.split('\n') {
        let mut chars = line.chars();
        match chars.next() {
            Some('L') => pairs.push(split(chars.as_str())),
            Some('S') => {
                let op = chars.next().map_or(-1, |c| c as i32 - '0' as i32);
                let (key, value) = split(chars.as_str());
                selectors.push(label::Selector { key, op, value });
            }
            _ => {}
        }
    }
    let raw: Labels = pairs.iter().cloned().collect();
    let selectors = selectors_in(selectors).map_err(|s| refused(s.message().to_owned()))?;
    // Stored labels passed the rules, but matching must not depend on it: try both.
    for labels in [&raw, &jd::labels::parse(pairs.clone()).unwrap_or_default()] {
        jd::labels::all_match(&selectors, labels);
        for s in &selectors {
            let opposite = |op| jd::Selector { op, ..s.clone() }.matches(labels);
            let has_value = labels.get(&s.key).is_some_and(Option::is_some);
            let pairs_up = |a: SelectorOp, b: SelectorOp| {
                assert_ne!(opposite(a), opposite(b), "{a:?} and {b:?} agree on {s:?}");
            };
            pairs_up(SelectorOp::Exist, SelectorOp::NotExist);
            if has_value {
                pairs_up(SelectorOp::Eq, SelectorOp::NotEq);
                pairs_up(SelectorOp::In, SelectorOp::NotIn);
            }
        }
    }
    let parsed = jd::labels::parse(pairs).map_err(|e| refused(e.to_string()))?;
    assert!(
        parsed.len() <= jd::labels::MAX_LABELS,
        "labels over the limit"
    );
    for (key, value) in &parsed {
        for text in std::iter::once(key).chain(value.iter().filter(|v| !v.is_empty())) {
            let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
            assert!(text.chars().count() <= 63, "accepted a long label {text:?}");
            assert!(
                edge_ok(text.chars().next()) && edge_ok(text.chars().last()),
                "accepted {text:?}"
            );
        }
    }
    Ok(())
}

/// The `externalJobID` of a proposed Job Distributor spec (TOML).
pub fn jd_spec(data: &[u8]) -> Verdict {
    let spec = text(data)?;
    let id = jd::spec::external_job_id(spec).map_err(|e| refused(e.to_string()))?;
    assert!(!id.is_empty() && id.trim() == id, "accepted the id {id:?}");
    Ok(())
}

/// A node's config file, as `Config::load` reads it (without environment overrides), then
/// what the host derives from an accepted config.
pub fn config(data: &[u8]) -> Verdict {
    let text = text(data)?;
    let config = Config::from_toml(text).map_err(refused)?;
    // `Config::load_with` also looks whether the file sets api.grpc_addr.
    let _ = text
        .parse::<toml::Table>()
        .is_ok_and(|t| t.get("api").and_then(|a| a.get("grpc_addr")).is_some());
    config.check().map_err(|e| refused(e.to_string()))?;
    config.concurrency();
    config.max_memory_bytes();
    config.runtime.default_timeout();
    for id in config.plugins.keys() {
        jobhost_runtime::policy::PluginPolicy::from_config(&config, id);
    }
    // `jobhost config check` prints it; a value TOML cannot hold is an error, not a panic.
    let _ = toml::to_string_pretty(&config.masked());
    Ok(())
}

/// The Job Distributor's nodes file (YAML).
pub fn nodes_file(data: &[u8]) -> Verdict {
    let text = text(data)?;
    let nodes = jd::nodes_file::parse(text).map_err(refused)?;
    for node in nodes.iter() {
        assert!(
            !node.name.trim().is_empty(),
            "accepted a node without a name"
        );
    }
    Ok(())
}

/// The runtime that [`plugin_loader`] loads through, and the folder it writes files to.
struct Loader {
    tokio: tokio::runtime::Runtime,
    runtime: Runtime,
    dir: PathBuf,
}

fn loader() -> &'static Loader {
    static LOADER: OnceLock<Loader> = OnceLock::new();
    LOADER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("jobhost-fuzz-{}", std::process::id()));
        let mut config = Config::default();
        config.runtime.plugins_dir = dir.clone();
        // Nothing on disk besides the plugin file, no address-space reservation, and no
        // cgroups: a plugin granted nothing cannot start processes anyway.
        config.runtime.cache = false;
        config.runtime.pooling = false;
        config.runtime.max_instances = 2;
        config.sandbox.cgroup_root = dir.join("no-cgroups");
        config.sandbox.warm_cgroups = 0;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let runtime = {
            let _entered = tokio.enter();
            Runtime::new(config).expect("the runtime")
        };
        Loader {
            tokio,
            runtime,
            dir,
        }
    })
}

/// Arbitrary bytes as a `.wasm` file in the plugins folder, loaded as `jobhost plugins
/// inspect` and the folder watcher load it (compiled, imports checked against the grants,
/// `describe` called). Seeded with real plugins, the fuzzer mutates components.
pub fn plugin_loader(data: &[u8]) -> Verdict {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let loader = loader();
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let file = loader.dir.join(format!("fuzzed-{call}.wasm"));
    std::fs::create_dir_all(&loader.dir).expect("creating the fuzz folder");
    std::fs::write(&file, data).expect("writing the plugin file");
    let inspection = loader.tokio.block_on(loader.runtime.inspect(&file));
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir(&loader.dir);
    match inspection.result {
        Ok(plugin) => {
            assert!(
                !plugin.info.job_types.is_empty(),
                "a plugin serving nothing"
            );
            Ok(())
        }
        Err(rejection) => Err(refused(rejection.error.to_string())),
    }
}
