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
        assert!(!reason.contains("wasm trap: wasm trap"), "{spec}: {reason}");
        assert!(!reason.contains('\n'), "one line, no backtrace: {reason}");
    }
    assert_still_serves(&runtime).await;
}

/// Host resources live in the node's memory, which the memory cap does not cover: one
/// instance holds at most `MAX_RESOURCES` of them, and a plugin asking for more crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_holds_a_bounded_number_of_host_resources() {
    use jobhost_runtime::instance::MAX_RESOURCES;
    let (_dir, runtime) = runtime_with(&["noop", "hostile"], |_| {}).await;
    let held = |n: usize| {
        let runtime = runtime.clone();
        async move {
            let (opts, _) = options(None);
            let spec = format!("resources:{n}");
            runtime
                .run(&job("hostile", &spec), opts)
                .await
                .unwrap()
                .outcome
        }
    };
    // Well within the bound (a clock's pollable takes two entries of the table: the
    // deadline and the pollable of it).
    let within = MAX_RESOURCES / 4;
    assert_eq!(
        held(within).await,
        RunOutcome::Completed {
            output: format!("held {within}")
        }
    );
    let outcome = held(MAX_RESOURCES).await;
    let (kind, reason) = crash(&outcome);
    assert_eq!(kind, CrashKind::Trap, "{reason}");
    assert!(
        reason.contains("resource table has no free keys"),
        "{reason}"
    );
    assert_still_serves(&runtime).await;
}

/// `std::process::exit(n)` in a plugin reads as what it is, in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_exits_is_reported_with_its_status() {
    let (_dir, runtime) = runtime_with(&["noop", "trap"], |_| {}).await;
    for (spec, statuses) in [("exit:1", &[1][..]), ("exit:7", &[7, 1][..])] {
        let (opts, _) = options(None);
        let report = runtime.run(&job("trap", spec), opts).await.unwrap();
        let (kind, reason) = crash(&report.outcome);
        assert_eq!(kind, CrashKind::Trap, "{spec}");
        // WASI p2's `exit` carries only success or failure; a guest whose libc uses
        // `exit-with-code` reports the code itself.
        assert!(
            statuses
                .iter()
                .any(|n| reason == format!("plugin exited with status {n}")),
            "{spec}: {reason}"
        );
    }
    assert_still_serves(&runtime).await;
}

/// A panic message longer than what stderr's tail keeps is still reported as a panic, its
/// message cut to a bounded length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_panic_message_is_reported_cut() {
    let (_dir, runtime) = runtime_with(&["noop", "trap"], |_| {}).await;
    let (opts, _) = options(None);
    let report = runtime.run(&job("trap", "long-panic"), opts).await.unwrap();
    let (kind, reason) = crash(&report.outcome);
    assert_eq!(kind, CrashKind::Panic, "{reason}");
    assert!(reason.starts_with("plugin panicked: long: xxx"), "{reason}");
    assert!(
        reason.contains("… (cut) (") && reason.ends_with(')'),
        "{reason}"
    );
    assert!(
        reason.contains("trap/src/lib.rs:"),
        "the location is kept: {reason}"
    );
    assert!(reason.len() < 2300, "{} bytes", reason.len());
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
    let (_dir, runtime) =
        runtime_with(&["noop", "net-probe"], |c| c.runtime.strict_imports = true).await;
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

/// A loopback listener that reports the first 6 bytes a connection sends (or `None` if
/// nothing connects within a second of being asked).
async fn probe_listener() -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Option<[u8; 6]>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let accept = async {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 6];
            tokio::io::AsyncReadExt::read_exact(&mut socket, &mut buf)
                .await
                .unwrap();
            buf
        };
        tokio::time::timeout(Duration::from_secs(20), accept)
            .await
            .ok()
    });
    (addr, accepted)
}

async fn net_probe(runtime: &jobhost_runtime::Runtime, addr: std::net::SocketAddr) -> RunOutcome {
    net_probe_logged(runtime, addr).await.0
}

/// Runs net-probe against `addr`: the outcome and the job's log.
async fn net_probe_logged(
    runtime: &jobhost_runtime::Runtime,
    addr: std::net::SocketAddr,
) -> (RunOutcome, Arc<Recorded>) {
    let (opts, events) = options(None);
    let probe = job("net-probe", &addr.to_string());
    let report = runtime.run(&probe, opts).await.unwrap();
    (report.outcome, events)
}

fn granted_network(allow_private: &[&str]) -> impl FnOnce(&mut jobhost_config::Config) {
    let allow_private: Vec<String> = allow_private.iter().map(|s| s.to_string()).collect();
    move |c| {
        let plugin = c.plugins.entry("net-probe".into()).or_default();
        plugin.grants = vec!["network".into()];
        plugin.allow_private = allow_private;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_network_reaches_loopback_only_where_allow_private_says() {
    // Granted sockets, no opt-in: loopback is refused with the key that opts it in, and
    // nothing reaches the listener.
    let (addr, accepted) = probe_listener().await;
    let (_dir, runtime) = runtime_with(&["net-probe"], granted_network(&[])).await;
    let (outcome, log) = net_probe_logged(&runtime, addr).await;
    let RunOutcome::Failed { reason } = outcome else {
        panic!("loopback reached without allow_private")
    };
    assert!(
        reason.contains("connect failed") && reason.contains("access-denied"),
        "the guest sees a refused connect: {reason}"
    );
    assert!(
        log.has(&format!(
            "connection to {addr} denied: loopback and private addresses need \
             plugins.net-probe.allow_private"
        )),
        "the job log says why and which key opts in"
    );
    accepted.abort();

    // `::ffff:127.0.0.1`, `127.1` style aliases are the same address: the policy reads
    // them as IPv4 (unit-tested in the runtime); here the opt-in itself.
    let (addr, accepted) = probe_listener().await;
    let (_dir, runtime) = runtime_with(&["net-probe"], granted_network(&["127.0.0.1"])).await;
    assert_eq!(
        net_probe(&runtime, addr).await,
        RunOutcome::Completed {
            output: format!("connected to {addr}")
        }
    );
    assert_eq!(accepted.await.unwrap(), Some(*b"probe\n"));

    // A network covers its addresses; another loopback address stays refused.
    let (_dir, runtime) = runtime_with(&["net-probe"], granted_network(&["127.0.0.2/32"])).await;
    let (addr, accepted) = probe_listener().await;
    assert!(matches!(
        net_probe(&runtime, addr).await,
        RunOutcome::Failed { .. }
    ));
    accepted.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_own_services_stay_refused_whatever_allow_private_says() {
    let (addr, accepted) = probe_listener().await;
    let (_dir, runtime) = runtime_with(
        &["net-probe"],
        granted_network(&["127.0.0.0/8", "0.0.0.0/0"]),
    )
    .await;
    runtime.protect_services(vec![addr]);
    let (outcome, log) = net_probe_logged(&runtime, addr).await;
    let RunOutcome::Failed { reason } = outcome else {
        panic!("a protected service was reached")
    };
    assert!(reason.contains("access-denied"), "{reason}");
    assert!(
        log.has("one of this node's own services"),
        "the log says why"
    );
    // A service on the unspecified address is protected on loopback too.
    let (other, other_accepted) = probe_listener().await;
    runtime.protect_services(vec![format!("0.0.0.0:{}", other.port()).parse().unwrap()]);
    assert!(matches!(
        net_probe(&runtime, other).await,
        RunOutcome::Failed { .. }
    ));
    // Unprotected again: reachable (the refusal above was the protection, not the setup).
    runtime.protect_services(vec![]);
    assert_eq!(
        net_probe(&runtime, addr).await,
        RunOutcome::Completed {
            output: format!("connected to {addr}")
        }
    );
    assert_eq!(accepted.await.unwrap(), Some(*b"probe\n"));
    other_accepted.abort();
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

/// A file cannot take a job type by its name: two plugins claiming one type serve it
/// neither (both told why, whatever order their files were read in) until the config pins
/// it, and when the intruder leaves the type goes back at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contested_job_type_is_served_by_its_pinned_plugin_or_by_none() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop", "hello"]);
    let noop = std::fs::read(plugin_file("noop")).unwrap();
    // Named to be read first and last: the order must not matter.
    install_bytes(dir.path(), "aaa-hijack", &noop);
    install_bytes(dir.path(), "zzz-hijack", &noop);
    let runtime = runtime(config(dir.path())).await;
    assert!(
        runtime.plugin_for("noop").is_none(),
        "a contested type is served by none"
    );
    for id in ["noop", "aaa-hijack", "zzz-hijack"] {
        let status = status_of(&runtime, id);
        assert_eq!(status.status, "rejected", "{id}");
        let reason = status.rejection.unwrap();
        assert!(
            reason.contains("job type `noop` is also claimed by plugin")
                && reason.contains("job_types.noop.plugin"),
            "{id}: {reason}"
        );
    }
    assert_eq!(
        status_of(&runtime, "hello").status,
        "loaded",
        "others are not held up"
    );

    // The intruders leave: the type goes back to `noop` at the next sync, no restart.
    std::fs::remove_file(dir.path().join("aaa-hijack.wasm")).unwrap();
    std::fs::remove_file(dir.path().join("zzz-hijack.wasm")).unwrap();
    runtime.sync_dir().await.unwrap();
    assert_eq!(runtime.plugin_for("noop").unwrap().id, "noop");
    assert_eq!(status_of(&runtime, "noop").status, "loaded");
    assert_still_serves(&runtime).await;

    // Pinned: the owner serves whatever else claims the type; the others are told whose
    // it is, at start and at every reload alike.
    install_bytes(dir.path(), "aaa-hijack", &noop);
    let mut pinned = config(dir.path());
    pinned.job_types.entry("noop".into()).or_default().plugin = Some("noop".into());
    let runtime = runtime_with_config(pinned).await;
    assert_eq!(runtime.plugin_for("noop").unwrap().id, "noop");
    let hijack = status_of(&runtime, "aaa-hijack");
    assert_eq!(hijack.status, "rejected");
    assert_eq!(
        hijack.rejection.unwrap(),
        LoadError::JobTypePinned {
            job_type: "noop".into(),
            owner: "noop".into()
        }
        .to_string()
    );
    install_bytes(dir.path(), "zzz-hijack", &noop);
    runtime.sync_dir().await.unwrap();
    assert_eq!(runtime.plugin_for("noop").unwrap().id, "noop");
    assert_eq!(status_of(&runtime, "zzz-hijack").status, "rejected");
}

async fn runtime_with_config(config: jobhost_config::Config) -> jobhost_runtime::Runtime {
    runtime(config).await
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

/// The status of plugin `id` in `runtime`.
fn status_of(runtime: &jobhost_runtime::Runtime, id: &str) -> jobhost_runtime::PluginStatus {
    runtime
        .plugins()
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no status for {id}"))
}

/// Sizes a plugin controls are bounded: an output over `runtime.max_output_bytes` fails the
/// attempt naming the knob (nothing of it kept), a long reason is cut saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_and_reasons_are_bounded() {
    let (_dir, runtime) = runtime_with(&["hostile"], |c| {
        c.runtime.max_output_bytes = 64 * 1024;
        c.runtime.max_reason_bytes = 1024;
    })
    .await;
    let run = |spec: &'static str| {
        let runtime = runtime.clone();
        async move {
            let (opts, _) = options(None);
            runtime
                .run(&job("hostile", spec), opts)
                .await
                .unwrap()
                .outcome
        }
    };
    assert_eq!(
        run("output:65536").await,
        RunOutcome::Completed {
            output: "o".repeat(65536)
        }
    );
    let RunOutcome::Failed { reason } = run("output:3000000").await else {
        panic!("an oversized output was accepted")
    };
    assert_eq!(
        reason,
        "the plugin's output is 3000000 bytes; the limit is 65536 \
         (runtime.max_output_bytes): not stored"
    );
    // A validate refusal goes back to the caller (a 400 body, a gRPC status header): cut.
    let Err(ValidateError::Invalid(message)) = runtime.validate("hostile", "invalid:100000").await
    else {
        panic!("expected a refusal")
    };
    assert!(message.len() <= 4096, "{} bytes", message.len());
    assert!(
        message.ends_with("… (cut: 100000 bytes in all)"),
        "{message}"
    );
    let RunOutcome::Failed { reason } = run("fail:100000").await else {
        panic!("expected a failure")
    };
    assert!(reason.len() <= 1024, "{} bytes", reason.len());
    assert!(reason.starts_with("fff") && reason.ends_with("… (cut: 100000 bytes in all)"));
}

/// A plugin file over `runtime.max_plugin_bytes` is rejected without being read; a symbolic
/// link in the plugins folder loads only if it leads to a file inside the folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_files_and_links_out_of_the_folder_are_rejected() {
    let (dir, small) = runtime_with(&["noop"], |c| c.runtime.max_plugin_bytes = 4096).await;
    let status = status_of(&small, "noop");
    assert_eq!(status.status, "rejected");
    let size = std::fs::metadata(dir.path().join("noop.wasm"))
        .unwrap()
        .len();
    assert_eq!(
        status.rejection.unwrap(),
        format!("the file is {size} bytes; the limit is 4096 (runtime.max_plugin_bytes)")
    );

    let outside = tempfile::tempdir().unwrap();
    install(outside.path(), &["noop"]);
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["hello"]);
    std::fs::create_dir(dir.path().join("store")).unwrap();
    std::fs::copy(
        plugin_file("noop"),
        dir.path().join("store/noop-build.wasm"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("noop.wasm"),
        dir.path().join("escape.wasm"),
    )
    .unwrap();
    std::os::unix::fs::symlink("store/noop-build.wasm", dir.path().join("inside.wasm")).unwrap();
    let runtime = runtime(config(dir.path())).await;
    let escape = status_of(&runtime, "escape");
    assert_eq!(escape.status, "rejected");
    assert!(
        escape
            .rejection
            .unwrap()
            .contains("outside the plugins folder"),
        "a link out of the folder is refused"
    );
    assert_eq!(status_of(&runtime, "inside").status, "loaded");
    assert_eq!(status_of(&runtime, "hello").status, "loaded");
}

/// `validate` has its own instance budget: submissions of one plugin whose `validate`
/// spins hold a few validate slots for at most `runtime.validate_timeout_ms`, and another
/// type's submission is checked at once meanwhile (it used to wait for the run slots the
/// spinning calls held).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_validate_does_not_hold_up_other_types() {
    let (_dir, runtime) = runtime_with(&["noop", "spin"], |c| {
        c.runtime.max_instances = 2;
        c.runtime.validate_slots = 4;
        c.runtime.validate_per_plugin = 2;
        c.runtime.validate_timeout_ms = 1_500;
    })
    .await;
    let spinning: Vec<_> = (0..12)
        .map(|_| {
            let runtime = runtime.clone();
            tokio::spawn(async move { runtime.validate("spin", "spin").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = std::time::Instant::now();
    assert_eq!(runtime.validate("noop", "fine").await, Ok(()));
    let took = start.elapsed();
    // Jobs run meanwhile too: the run slots are not the validate slots.
    assert_still_serves(&runtime).await;
    let mut busy = 0;
    for call in spinning {
        match call.await.unwrap() {
            Err(ValidateError::Busy) => busy += 1,
            Err(ValidateError::Crashed(reason)) => {
                assert!(reason.contains("deadline"), "{reason}")
            }
            other => panic!("a spinning validate ended with {other:?}"),
        }
    }
    assert!(
        busy >= 8,
        "at most 2 at once per plugin: {busy} of 12 were turned away"
    );
    assert!(
        took < Duration::from_millis(1_000),
        "another type's validate waited {took:?} behind the spinning ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_components_refused_for_their_config_not_their_code() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop", "net-probe"]);
    let mut cfg = config(dir.path());
    cfg.runtime.cache_dir = Some(cache.path().to_owned());
    cfg.runtime.cache = true;
    // net-probe lacks its grant: refused by the config, so its compiled form stays.
    cfg.runtime.strict_imports = true;
    let runtime = runtime(cfg).await;
    let status = |id: &str| runtime.plugins().into_iter().find(|p| p.id == id).unwrap();
    let probe = status("net-probe");
    assert_eq!(probe.status, "rejected");
    let digest = probe.digest.expect("it was read");
    let cached: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cached.iter().any(|e| e.starts_with(&digest)),
        "a component refused for a missing grant is not compiled again: {cached:?}"
    );
    assert!(
        cached
            .iter()
            .any(|e| e.starts_with(&runtime.plugin("noop").unwrap().digest)),
        "{cached:?}"
    );
}
