//! The kept fuzz inputs: every file in `fuzz/regressions/<target>/` (inputs that once crashed
//! a fuzz target, and hand-made nasty ones) goes through the entry point its cargo-fuzz target
//! calls (`jobhost::fuzzing`). Each must get a verdict, accepted or an error, within a time
//! limit: never a panic, a hang, or a stack overflow. They run on 2 MiB stacks, the size of the
//! tokio worker threads that parse requests in the server.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jobhost::fuzzing::{TARGETS, Verdict};

/// The stack of a tokio worker thread.
const STACK: usize = 2 * 1024 * 1024;

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = crate::common::workspace()
        .join("fuzz/regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

/// A large input kept small: `NAME.repeat.json` is a list of parts, each `{"text": "..."}` or
/// `{"hex": "..."}` with an optional `"times": N`, concatenated (e.g. 100 000 `[`).
fn expand(parts: &str) -> Vec<u8> {
    let parts: Vec<serde_json::Value> = serde_json::from_str(parts).unwrap();
    let mut data = Vec::new();
    for part in parts {
        let bytes = match (part["text"].as_str(), part["hex"].as_str()) {
            (Some(text), None) => text.as_bytes().to_vec(),
            (None, Some(hex)) => hex::decode(hex).unwrap(),
            _ => panic!("a part is text or hex: {part}"),
        };
        let times = part["times"].as_u64().unwrap_or(1) as usize;
        data.extend(bytes.repeat(times));
    }
    data
}

/// Runs `target`'s entry point on each of its kept inputs.
fn replay(target: &str, limit: Duration) {
    let (_, entry) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"));
    let entry = *entry;
    for file in inputs(target) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let data = if name.ends_with(".repeat.json") {
            expand(&std::fs::read_to_string(&file).unwrap())
        } else {
            std::fs::read(&file).unwrap()
        };
        let (tx, rx) = mpsc::channel::<Verdict>();
        let started = Instant::now();
        let worker = std::thread::Builder::new()
            .name(format!("{target}/{name}"))
            .stack_size(STACK)
            .spawn(move || {
                let _ = tx.send(entry(&data));
            })
            .unwrap();
        match rx.recv_timeout(limit) {
            Ok(verdict) => {
                let mut shown = format!("{verdict:?}");
                if shown.len() > 160 {
                    let end = (0..=160)
                        .rev()
                        .find(|&i| shown.is_char_boundary(i))
                        .unwrap();
                    shown.truncate(end);
                    shown.push('…');
                }
                eprintln!("{target}/{name}: {shown} in {:?}", started.elapsed());
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let panic = worker.join().expect_err("no verdict without a panic");
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{target}/{name} panicked: {message}");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{target}/{name} gave no verdict within {limit:?}")
            }
        }
    }
}

#[test]
fn schedule_request() {
    replay("schedule_request", Duration::from_secs(10));
}

#[test]
fn labels() {
    replay("labels", Duration::from_secs(10));
}

#[test]
fn jd_spec() {
    replay("jd_spec", Duration::from_secs(10));
}

#[test]
fn config() {
    replay("config", Duration::from_secs(10));
}

#[test]
fn nodes_file() {
    replay("nodes_file", Duration::from_secs(10));
}

#[test]
fn plugin_loader() {
    replay("plugin_loader", Duration::from_secs(60));
}

#[test]
fn every_target_has_its_test() {
    let source = include_str!("fuzz_regressions.rs");
    for (name, _) in TARGETS {
        assert!(
            source.contains(&format!("fn {name}()")),
            "add a test for the fuzz target {name}"
        );
        let target = crate::common::workspace()
            .join("fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        assert!(target.is_file(), "{} is missing", target.display());
    }
}
