//! The shell job type end to end in the runtime: a real plugin asks the host (process
//! capability) to run real commands in real cgroups.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use jobhost_runtime::{RunOutcome, Runtime};

async fn shell_runtime(
    tweak: impl FnOnce(&mut jobhost_config::Config),
) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["shell"]);
    let mut config = config(dir.path());
    config.plugins.entry("shell".into()).or_default().grants = vec!["process".into()];
    tweak(&mut config);
    (dir, runtime(config).await)
}

fn spec(command: &str, args: &[&str], extra: &str) -> String {
    let args: Vec<String> = args
        .iter()
        .map(|a| serde_json::to_string(a).unwrap())
        .collect();
    format!(
        r#"{{"command": {}, "args": [{}]{extra}}}"#,
        serde_json::to_string(command).unwrap(),
        args.join(",")
    )
}

fn pid_alive(pid: i32) -> bool {
    jobhost_sandbox::signal::alive(pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_runs_confined_and_its_output_reaches_the_job_log() {
    let (_dir, runtime) = shell_runtime(|_| {}).await;
    let (opts, events) = options(None);
    let job = job(
        "shell",
        &spec("/bin/sh", &["-c", "echo out; echo err >&2"], ""),
    );
    let report = runtime.run(&job, opts).await.unwrap();
    let RunOutcome::Completed { output } = report.outcome else {
        panic!("{:?}", report.outcome)
    };
    let summary: serde_json::Value = serde_json::from_str(&output).unwrap();
    assert_eq!(summary["exit_code"], 0);
    assert!(events.has("out") && events.has("err"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_say_how_the_process_ended() {
    let (_dir, runtime) = shell_runtime(|c| c.sandbox.max_memory_mb = 32).await;
    let cases = [
        (spec("/bin/sh", &["-c", "exit 3"], ""), "exit code 3"),
        (
            spec("/no/such/tool", &[], ""),
            "no such executable: /no/such/tool",
        ),
        (
            spec("/bin/sleep", &["30"], r#", "timeout_ms": 200"#),
            "timed out after 200 ms",
        ),
        (
            // Asks for far more memory than the host allows: clamped to 32 MiB, then OOM.
            spec(
                "python3",
                &["-c", "b = bytearray(256 * 1024 * 1024)"],
                r#", "limits": {"memory_mb": 100000}"#,
            ),
            "out of memory",
        ),
    ];
    for (spec, says) in cases {
        let (opts, _) = options(None);
        let report = runtime.run(&job("shell", &spec), opts).await.unwrap();
        let RunOutcome::Failed { reason } = &report.outcome else {
            panic!("{spec}: {:?}", report.outcome)
        };
        assert!(reason.contains(says), "{spec}: {reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_or_a_deadline_stops_the_whole_process_tree() {
    let (_dir, runtime) = shell_runtime(|_| {}).await;
    let script =
        r#"echo $$; trap "" TERM; setsid sh -c 'echo $$; trap "" TERM; sleep 1000' & sleep 1000"#;
    for cancel in [true, false] {
        let (mut opts, events) = options(Some(Duration::from_secs(if cancel { 60 } else { 2 })));
        let token = opts.cancel.clone();
        if cancel {
            opts.cancel = token.clone();
        }
        let runtime2 = runtime.clone();
        let job = job("shell", &spec("/bin/sh", &["-c", script], ""));
        let run = tokio::spawn(async move { runtime2.run(&job, opts).await.unwrap() });
        let start = Instant::now();
        let pids: Vec<i32> = loop {
            let lines: Vec<i32> = events
                .lines
                .lock()
                .unwrap()
                .iter()
                .filter_map(|(_, l)| l.parse().ok())
                .collect();
            if lines.len() == 2 {
                break lines;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the script did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if cancel {
            token.cancel();
        }
        let report = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .unwrap()
            .unwrap();
        if cancel {
            assert_eq!(report.outcome, RunOutcome::Cancelled);
        } else {
            assert!(
                matches!(report.outcome, RunOutcome::Crashed { .. }),
                "{:?}",
                report.outcome
            );
        }
        for pid in pids {
            assert!(!pid_alive(pid), "pid {pid} survived (cancel: {cancel})");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executables_and_grants_are_enforced() {
    let (_dir, runtime) = shell_runtime(|c| {
        c.plugins.get_mut("shell").unwrap().executables = vec!["/bin/echo".into()];
    })
    .await;
    let (opts, _) = options(None);
    let report = runtime
        .run(&job("shell", &spec("/bin/sh", &["-c", "true"], "")), opts)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        RunOutcome::Failed {
            reason: "executable \"/bin/sh\" is not in plugins.shell.executables".into()
        }
    );
    let (opts, _) = options(None);
    let report = runtime
        .run(&job("shell", &spec("/bin/echo", &["hi"], "")), opts)
        .await
        .unwrap();
    assert!(report.outcome.is_completed(), "{:?}", report.outcome);

    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["shell"]);
    // Without the grant it loads (an import is not a use) and its processes are refused.
    let ungranted = runtime_for(dir.path()).await;
    let (opts, _) = options(None);
    let report = ungranted
        .run(&job("shell", &spec("/bin/echo", &["hi"], "")), opts)
        .await
        .unwrap();
    let RunOutcome::Failed { reason } = report.outcome else {
        panic!("{:?}", report.outcome);
    };
    assert!(
        reason.contains("capability \"process\" is not granted")
            && reason.contains("plugins.shell.grants"),
        "{reason}"
    );
    // strict_imports rejects it at load instead, naming the grant.
    let mut strict = config(dir.path());
    strict.runtime.strict_imports = true;
    let strict = common::runtime(strict).await;
    let status = strict
        .plugins()
        .into_iter()
        .find(|p| p.id == "shell")
        .unwrap();
    let reason = status.rejection.unwrap();
    assert!(
        reason.contains("imports jobhost:plugin/process"),
        "{reason}"
    );
    assert!(
        reason.contains("`plugins.shell.grants = [\"process\"]`"),
        "{reason}"
    );
}

async fn runtime_for(dir: &std::path::Path) -> Runtime {
    runtime(config(dir)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cgroups_shell_jobs_are_refused_unless_unconfined_is_allowed() {
    let (_dir, refusing) =
        shell_runtime(|c| c.sandbox.cgroup_root = "/nonexistent/cgroup".into()).await;
    let err = refusing
        .validate("shell", &spec("/bin/echo", &["hi"], ""))
        .await
        .unwrap_err();
    assert!(
        matches!(err, jobhost_runtime::ValidateError::Unavailable(_)),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("sandbox.allow_unconfined = true"),
        "{message}"
    );

    let (_dir, unconfined) = shell_runtime(|c| {
        c.sandbox.cgroup_root = "/nonexistent/cgroup".into();
        c.sandbox.allow_unconfined = true;
    })
    .await;
    unconfined
        .validate("shell", &spec("/bin/echo", &["hi"], ""))
        .await
        .unwrap();
    let (opts, events) = options(None);
    let report = unconfined
        .run(&job("shell", &spec("/bin/echo", &["unconfined"], "")), opts)
        .await
        .unwrap();
    assert!(report.outcome.is_completed(), "{:?}", report.outcome);
    assert!(events.has("unconfined"));
}
