//! Hot reload of the plugins folder: new files load, changed files swap in without
//! disturbing running jobs, removed files unregister, bad files are rejected with a reason
//! while the host keeps serving.

use crate::common;

use std::time::Duration;

use common::*;
use jobhost_runtime::{RunOutcome, Runtime};

/// Generous bound for a reload to be observed where the contract sets none.
const RELOAD: Duration = Duration::from_secs(10);

/// The contract: a component copied into the folder is usable within 2 s (measured here:
/// about 0.25 s, debounce included, with the machine busy compiling).
const USABLE_WITHIN: Duration = Duration::from_secs(2);

async fn watched() -> (
    tempfile::TempDir,
    Runtime,
    jobhost_runtime::watcher::PluginWatcher,
) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime(config(dir.path())).await;
    let watcher = runtime.watch().unwrap();
    (dir, runtime, watcher)
}

fn digest_of(runtime: &Runtime, id: &str) -> Option<String> {
    runtime.plugin(id).map(|p| p.digest.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_in_component_becomes_usable() {
    let (dir, runtime, _watcher) = watched().await;
    assert!(runtime.plugin_for("noop").is_none());
    install(dir.path(), &["noop"]);
    let took = eventually(USABLE_WITHIN, || runtime.plugin_for("noop").is_some())
        .await
        .expect("noop is usable within 2 s");
    println!("new plugin usable after {took:?}");
    let (opts, _) = options(None);
    let report = runtime.run(&job("noop", "hi"), opts).await.unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Completed {
            output: "hi".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_component_serves_the_next_job_while_the_running_one_finishes() {
    let (dir, runtime, _watcher) = watched().await;
    let v1 = std::fs::read(plugin_file("noop")).unwrap();
    let v2 = rebuilt(&v1, "v2");
    let (d1, d2) = (
        jobhost_runtime::plugin::digest(&v1),
        jobhost_runtime::plugin::digest(&v2),
    );
    install_bytes(dir.path(), "noop", &v1);
    assert!(
        eventually(RELOAD, || digest_of(&runtime, "noop") == Some(d1.clone()))
            .await
            .is_some()
    );

    // A job that is still running when the new version lands.
    let (opts, events) = options(None);
    let mut long = job("noop", "old");
    long.labels.insert("sleep_ms".into(), "1500".into());
    let running = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.run(&long, opts).await.unwrap() }
    });
    assert!(
        eventually(RELOAD, || events.has("sleeping"))
            .await
            .is_some()
    );

    install_bytes(dir.path(), "noop", &v2);
    let took = eventually(RELOAD, || digest_of(&runtime, "noop") == Some(d2.clone()))
        .await
        .expect("the new build is swapped in");
    println!("replacement swapped in after {took:?}");

    let (opts, _) = options(None);
    let next = runtime.run(&job("noop", "new"), opts).await.unwrap();
    assert_eq!(next.plugin_digest, d2, "the next job runs the new build");

    let old = running.await.unwrap();
    assert_eq!(
        old.outcome,
        RunOutcome::Completed {
            output: "old".into()
        }
    );
    assert_eq!(
        old.plugin_digest, d1,
        "the running job finished on the old build"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_component_is_unregistered() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop"]);
    let runtime = runtime(config(dir.path())).await;
    let _watcher = runtime.watch().unwrap();
    assert!(runtime.plugin_for("noop").is_some());
    std::fs::remove_file(dir.path().join("noop.wasm")).unwrap();
    assert!(
        eventually(RELOAD, || runtime.plugin_for("noop").is_none())
            .await
            .is_some()
    );
    assert!(runtime.plugins().is_empty());
    let (opts, _) = options(None);
    let err = runtime.run(&job("noop", ""), opts).await.unwrap_err();
    assert_eq!(err.to_string(), "no loaded plugin serves job type `noop`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_rejected_with_reasons_while_the_host_keeps_serving() {
    let (dir, runtime, _watcher) = watched().await;
    install(dir.path(), &["noop"]);
    install_bytes(dir.path(), "garbage", b"this is not wasm at all");
    install_bytes(dir.path(), "core", b"\0asm\x01\0\0\0");
    install(dir.path(), &["other-world"]);

    let reason_of = |id: &str| {
        runtime
            .plugins()
            .into_iter()
            .find(|s| s.id == id && s.status == "rejected")
            .and_then(|s| s.rejection)
    };
    let all_seen = eventually(RELOAD, || {
        ["garbage", "core", "other-world"]
            .iter()
            .all(|id| reason_of(id).is_some())
            && runtime.plugin_for("noop").is_some()
    })
    .await;
    assert!(all_seen.is_some(), "statuses: {:?}", runtime.plugins());

    assert_eq!(
        reason_of("garbage").unwrap(),
        "not a WebAssembly file (no `\\0asm` header)"
    );
    assert!(
        reason_of("core")
            .unwrap()
            .starts_with("is a core WebAssembly module, not a component")
    );
    let other = reason_of("other-world").unwrap();
    assert!(
        other.starts_with("does not implement world jobhost:plugin/job-plugin@0.1."),
        "{other}"
    );

    let (opts, _) = options(None);
    let report = runtime.run(&job("noop", "ok"), opts).await.unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Completed {
            output: "ok".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_update_keeps_the_previous_version_serving() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop"]);
    let runtime = runtime(config(dir.path())).await;
    let good = digest_of(&runtime, "noop").unwrap();
    let _watcher = runtime.watch().unwrap();

    install_bytes(dir.path(), "noop", b"truncated upload");
    let status = |runtime: &Runtime| {
        runtime
            .plugins()
            .into_iter()
            .find(|s| s.id == "noop")
            .unwrap()
    };
    assert!(
        eventually(RELOAD, || status(&runtime).rejection.is_some())
            .await
            .is_some()
    );
    let now = status(&runtime);
    assert_eq!(now.status, "loaded");
    assert_eq!(now.digest.as_deref(), Some(good.as_str()));

    let (opts, _) = options(None);
    let report = runtime.run(&job("noop", "still"), opts).await.unwrap();
    assert_eq!(report.plugin_digest, good);

    // Restoring the good file clears the rejection.
    install(dir.path(), &["noop"]);
    assert!(
        eventually(RELOAD, || status(&runtime).rejection.is_none())
            .await
            .is_some()
    );
}
