//! The component runtime against real components built from `plugins/`: every misbehaving
//! plugin is contained with a precise reason and the host keeps serving; grants, limits,
//! cancellation, back-pressure and the compiled-component cache.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use jobhost_runtime::{CrashKind, LoadError, RunOutcome, ValidateError};

async fn runtime_with(
    names: &[&str],
    tweak: impl FnOnce(&mut jobhost_config::Config),
) -> (tempfile::TempDir, jobhost_runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), names);
    let mut config = config(dir.path());
    tweak(&mut config);
    let runtime = runtime(config).await;
    (dir, runtime)
}

/// After any containment, the same runtime still runs a normal job.
async fn assert_still_serves(runtime: &jobhost_runtime::Runtime) {
    let (opts, _) = options(None);
    let report = runtime
        .run(&job("noop", "still alive"), opts)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Completed {
            output: "still alive".into()
        }
    );
}

fn crash(outcome: &RunOutcome) -> (CrashKind, &str) {
    match outcome {
        RunOutcome::Crashed { kind, reason } => (*kind, reason.as_str()),
        other => panic!("expected a crash, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noop_returns_its_input_and_reports_which_build_ran() {
    let (_dir, runtime) = runtime_with(&["noop"], |_| {}).await;
    let (opts, _) = options(None);
    let report = runtime.run(&job("noop", r#"{"x":1}"#), opts).await.unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Completed {
            output: r#"{"x":1}"#.into()
        }
    );
    assert_eq!(report.plugin_id, "noop");
    let expected = jobhost_runtime::plugin::digest(&std::fs::read(plugin_file("noop")).unwrap());
    assert_eq!(report.plugin_digest, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spin_loop_is_stopped_at_its_deadline() {
    let (_dir, runtime) = runtime_with(&["noop", "spin"], |_| {}).await;
    let (opts, _) = options(Some(Duration::from_millis(300)));
    let report = runtime.run(&job("spin", ""), opts).await.unwrap();
    assert_eq!(
        crash(&report.outcome),
        (CrashKind::Deadline, "deadline 300ms exceeded")
    );
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_deadline_comes_from_plugin_config() {
    let (_dir, runtime) = runtime_with(&["noop", "spin"], |c| {
        c.plugins.entry("spin".into()).or_default().timeout_ms = Some(1000);
    })
    .await;
    let (opts, _) = options(None);
    let report = runtime.run(&job("spin", ""), opts).await.unwrap();
    assert_eq!(
        crash(&report.outcome),
        (CrashKind::Deadline, "deadline 1s exceeded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocation_bomb_hits_the_memory_limit() {
    let (_dir, runtime) = runtime_with(&["noop", "alloc-bomb"], |c| {
        c.plugins
            .entry("alloc-bomb".into())
            .or_default()
            .memory_limit_mb = Some(16);
    })
    .await;
    let (opts, _) = options(None);
    let report = runtime.run(&job("alloc-bomb", ""), opts).await.unwrap();
    assert_eq!(
        crash(&report.outcome),
        (CrashKind::MemoryLimit, "memory limit 16 MiB exceeded")
    );
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_panic_is_reported_with_its_message() {
    let (_dir, runtime) = runtime_with(&["noop", "trap"], |_| {}).await;
    let (opts, events) = options(None);
    let report = runtime.run(&job("trap", "panic"), opts).await.unwrap();
    let (kind, reason) = crash(&report.outcome);
    assert_eq!(kind, CrashKind::Panic);
    assert!(
        reason.starts_with("plugin panicked: boom: the plugin gave up"),
        "{reason}"
    );
    assert!(
        events.has("panicked at"),
        "the panic's stderr reaches the job log"
    );
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_traps_are_reported_with_the_trap_text() {
    let (_dir, runtime) = runtime_with(&["noop", "trap"], |_| {}).await;
    for (spec, text) in [
        ("unreachable", "wasm `unreachable` instruction executed"),
        ("oob", "out of bounds memory access"),
    ] {
        let (opts, _) = options(None);
        let report = runtime.run(&job("trap", spec), opts).await.unwrap();
        let (kind, reason) = crash(&report.outcome);
        assert_eq!(kind, CrashKind::Trap, "{spec}");
        assert!(
            reason.starts_with("wasm trap: ") && reason.contains(text),
            "{spec}: {reason}"
        );
    }
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_exhausts_the_stack_not_the_host() {
    let (_dir, runtime) = runtime_with(&["noop", "recursion"], |_| {}).await;
    let (opts, _) = options(None);
    let report = runtime.run(&job("recursion", ""), opts).await.unwrap();
    let (kind, reason) = crash(&report.outcome);
    assert_eq!(kind, CrashKind::Trap);
    assert!(reason.starts_with("wasm trap: "), "{reason}");
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_flood_is_capped_by_the_log_budget() {
    let (_dir, runtime) = runtime_with(&["noop", "log-flood"], |c| {
        c.runtime.log_limit_bytes = 64 * 1024;
    })
    .await;
    let (opts, events) = options(Some(Duration::from_millis(500)));
    let report = runtime.run(&job("log-flood", ""), opts).await.unwrap();
    assert_eq!(crash(&report.outcome).0, CrashKind::Deadline);
    assert!(
        report.logs_dropped > 0,
        "lines beyond the budget are dropped"
    );
    let marker = "log limit of 65536 bytes reached; further lines are dropped";
    assert!(events.has(marker));
    // Everything kept fits the budget (plus the one marker line).
    assert!(
        events.bytes() <= 64 * 1024 + marker.len(),
        "{} bytes kept",
        events.bytes()
    );
    assert!(events.has("stdout 1 "), "stdout lines reach the log");
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_sleep_past_the_deadline_is_cut_off() {
    let (_dir, runtime) = runtime_with(&["noop"], |_| {}).await;
    let (opts, _) = options(Some(Duration::from_millis(200)));
    let mut sleepy = job("noop", "");
    sleepy.labels.insert("sleep_ms".into(), "60000".into());
    let report = runtime.run(&sleepy, opts).await.unwrap();
    assert_eq!(
        crash(&report.outcome),
        (CrashKind::Deadline, "deadline 200ms exceeded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_wakes_a_sleeping_plugin() {
    let (_dir, runtime) = runtime_with(&["noop"], |_| {}).await;
    let (opts, events) = options(None);
    let cancel = opts.cancel.clone();
    let mut sleepy = job("noop", "");
    sleepy.labels.insert("sleep_ms".into(), "60000".into());
    let run = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.run(&sleepy, opts).await }
    });
    assert!(
        eventually(Duration::from_secs(10), || events.has("sleeping 60000 ms"))
            .await
            .is_some()
    );
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("a cancelled sleep returns long before the 60 s sleep would")
        .unwrap()
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_interrupts_a_plugin_that_ignores_it() {
    let (_dir, runtime) = runtime_with(&["spin"], |c| c.runtime.cancel_grace_ms = 100).await;
    let (opts, _) = options(Some(Duration::from_secs(60)));
    let cancel = opts.cancel.clone();
    let run = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.run(&job("spin", ""), opts).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    let report = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("interrupted after the grace period, long before the 60 s deadline")
        .unwrap()
        .unwrap();
    assert_eq!(report.outcome, RunOutcome::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_returns_the_plugins_own_message() {
    let (_dir, runtime) = runtime_with(&["noop"], |_| {}).await;
    assert_eq!(runtime.validate("noop", "fine").await, Ok(()));
    assert_eq!(
        runtime.validate("noop", "reject:too big").await,
        Err(ValidateError::Invalid("spec rejected: too big".into()))
    );
    assert_eq!(
        runtime.validate("nope", "").await,
        Err(ValidateError::NoPlugin("nope".into()))
    );
    let (opts, _) = options(None);
    let err = runtime.run(&job("nope", ""), opts).await.unwrap_err();
    assert_eq!(err.to_string(), "no loaded plugin serves job type `nope`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ungranted_import_is_rejected_naming_interface_and_config_key() {
    let (_dir, runtime) = runtime_with(&["noop", "net-probe"], |_| {}).await;
    assert!(runtime.plugin_for("net-probe").is_none());
    let status = runtime
        .plugins()
        .into_iter()
        .find(|s| s.id == "net-probe")
        .unwrap();
    assert_eq!(status.status, "rejected");
    let reason = status.rejection.unwrap();
    assert!(reason.contains("imports wasi:sockets/"), "{reason}");
    assert!(
        reason.contains("`plugins.net-probe.grants = [\"network\"]`"),
        "{reason}"
    );
    let denied = status.imports.iter().filter(|i| !i.granted).count();
    assert!(
        denied > 0
            && status
                .imports
                .iter()
                .all(|i| i.granted || i.capability == Some("network"))
    );
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_network_lets_the_plugin_connect() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 6];
        tokio::io::AsyncReadExt::read_exact(&mut socket, &mut buf)
            .await
            .unwrap();
        buf
    });
    let (_dir, runtime) = runtime_with(&["net-probe"], |c| {
        c.plugins.entry("net-probe".into()).or_default().grants = vec!["network".into()];
    })
    .await;
    let (opts, _) = options(None);
    let report = runtime
        .run(&job("net-probe", &addr.to_string()), opts)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Completed {
            output: format!("connected to {addr}")
        }
    );
    assert_eq!(&accepted.await.unwrap(), b"probe\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_queues_jobs_instead_of_failing_them() {
    let (_dir, runtime) = runtime_with(&["noop"], |c| c.runtime.max_instances = 2).await;
    let mut runs = Vec::new();
    for i in 0..6 {
        let runtime = runtime.clone();
        let mut sleepy = job("noop", &i.to_string());
        sleepy.labels.insert("sleep_ms".into(), "200".into());
        runs.push(tokio::spawn(async move {
            let (opts, _) = options(None);
            runtime.run(&sleepy, opts).await.unwrap().outcome
        }));
    }
    for (i, run) in runs.into_iter().enumerate() {
        assert_eq!(
            run.await.unwrap(),
            RunOutcome::Completed {
                output: i.to_string()
            }
        );
    }
    assert_eq!(runtime.stats().free_slots, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_start_loads_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop"]);
    let mut cfg = config(dir.path());
    cfg.runtime.cache_dir = Some(cache.path().to_owned());
    cfg.runtime.cache = true;

    let first = runtime(cfg.clone()).await;
    assert_eq!(
        (first.stats().cache.compiled, first.stats().cache.hits),
        (1, 0)
    );
    drop(first);

    let second = runtime(cfg).await;
    assert_eq!(
        (second.stats().cache.compiled, second.stats().cache.hits),
        (0, 1)
    );
    assert_still_serves(&second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_cache_entry_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop"]);
    let mut cfg = config(dir.path());
    cfg.runtime.cache_dir = Some(cache.path().to_owned());
    cfg.runtime.cache = true;
    drop(runtime(cfg.clone()).await);
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let again = runtime(cfg).await;
    assert_eq!(
        (again.stats().cache.compiled, again.stats().cache.hits),
        (1, 0)
    );
    assert_still_serves(&again).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_types_cannot_be_served_twice() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop"]);
    install_bytes(
        dir.path(),
        "noop-copy",
        &std::fs::read(plugin_file("noop")).unwrap(),
    );
    let runtime = runtime(config(dir.path())).await;
    // Files load in name order, so `noop-copy.wasm` takes the type first.
    let noop = runtime
        .plugins()
        .into_iter()
        .find(|s| s.id == "noop")
        .unwrap();
    let taken = LoadError::JobTypeTaken {
        job_type: "noop".into(),
        other: "noop-copy".into(),
    };
    assert_eq!(noop.status, "rejected");
    assert_eq!(noop.rejection, Some(taken.to_string()));
    assert_eq!(runtime.plugin_for("noop").unwrap().id, "noop-copy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooling_falls_back_to_on_demand_when_the_reservation_fails() {
    // 4M slots of 64 MiB is more address space than x86-64 user space has.
    let (_dir, runtime) = runtime_with(&["noop"], |c| c.runtime.max_instances = 1 << 22).await;
    assert_eq!(
        runtime.stats().allocator,
        jobhost_runtime::engine::Allocator::OnDemand
    );
    assert_still_serves(&runtime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_logs_reach_the_events_sink() {
    let (_dir, runtime) = runtime_with(&["hello"], |_| {}).await;
    let (opts, events) = options(None);
    let report = runtime
        .run(&job("hello", r#"{"name":"Ada"}"#), opts)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Completed {
            output: r#"{"greeting":"hello, Ada"}"#.into()
        }
    );
    assert!(events.has("greeting Ada (attempt 1)"));
    assert_eq!(
        events.progress.lock().unwrap().as_slice(),
        &[(100, "done".to_owned())]
    );
    let _ = Arc::clone(&events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_only_what_is_served() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop"]);
    let mut cfg = config(dir.path());
    cfg.runtime.cache_dir = Some(cache.path().to_owned());
    cfg.runtime.cache = true;
    let entries = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    // An entry of another engine: kept while recent, pruned once a week old.
    let foreign = cache.path().join("abc-0000000000000000.cwasm");
    std::fs::write(&foreign, b"other engine").unwrap();

    let runtime = runtime(cfg).await;
    let v1 = runtime.plugin("noop").unwrap().digest.clone();
    assert_eq!(entries().len(), 2);
    assert!(entries().iter().any(|e| e.starts_with(&v1)));

    // A new build replaces the old one in the cache too.
    let mut v2_bytes = std::fs::read(plugin_file("noop")).unwrap();
    v2_bytes.extend_from_slice(&[0, 4, 3, b'a', b'b', b'c']); // a custom section "abc"
    install_bytes(dir.path(), "noop", &v2_bytes);
    std::fs::File::options()
        .write(true)
        .open(&foreign)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(8 * 24 * 3600))
        .unwrap();
    runtime.sync_dir().await.unwrap();
    let v2 = runtime.plugin("noop").unwrap().digest.clone();
    assert_ne!(v1, v2);
    let now = entries();
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(now[0].starts_with(&v2), "{now:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dotfiles_in_the_plugins_folder_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    install_bytes(dir.path(), ".partial-upload", b"half a component");
    install(dir.path(), &["noop"]);
    let runtime = runtime(config(dir.path())).await;
    let ids: Vec<String> = runtime.plugins().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["noop"]);
}
