//! Plugins in other languages, built unchanged against `wit/` with the tools' own commands
//! (`just plugins`, with the toolchains `just plugin-toolchains` pins): the Python template
//! (componentize-py) and the JavaScript one (componentize-js). They import every interface
//! of the world and more, use none of it, and load with no grants; a node serves its APIs
//! while they compile.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;

use common::server::{schedule_ok, wait_state};
use common::*;
use jobhost_proto::scheduler::{JobState, ScheduleJobRequest};
use jobhost_runtime::{RunOutcome, ValidateError};

const LANGUAGES: [(&str, &str); 2] = [("hello-py", "python"), ("hello-js", "javascript")];

/// The capability each language's runtime imports by itself.
const RUNTIME_IMPORTS: [(&str, &str); 2] = [("hello-py", "network"), ("hello-js", "http")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_plugins_load_with_no_grants_and_run() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["hello-py", "hello-js"]);
    let runtime = runtime(config(dir.path())).await;
    for ((id, language), (_, runtime_import)) in LANGUAGES.into_iter().zip(RUNTIME_IMPORTS) {
        let plugin = runtime
            .plugin_for(id)
            .unwrap_or_else(|| panic!("{id} loads with no grants: {:?}", runtime.plugins()));
        // World `job-plugin` imports only the host's services; what the language runtime
        // itself imports (Python: sockets; JavaScript: HTTP for `fetch`) is imported, not
        // granted: calls there would be refused, and it makes none.
        let ungranted = plugin.imported_not_granted();
        assert_eq!(ungranted, [runtime_import], "{id}: {:?}", plugin.imports);
        assert!(
            plugin
                .imports
                .iter()
                .filter(|i| i.interface.starts_with("jobhost:plugin/"))
                .all(|i| i.interface.starts_with("jobhost:plugin/host@")
                    || i.interface.starts_with("jobhost:plugin/types@")),
            "{id}: {:?}",
            plugin.imports
        );
        let (opts, events) = options(Some(Duration::from_secs(30)));
        let report = runtime
            .run(&job(id, r#"{"name": "Ada"}"#), opts)
            .await
            .unwrap();
        let RunOutcome::Completed { output } = report.outcome else {
            panic!("{id}: {:?}", report.outcome);
        };
        let output: serde_json::Value = serde_json::from_str(&output).unwrap();
        assert_eq!(output["greeting"], "hello, Ada", "{id}");
        assert_eq!(output["language"], language);
        assert!(events.has("greeting Ada (attempt 1)"), "{id}: its log line");
        let err = runtime.validate(id, "[1, 2]").await.unwrap_err();
        assert!(
            matches!(&err, ValidateError::Invalid(m) if m.contains("the spec must be a JSON object")),
            "{id}: {err:?}"
        );
    }

    // With runtime.strict_imports the same files are refused, naming a grant.
    let mut strict = config(dir.path());
    strict.runtime.strict_imports = true;
    let strict = common::runtime(strict).await;
    for (id, _) in LANGUAGES {
        let status = strict.plugins().into_iter().find(|p| p.id == id).unwrap();
        let reason = status.rejection.unwrap_or_default();
        assert!(
            reason.contains(&format!("plugins.{id}.grants")),
            "{id}: {reason}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_instances_serve_attempt_after_attempt_when_kept() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["hello-py", "hello-js"]);
    let mut config = config(dir.path());
    for (id, _) in LANGUAGES {
        config.plugins.entry(id.into()).or_default().reuse = Some(10);
    }
    let runtime = runtime(config).await;
    for (id, language) in LANGUAGES {
        let mut took = Vec::new();
        for (attempt, name) in ["Ada", "Grace", "Edsger"].into_iter().enumerate() {
            let (opts, events) = options(Some(Duration::from_secs(30)));
            let spec = format!(r#"{{"name": "{name}"}}"#);
            let start = Instant::now();
            let report = runtime.run(&job(id, &spec), opts).await.unwrap();
            took.push(start.elapsed());
            let RunOutcome::Completed { output } = report.outcome else {
                panic!("{id}, attempt {}: {:?}", attempt + 1, report.outcome);
            };
            let output: serde_json::Value = serde_json::from_str(&output).unwrap();
            assert_eq!(output["greeting"], format!("hello, {name}"), "{id}");
            assert_eq!(output["language"], language);
            // Each attempt's log line reaches that attempt's job, not an earlier one's.
            assert!(events.has(&format!("greeting {name} (attempt 1)")), "{id}");
            assert_eq!(
                events.lines.lock().unwrap().len(),
                1,
                "{id}: one line per attempt"
            );
        }
        let plugin = runtime.plugin(id).unwrap();
        assert_eq!(plugin.kept_instances(), 1, "{id}");
        // Its core instances, memories and tables fit one slot's share of the pool.
        assert_eq!(plugin.kept_places(), Some(1), "{id}");
        println!(
            "{id}: a fresh attempt {:?}, kept ones {:?}",
            took[0],
            &took[1..]
        );
    }
}

#[test]
fn run_local_runs_python_and_javascript_plugins() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["hello-py", "hello-js"]);
    for (id, language) in LANGUAGES {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jobhost"))
            .args(["run-local", "--plugin", id, "--spec", "-", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(br#"{"name": "CI"}"#)
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{id}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let output: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(output["greeting"], "hello, CI");
        assert_eq!(output["language"], language);
    }
}

/// `GET path` on `addr`: the status and body, or `None` while nothing listens.
async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let socket = tokio::net::TcpStream::connect(addr).await.ok()?;
    let response = receiver::http_exchange(socket, addr, "GET", path, &[], b"").await;
    Some((response.status, response.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_its_apis_while_python_and_javascript_plugins_compile() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["hello", "hello-py", "hello-js"]);
    let grpc = format!("127.0.0.1:{}", jobhost_store::free_port());
    let http = format!("127.0.0.1:{}", jobhost_store::free_port());
    let log = dir.path().join("serve.log");
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["serve", "--plugins-dir", dir.path().to_str().unwrap()])
        .args([
            "--redis-url",
            &redis.url(),
            "--grpc-addr",
            &grpc,
            "--http-addr",
            &http,
        ])
        .env("JOBHOST_TLS_ENABLED", "false")
        .env("JOBHOST_JD_WSRPC_ADDR", "")
        // Nothing cached: the Python and JavaScript components compile now (seconds each).
        .env("JOBHOST_CACHE", "false")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = Stopped(child);

    // The APIs listen before the plugins have compiled, and say which are compiling.
    let healthy = loop {
        if let Some((200, _)) = get(&http, "/healthz").await {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no /healthz");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // The folder is read in milliseconds; compiling the Python component takes seconds.
    let status_of = |plugins: &serde_json::Value, id: &str| {
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| p["status"].as_str().unwrap().to_owned())
    };
    let plugins = loop {
        let (_, plugins) = get(&http, "/v1/plugins").await.unwrap();
        let plugins: serde_json::Value = serde_json::from_str(&plugins).unwrap();
        if status_of(&plugins, "hello-py").is_some() {
            break plugins;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{plugins}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let (status, ready) = get(&http, "/readyz").await.unwrap();
    assert_eq!(
        status_of(&plugins, "hello-py").as_deref(),
        Some("compiling"),
        "/healthz answered after {healthy:?}, before hello-py compiled: {plugins}"
    );
    assert!(
        status == 503 && ready.contains("still compiling") && ready.contains("hello-py"),
        "/readyz says what compiles: {status} {ready}"
    );
    // A job of a type no plugin serves yet is refused as retryable, not as unknown.
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{grpc}")).unwrap();
    let mut client = jobhost_proto::scheduler::job_scheduler_client::JobSchedulerClient::new(
        endpoint.connect().await.unwrap(),
    );
    let early = client
        .schedule_job(ScheduleJobRequest {
            job_type: "hello-py".into(),
            spec: "{}".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::Unavailable, "{early:?}");
    assert!(early.message().contains("still compiling"), "{early:?}");

    // Once compiled, jobs of every language run through the API.
    let start = Instant::now();
    loop {
        let (status, ready) = get(&http, "/readyz").await.unwrap();
        if status == 200 && !ready.contains("compiling") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "never ready: {status} {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (job_type, language) in [
        ("hello", ""),
        ("hello-py", "python"),
        ("hello-js", "javascript"),
    ] {
        let job = schedule_ok(
            &mut client,
            ScheduleJobRequest {
                job_type: job_type.into(),
                spec: r#"{"name": "node"}"#.into(),
                ..Default::default()
            },
        )
        .await;
        let done = wait_state(&mut client, &job.id, JobState::Succeeded).await;
        let output: serde_json::Value = serde_json::from_str(&done.output).unwrap();
        assert_eq!(output["greeting"], "hello, node", "{job_type}");
        if !language.is_empty() {
            assert_eq!(output["language"], language);
        }
    }
    let _ = Command::new("kill").arg(child.0.id().to_string()).status();
    let _ = child.0.wait();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("imported, not granted: calls refused"),
        "the load log says what is imported and not granted:\n{log}"
    );
}

/// A child process killed when dropped (a failed assertion must not leave it running).
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_needing_component_model_async_is_refused_naming_the_flag_that_avoids_it() {
    // componentize-js's QuickJS backend, as `just plugin-toolchains` installs it.
    let tool = workspace().join("target/langs/js/node_modules/.bin/componentize-qjs");
    assert!(
        tool.exists(),
        "{} missing: run `just plugin-toolchains`",
        tool.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let source = workspace().join("examples/plugins/hello-js/app.js");
    for (name, extra) in [("qjs-async", None), ("qjs-sync", Some("--sync"))] {
        let out = Command::new(&tool)
            .arg("--wit")
            .arg(workspace().join("wit"))
            .args(["-n", "job-plugin", "--js"])
            .arg(&source)
            .args(extra)
            .arg("-o")
            .arg(dir.path().join(format!("{name}.wasm")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
    }
    let runtime = runtime(config(dir.path())).await;
    let status = runtime
        .plugins()
        .into_iter()
        .find(|p| p.id == "qjs-async")
        .unwrap();
    let reason = status.rejection.unwrap_or_default();
    assert!(
        reason.contains("component model async")
            && reason.contains("--backend-qjs-disable-async")
            && reason.contains("componentize-qjs --sync"),
        "{reason}"
    );
    // Built without it, the same source loads and runs.
    let (opts, _) = options(Some(Duration::from_secs(30)));
    let report = runtime
        .run(&job("hello-js", r#"{"name": "qjs"}"#), opts)
        .await
        .unwrap();
    assert!(
        matches!(&report.outcome, RunOutcome::Completed { output } if output.contains("hello, qjs")),
        "{:?}",
        report.outcome
    );
}
