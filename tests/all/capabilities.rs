//! Capability enforcement against a real misbehaving plugin (`plugins/testing/cap-probe`):
//! ungranted imports are rejected at load with the reason; grants are checked again at
//! every call (a revoked grant, a host outside `allowed_hosts`, an executable outside
//! `executables`) and the guest gets the message; the `kv` capability keeps each plugin's
//! state apart in Redis, within its limits; `jobhost plugins inspect` sets requested against
//! granted; components built against the previous contract version keep loading.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use jobhost_config::Config;
use jobhost_runtime::{RunOutcome, Runtime, ValidateError};

/// What every call-time denial of `capability` to `plugin` says.
fn not_granted(capability: &str, plugin: &str) -> String {
    format!(
        "capability \"{capability}\" is not granted to plugin \"{plugin}\" (plugins.{plugin}.grants)"
    )
}

const ALL_GRANTS: [&str; 3] = ["kv", "http", "process"];

/// A config for `id` (the cap-probe build installed under that name) with `grants`.
/// Processes may run unconfined, so `validate` works on hosts without cgroups; no test
/// here starts one.
fn probe_config(dir: &Path, id: &str, grants: &[&str]) -> Config {
    let mut config = config(dir);
    config.sandbox.allow_unconfined = true;
    let plugin = config.plugins.entry(id.into()).or_default();
    plugin.grants = grants.iter().map(|g| g.to_string()).collect();
    plugin.allowed_hosts = vec!["http://127.0.0.1:9".into()];
    plugin.executables = vec!["/bin/true".into()];
    config
}

/// A runtime serving the cap-probe build as plugin `id`, its state in `redis` if given.
async fn probe_node(
    id: &str,
    redis: Option<&TestRedis>,
    tweak: impl FnOnce(&mut Config),
) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    install_bytes(
        dir.path(),
        id,
        &std::fs::read(plugin_file("cap-probe")).unwrap(),
    );
    let mut config = probe_config(dir.path(), id, &ALL_GRANTS);
    tweak(&mut config);
    let runtime = Runtime::new(config).expect("runtime starts");
    if let Some(redis) = redis {
        runtime.use_kv(Arc::new(jobhost::plugin_state::StoreKv(
            redis.store().await,
        )));
    }
    runtime.sync_dir().await.unwrap();
    (dir, runtime)
}

/// Runs the probe script `spec`; its result lines and what the job logged.
async fn probe(runtime: &Runtime, spec: &str) -> (Vec<String>, Arc<Recorded>) {
    let (opts, events) = options(None);
    let report = runtime.run(&job("cap-probe", spec), opts).await.unwrap();
    match report.outcome {
        RunOutcome::Completed { output } => (output.lines().map(str::to_owned).collect(), events),
        other => panic!("the probe did not complete: {other:?}"),
    }
}

/// The rejection reason of plugin `id`.
fn rejection(runtime: &Runtime, id: &str) -> String {
    let status = runtime
        .plugins()
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("{id} was seen"));
    assert_eq!(status.status, "rejected", "{status:?}");
    status.rejection.unwrap()
}

/// The probe's config with `grants`, rejecting imports without their grant at load.
fn strict_config(dir: &std::path::Path, grants: &[&str]) -> Config {
    let mut config = probe_config(dir, "cap-probe", grants);
    config.runtime.strict_imports = true;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_is_not_a_use_the_plugin_loads_and_its_calls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["cap-probe"]);
    let runtime = runtime(probe_config(dir.path(), "cap-probe", &[])).await;
    let plugin = runtime
        .plugin_for("cap-probe")
        .expect("loads without grants");
    let mut ungranted = plugin.imported_not_granted();
    ungranted.sort();
    assert_eq!(ungranted, ["http", "kv", "process"]);
    let (lines, events) = probe(
        &runtime,
        "kv.get a\nhttp.get http://127.0.0.1:9/\nprocess.run /bin/true",
    )
    .await;
    let refused = |c| format!("err:{}", not_granted(c, "cap-probe"));
    assert_eq!(lines, [refused("kv"), refused("http"), refused("process")]);
    assert!(events.has(&not_granted("process", "cap-probe")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_strict_imports_an_import_without_its_grant_is_rejected_at_load() {
    for missing in ALL_GRANTS {
        let dir = tempfile::tempdir().unwrap();
        install(dir.path(), &["cap-probe"]);
        let others: Vec<&str> = ALL_GRANTS.into_iter().filter(|g| *g != missing).collect();
        let runtime = runtime(strict_config(dir.path(), &others)).await;
        assert!(runtime.plugin_for("cap-probe").is_none(), "{missing}");
        let reason = rejection(&runtime, "cap-probe");
        assert!(
            reason.contains(&format!("needs the `{missing}` capability"))
                && reason.contains(&format!("`plugins.cap-probe.grants = [\"{missing}\"]`")),
            "without {missing}: {reason}"
        );
    }
    // kv in particular: the interface is named, with the contract version it was built on.
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["cap-probe"]);
    let runtime = runtime(strict_config(dir.path(), &["http", "process"])).await;
    let reason = rejection(&runtime, "cap-probe");
    assert!(
        reason.starts_with("imports jobhost:plugin/kv@0.1."),
        "{reason}"
    );
    let status = runtime.plugins().pop().unwrap();
    let kv = status
        .imports
        .iter()
        .find(|i| i.capability == Some("kv"))
        .expect("kv import listed");
    assert!(!kv.granted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_is_denied_at_call_time_with_the_capability_and_config_key() {
    let (dir, runtime) = probe_node("cap-probe", None, |_| {}).await;
    let (lines, _) = probe(&runtime, "kv.set a 1\nkv.get a").await;
    assert_eq!(lines, ["ok", "value:1"]);

    // Revoked while the build stays loaded: every capability is refused at its next call.
    runtime.set_grants("cap-probe", vec![]).unwrap();
    let (lines, events) = probe(
        &runtime,
        "kv.get a\nkv.set a 2\nkv.delete a\nkv.list\nhttp.get http://127.0.0.1:9/\nprocess.run /bin/true",
    )
    .await;
    let kv = format!("err:{}", not_granted("kv", "cap-probe"));
    let http = format!("err:{}", not_granted("http", "cap-probe"));
    let process = format!("err:{}", not_granted("process", "cap-probe"));
    assert_eq!(
        lines,
        [&kv, &kv, &kv, &kv, &http, &process].map(|s| s.as_str())
    );
    // The job log records every denial.
    for capability in ALL_GRANTS {
        assert!(
            events.has(&not_granted(capability, "cap-probe")),
            "{capability}: {:?}",
            events.lines.lock().unwrap()
        );
    }
    // The same file still loads (an import is not a use), its imports not granted.
    let inspection = runtime.inspect(&dir.path().join("cap-probe.wasm")).await;
    let plugin = inspection.result.expect("an import is not a use");
    assert_eq!(
        plugin.imported_not_granted().len(),
        3,
        "{:?}",
        plugin.imports
    );

    // Granted again: state written before the revocation is still there.
    runtime
        .set_grants("cap-probe", ALL_GRANTS.map(String::from).to_vec())
        .unwrap();
    let (lines, _) = probe(&runtime, "kv.get a").await;
    assert_eq!(lines, ["value:1"]);
    assert!(
        runtime
            .set_grants("cap-probe", vec!["teleport".into()])
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_revoked_during_an_attempt_holds_from_the_next_call() {
    let (_dir, runtime) = probe_node("cap-probe", None, |_| {}).await;
    let run = {
        let runtime = runtime.clone();
        tokio::spawn(async move { probe(&runtime, "kv.set a 1\nsleep 500\nkv.get a").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    runtime
        .set_grants("cap-probe", vec!["http".into()])
        .unwrap();
    let (lines, _) = run.await.unwrap();
    assert_eq!(
        lines,
        [
            "ok".to_owned(),
            "slept".to_owned(),
            format!("err:{}", not_granted("kv", "cap-probe"))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_outside_allowed_hosts_and_executables_outside_executables_are_refused() {
    let (_dir, runtime) = probe_node("cap-probe", None, |_| {}).await;
    let (lines, events) = probe(
        &runtime,
        "http.get http://127.0.0.2:8080/x\n\
         http.get http://169.254.169.254/latest/meta-data\n\
         process.run /bin/sh -c true",
    )
    .await;
    let refusals = [
        "request to http://127.0.0.2:8080 denied: not in plugins.cap-probe.allowed_hosts",
        "request to 169.254.169.254 denied: link-local and cloud metadata addresses are never allowed",
        "executable \"/bin/sh\" is not in plugins.cap-probe.executables",
    ];
    let expected: Vec<String> = refusals.iter().map(|r| format!("err:{r}")).collect();
    assert_eq!(lines, expected);
    for refusal in refusals {
        assert!(events.has(refusal), "{refusal} not in the job log");
    }
    // An allowed host is let through (nothing listens on port 9: the connection fails, it
    // is not refused).
    let (lines, _) = probe(&runtime, "http.get http://127.0.0.1:9/").await;
    assert!(lines[0].starts_with("err:connection failed"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_state_lives_in_redis_scoped_to_each_plugin() {
    let redis = TestRedis::start().await;
    let (_a_dir, a) = probe_node("kv-a", Some(&redis), |_| {}).await;
    let (_b_dir, b) = probe_node("kv-b", Some(&redis), |_| {}).await;

    let (lines, _) = probe(
        &a,
        "kv.set cursor 41\nkv.set cursor 42\nkv.set seen:1 x\nkv.set seen:2 y\nkv.get cursor\n\
         kv.list\nkv.list seen:\nkv.delete seen:1\nkv.delete seen:1\nkv.get seen:1\nkv.get nope",
    )
    .await;
    assert_eq!(
        lines,
        [
            "ok",
            "ok",
            "ok",
            "ok",
            "value:42",
            "keys:cursor,seen:1,seen:2",
            "keys:seen:1,seen:2",
            "deleted:true",
            "deleted:false",
            "none",
            "none"
        ]
    );

    // Another plugin sees none of it, even under the same key names, and its writes stay
    // its own.
    let (lines, _) = probe(&b, "kv.get cursor\nkv.list\nkv.set cursor 7\nkv.get cursor").await;
    assert_eq!(lines, ["none", "keys:", "ok", "value:7"]);
    let (lines, _) = probe(&a, "kv.get cursor").await;
    assert_eq!(lines, ["value:42"]);

    // Another node serving the same plugin id shares its state.
    let (_c_dir, a_again) = probe_node("kv-a", Some(&redis), |_| {}).await;
    let (lines, _) = probe(&a_again, "kv.get cursor\nkv.list").await;
    assert_eq!(lines, ["value:42", "keys:cursor,seen:2"]);

    // In Redis: one hash per plugin under the deployment prefix.
    let store = redis.store().await;
    let key = store.kv_key("kv-a");
    assert!(key.starts_with(store.keys().prefix()), "{key}");
    assert!(key.ends_with("kv:kv-a"), "{key}");
    assert_eq!(
        store.kv_get("kv-a", "cursor").await.unwrap().as_deref(),
        Some(&b"42"[..])
    );
    assert_eq!(
        store.kv_get("kv-b", "cursor").await.unwrap().as_deref(),
        Some(&b"7"[..])
    );
    assert_eq!(store.kv_keys("kv-b", "").await.unwrap(), ["cursor"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_limits_are_enforced_with_clear_errors() {
    let redis = TestRedis::start().await;
    let (_dir, runtime) = probe_node("kv-small", Some(&redis), |c| {
        let plugin = c.plugins.get_mut("kv-small").unwrap();
        plugin.kv_max_keys = Some(3);
        plugin.kv_max_value_bytes = Some(16);
    })
    .await;
    let (lines, _) = probe(
        &runtime,
        "kv.set a 1\nkv.set b 2\nkv.set c 3\nkv.set d 4\nkv.set a *16\nkv.set b *17\n\
         kv.set *256 v\nkv.get *257\nkv.get\nkv.delete c\nkv.set d 4\nkv.list",
    )
    .await;
    assert_eq!(
        lines,
        [
            "ok",
            "ok",
            "ok",
            "err:kv: plugin \"kv-small\" already has 3 keys, the most plugins.kv-small.kv_max_keys \
             allows (3): delete some first",
            "ok",
            "err:kv: value of 17 bytes is over the limit of 16 bytes \
             (plugins.kv-small.kv_max_value_bytes)",
            "err:kv: plugin \"kv-small\" already has 3 keys, the most plugins.kv-small.kv_max_keys \
             allows (3): delete some first",
            "err:kv: key of 257 bytes is over the limit of 256 bytes",
            "err:kv: the key is empty",
            "deleted:true",
            "ok",
            "keys:a,b,d",
        ]
    );
    let store = redis.store().await;
    assert_eq!(
        store.kv_get("kv-small", "a").await.unwrap(),
        Some(vec![b'x'; 16]),
        "replacing a value at the key limit is fine"
    );
    assert_eq!(
        store.kv_get("kv-small", "b").await.unwrap(),
        Some(b"2".to_vec())
    );

    // Concurrent writers of new keys cannot overshoot the limit together.
    let (_dir2, racer) = probe_node("kv-race", Some(&redis), |c| {
        c.plugins.get_mut("kv-race").unwrap().kv_max_keys = Some(5);
    })
    .await;
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let racer = racer.clone();
            tokio::spawn(async move { probe(&racer, &format!("kv.set k{i} v")).await.0 })
        })
        .collect();
    let mut stored = 0;
    for run in runs {
        if run.await.unwrap() == ["ok"] {
            stored += 1;
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(store.kv_keys("kv-race", "").await.unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_is_read_only_in_validate_and_closed_in_describe() {
    let (_dir, runtime) = probe_node("cap-probe", None, |_| {}).await;
    let (lines, _) = probe(&runtime, "kv.set a 1").await;
    assert_eq!(lines, ["ok"]);
    let err = runtime
        .validate(
            "cap-probe",
            "validate\nkv.get a\nkv.list\nkv.set a 2\nkv.delete a",
        )
        .await
        .unwrap_err();
    let ValidateError::Invalid(results) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        results.lines().collect::<Vec<_>>(),
        [
            "value:1",
            "keys:a",
            "err:kv.set is not allowed in validate(): validate must have no side effects \
             (kv.get and kv.list-keys are)",
            "err:kv.delete is not allowed in validate(): validate must have no side effects \
             (kv.get and kv.list-keys are)",
        ]
    );
    let (lines, _) = probe(&runtime, "kv.get a").await;
    assert_eq!(lines, ["value:1"], "validate changed nothing");
    let description = &runtime.plugin("cap-probe").unwrap().info.description;
    assert!(
        description.ends_with(
            "kv in describe: kv.get is not allowed in describe(): it runs at load, not for a job"
        ),
        "{description}"
    );
}

/// `bytes` with every `jobhost:plugin/<iface>@<from>` import renamed to `@<to>` (same
/// length), i.e. the component as a build against contract version `to` would import it.
fn with_contract_version(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut renamed = 0;
    for iface in ["host", "types", "process", "kv"] {
        let old = format!("jobhost:plugin/{iface}@{from}").into_bytes();
        let new = format!("jobhost:plugin/{iface}@{to}").into_bytes();
        let mut at = 0;
        while let Some(pos) = out[at..].windows(old.len()).position(|w| w == old) {
            out[at + pos..at + pos + old.len()].copy_from_slice(&new);
            at += pos + old.len();
            renamed += 1;
        }
    }
    assert!(renamed > 0, "no jobhost:plugin@{from} import found");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_built_against_the_previous_contract_keep_loading() {
    let served = jobhost_runtime::bindings::WIT_PACKAGE_VERSION;
    let dir = tempfile::tempdir().unwrap();
    let noop = std::fs::read(plugin_file("noop")).unwrap();
    install_bytes(
        dir.path(),
        "noop",
        &with_contract_version(&noop, served, "0.1.0"),
    );
    let runtime = runtime(config(dir.path())).await;
    let plugin = runtime.plugin("noop").expect("a 0.1.0 build loads");
    assert!(
        plugin
            .imports
            .iter()
            .any(|i| i.interface == "jobhost:plugin/host@0.1.0"),
        "{:?}",
        plugin.imports
    );
    let (opts, _) = options(None);
    let report = runtime.run(&job("noop", "old"), opts).await.unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Completed {
            output: "old".into()
        }
    );

    // A build against a later, incompatible contract is refused with the reason.
    install_bytes(
        dir.path(),
        "noop",
        &with_contract_version(&noop, served, "0.2.0"),
    );
    runtime.sync_dir().await.unwrap();
    let status = runtime.plugins().pop().unwrap();
    let reason = status.rejection.expect("the 0.2 build is rejected");
    assert!(
        reason.contains("jobhost:plugin/host@0.2.0")
            && reason.contains("this host serves jobhost:plugin@0.1.x"),
        "{reason}"
    );
}

fn jobhost(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("JOBHOST_CONFIG")
        .env("JOBHOST_CACHE", "false")
        .env("JOBHOST_LOG", "warn")
        .output()
        .expect("jobhost runs")
}

/// The row of `capability` in the text table of `plugins inspect`, split in columns.
fn inspect_row(stdout: &str, capability: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .skip_while(|l| *l != "capabilities:")
        .find(|l| l.trim_start().starts_with(&format!("{capability} ")))
        .unwrap_or_else(|| panic!("no {capability} row in:\n{stdout}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn plugins_inspect_sets_requested_against_granted() {
    let dir = tempfile::tempdir().unwrap();
    let file = plugin_file("cap-probe");
    let file = file.to_str().unwrap();
    let config = dir.path().join("jobhost.toml");

    // Missing grants: loadable, and the table says which calls will be refused.
    std::fs::write(
        &config,
        "[plugins.cap-probe]\ngrants = [\"http\", \"network\"]\n",
    )
    .unwrap();
    let out = jobhost(&["plugins", "inspect", file], &config);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("status:      loadable"), "{stdout}");
    assert_eq!(
        inspect_row(&stdout, "kv"),
        [
            "kv",
            "import, describe",
            "no",
            "imported, not granted: calls refused"
        ]
    );
    assert!(
        stdout.contains("imported, not granted: calls refused (`process`)"),
        "{stdout}"
    );

    // With strict_imports: rejected, and the table says which and why.
    std::fs::write(
        &config,
        "[runtime]\nstrict_imports = true\n\n[plugins.cap-probe]\ngrants = [\"http\", \"network\"]\n",
    )
    .unwrap();
    let out = jobhost(&["plugins", "inspect", file], &config);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("status:      rejected"), "{stdout}");
    assert_eq!(
        inspect_row(&stdout, "http"),
        ["http", "import", "yes", "ok"]
    );
    assert_eq!(
        inspect_row(&stdout, "kv"),
        [
            "kv",
            "import",
            "no",
            "missing grant → rejected (strict_imports)"
        ]
    );
    assert_eq!(
        inspect_row(&stdout, "process"),
        [
            "process",
            "import",
            "no",
            "missing grant → rejected (strict_imports)"
        ]
    );
    assert_eq!(
        inspect_row(&stdout, "network"),
        ["network", "-", "yes", "granted, unused"]
    );

    // Everything it asks for granted: loadable, and describe()'s list shows too.
    std::fs::write(
        &config,
        "[sandbox]\nallow_unconfined = true\n\n[plugins.cap-probe]\n\
         grants = [\"http\", \"kv\", \"process\"]\n",
    )
    .unwrap();
    let out = jobhost(&["plugins", "inspect", file], &config);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("requests:    kv, http, process"),
        "{stdout}"
    );
    for capability in ALL_GRANTS {
        assert_eq!(
            inspect_row(&stdout, capability),
            [capability, "import, describe", "yes", "ok"]
        );
    }
    assert!(!stdout.contains("network"), "{stdout}");

    let out = jobhost(&["plugins", "inspect", "--json", file], &config);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["capabilities"].as_array().unwrap();
    let kv = rows.iter().find(|r| r["capability"] == "kv").unwrap();
    assert_eq!(
        kv,
        &serde_json::json!({
            "capability": "kv", "imported": true, "declared": true, "granted": true,
            "status": "ok"
        })
    );
    assert_eq!(json["grants"], serde_json::json!(["http", "kv", "process"]));
}

#[test]
fn run_local_keeps_kv_state_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["cap-probe"]);
    let config = dir.path().join("jobhost.toml");
    std::fs::write(
        &config,
        "[sandbox]\nallow_unconfined = true\n\n[plugins.cap-probe]\n\
         grants = [\"http\", \"kv\", \"process\"]\n",
    )
    .unwrap();
    let spec = dir.path().join("spec");
    std::fs::write(&spec, "kv.get a\nkv.set a 1\nkv.get a").unwrap();
    let out = jobhost(
        &[
            "run-local",
            "--plugin",
            "cap-probe",
            "--spec",
            spec.to_str().unwrap(),
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        &config,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "none\nok\nvalue:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_plugin_state_in_its_redis() {
    use common::server::{Server, schedule_ok, wait_state};
    use jobhost_proto::scheduler::{JobState, ScheduleJobRequest};

    let redis = TestRedis::start().await;
    let server = Server::start_with(
        &redis.url(),
        &["cap-probe"],
        "[sandbox]\nallow_unconfined = true\n\n[plugins.cap-probe]\n\
         grants = [\"http\", \"kv\", \"process\"]\n",
    )
    .await;
    let mut client = server.client().await;
    let request = ScheduleJobRequest {
        job_type: "cap-probe".into(),
        spec: "kv.set from-node yes\nkv.get from-node".into(),
        ..Default::default()
    };
    let job = schedule_ok(&mut client, request).await;
    let done = wait_state(&mut client, &job.id, JobState::Succeeded).await;
    assert_eq!(done.output, "ok\nvalue:yes");
    let store = redis.store().await;
    assert_eq!(
        store.kv_get("cap-probe", "from-node").await.unwrap(),
        Some(b"yes".to_vec())
    );
}

/// A plugin granted sockets, with every loopback address opted in, still cannot reach the
/// node's own Redis or APIs; an ordinary loopback listener it can (so the refusals are the
/// protection, not the setup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_plugin_cannot_reach_its_nodes_redis_or_apis() {
    use common::server::{Server, schedule_ok, wait_state};
    use jobhost_proto::scheduler::{JobState, ScheduleJobRequest};
    let redis = TestRedis::start().await;
    let server = Server::start_with(
        &redis.url(),
        &["net-probe"],
        "[plugins.net-probe]\ngrants = [\"network\"]\nallow_private = [\"127.0.0.0/8\"]\n",
    )
    .await;
    let mut client = server.client().await;
    let probe = |target: String| ScheduleJobRequest {
        job_type: "net-probe".into(),
        spec: target,
        max_attempts: 1,
        ..Default::default()
    };
    let redis_addr = redis.url().trim_start_matches("redis://").to_owned();
    for (what, target) in [
        ("redis", redis_addr),
        ("grpc", server.addr.clone()),
        ("http", server.http_addr.clone()),
    ] {
        let target = target.replace("localhost", "127.0.0.1");
        let job = schedule_ok(&mut client, probe(target.clone())).await;
        let job = wait_state(&mut client, &job.id, JobState::Failed).await;
        assert!(
            job.reason.contains("access-denied"),
            "{what} at {target}: {}",
            job.reason
        );
        assert!(
            server.log().contains(&format!(
                "connection to {target} denied: it is one of this node's own services"
            )),
            "{what}: the node logs the refusal"
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap().to_string();
    let job = schedule_ok(&mut client, probe(open.clone())).await;
    let job = wait_state(&mut client, &job.id, JobState::Succeeded).await;
    assert_eq!(job.output, format!("connected to {open}"));
}
