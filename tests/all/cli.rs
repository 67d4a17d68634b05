//! The `jobhost` binary as an operator and a plugin author use it.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

fn jobhost(args: &[&str], config_file: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobhost"));
    cmd.args(args)
        .env_remove("JOBHOST_CONFIG")
        .env("JOBHOST_CACHE", "false")
        .env("JOBHOST_TLS_ENABLED", "false")
        .env("JOBHOST_LOG", "warn");
    if let Some(file) = config_file {
        cmd.arg("--config").arg(file);
    }
    cmd.output().expect("jobhost runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn plugins_list_shows_loaded_and_rejected_files() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop", "hello"]);
    install_bytes(dir.path(), "broken", b"nope");
    let out = jobhost(
        &["plugins", "list", "--dir", dir.path().to_str().unwrap()],
        None,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let row = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row("noop ").contains("loaded"), "{stdout}");
    assert!(row("hello ").contains("Greets someone"), "{stdout}");
    assert!(
        row("broken ").contains("rejected") && row("broken ").contains("not a WebAssembly file")
    );

    let out = jobhost(
        &[
            "plugins",
            "list",
            "--json",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["broken", "hello", "noop"]);
}

#[test]
fn plugins_inspect_shows_requested_and_granted_imports() {
    let file = plugin_file("net-probe");
    let out = jobhost(&["plugins", "inspect", file.to_str().unwrap()], None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "an import is not a use: {stdout}");
    assert!(
        stdout.contains("imported, not granted: calls refused (`network`)"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jobhost.toml");
    std::fs::write(&config, "[runtime]\nstrict_imports = true\n").unwrap();
    let out = jobhost(
        &["plugins", "inspect", file.to_str().unwrap()],
        Some(&config),
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "strict: not loadable without the grant"
    );
    assert!(stdout.contains("status:      rejected"), "{stdout}");
    assert!(stdout.contains("plugins.net-probe.grants"), "{stdout}");
    assert!(stdout.contains("NOT granted (needs `network`)"), "{stdout}");

    std::fs::write(&config, "[plugins.net-probe]\ngrants = [\"network\"]\n").unwrap();
    let out = jobhost(
        &["plugins", "inspect", file.to_str().unwrap()],
        Some(&config),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("version:     0.1.0") && stdout.contains("job types:   net-probe"));
    assert!(stdout.contains("granted (network)"), "{stdout}");
    assert!(!stdout.contains("NOT granted"), "{stdout}");
}

#[test]
fn run_local_runs_one_job_without_redis() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["hello", "trap"]);
    let spec = dir.path().join("spec.json");
    let d = dir.path().to_str().unwrap();

    std::fs::write(&spec, r#"{"name": "Ada"}"#).unwrap();
    let out = jobhost(
        &[
            "run-local",
            "--plugin",
            "hello",
            "--spec",
            spec.to_str().unwrap(),
            "--dir",
            d,
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), r#"{"greeting":"hello, Ada"}"#);
    assert!(text(&out.stderr).contains("[INFO] greeting Ada (attempt 1)"));

    std::fs::write(&spec, "{}").unwrap();
    let out = jobhost(
        &[
            "run-local",
            "--plugin",
            "hello",
            "--spec",
            spec.to_str().unwrap(),
            "--dir",
            d,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid spec: spec must be JSON like"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(&spec, "panic").unwrap();
    let out = jobhost(
        &[
            "run-local",
            "--plugin",
            "trap",
            "--spec",
            spec.to_str().unwrap(),
            "--dir",
            d,
            "--json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"]["outcome"], "crashed");
    assert_eq!(report["outcome"]["kind"], "panic");
    assert_eq!(report["plugin_id"], "trap");

    let out = jobhost(
        &[
            "run-local",
            "--plugin",
            "missing",
            "--spec",
            spec.to_str().unwrap(),
            "--dir",
            d,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no plugin `missing`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_loads_the_folder_and_stops_cleanly_on_sigterm() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop"]);
    let mut child = spawn_serve(&redis.url(), dir.path());
    let ready = ready_then_sigterm(&mut child);
    let status = wait_timeout(&mut child, Duration::from_secs(10)).expect("exits after SIGTERM");
    let seen = ready.lines.join().unwrap();
    assert!(ready.ready, "never ready: {seen:?}");
    assert!(
        seen.iter()
            .any(|l| l.contains("plugin loaded") && l.contains("noop")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|l| l.contains("shutting down")), "{seen:?}");
    assert!(seen.iter().any(|l| l.contains("node stopped")), "{seen:?}");
    assert!(status.success(), "{status:?}: {seen:?}");
}

#[test]
fn serve_without_a_plugins_folder_says_how_to_fix_it() {
    let out = jobhost(
        &["serve", "--plugins-dir", "/nonexistent/jobhost-plugins"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("plugins folder /nonexistent/jobhost-plugins does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("JOBHOST_PLUGINS_DIR"), "{stderr}");
}

#[test]
fn a_bad_config_file_is_reported_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[runtime]\nmemory_limit = 12\n").unwrap();
    let out = jobhost(
        &["plugins", "list", "--dir", dir.path().to_str().unwrap()],
        Some(&config),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("memory_limit"),
        "{}",
        text(&out.stderr)
    );
}

/// What a `serve` process printed around its start and SIGTERM.
struct ServeRun {
    ready: bool,
    lines: std::thread::JoinHandle<Vec<String>>,
}

/// Reads the child's stderr to the end (so it never blocks on a full pipe), waits until the
/// node says it started, then sends SIGTERM.
fn ready_then_sigterm(child: &mut std::process::Child) -> ServeRun {
    sigterm_on_line(child, "node started")
}

/// Like [`ready_then_sigterm`], on the first stderr line containing `needle`.
fn sigterm_on_line(child: &mut std::process::Child, needle: &'static str) -> ServeRun {
    let stderr = child.stderr.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains(needle) {
                let _ = ready_tx.send(());
            }
            seen.push(line);
        }
        seen
    });
    let ready = ready_rx.recv_timeout(Duration::from_secs(30)).is_ok();
    sigterm(child);
    ServeRun { ready, lines }
}

/// `jobhost serve` on `plugins` and `redis_url`, any free ports, stderr piped.
fn spawn_serve(redis_url: &str, plugins: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["serve", "--plugins-dir", plugins.to_str().unwrap()])
        .env("JOBHOST_TLS_ENABLED", "false")
        .args([
            "--redis-url",
            redis_url,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .env("JOBHOST_CACHE", "false")
        .env("JOBHOST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_survives_its_stderr_being_closed() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop"]);
    let mut child = spawn_serve(&redis.url(), dir.path());
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    drop(stderr); // the reader goes away; later log lines hit a broken pipe
    std::thread::sleep(Duration::from_millis(500));
    sigterm(&child);
    let status = wait_timeout(&mut child, Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn serve_without_redis_says_how_to_configure_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["serve", "--plugins-dir", dir.path().to_str().unwrap()])
        .env("JOBHOST_TLS_ENABLED", "false")
        .env_remove("JOBHOST_REDIS_URL")
        .env_remove("JOBHOST_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no Redis configured: set JOBHOST_REDIS_URL"),
        "{stderr}"
    );
    assert!(stderr.contains("jobhost serve --dev"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["serve", "--plugins-dir", dir.path().to_str().unwrap()])
        .env("JOBHOST_TLS_ENABLED", "false")
        .env(
            "JOBHOST_REDIS_URL",
            format!("redis://:hunter2@127.0.0.1:{}", jobhost_store::free_port()),
        )
        .env_remove("JOBHOST_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot reach Redis at redis://***@127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password never appears: {stderr}"
    );
}

#[test]
fn serve_dev_starts_and_stops_its_own_redis_and_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let state = dir.path().join("redis");
    let pg_state = dir.path().join("postgres");
    let config = dir.path().join("dev.toml");
    std::fs::write(
        &config,
        format!(
            "[redis]\ndev_dir = {:?}\n[history]\ndev_dir = {:?}\n",
            state.to_str().unwrap(),
            pg_state.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["--config", config.to_str().unwrap(), "serve", "--dev"])
        .args(["--plugins-dir", plugins.to_str().unwrap()])
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .env_remove("JOBHOST_REDIS_URL")
        .env_remove("JOBHOST_HISTORY_URL")
        .env("JOBHOST_CACHE", "false")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = ready_then_sigterm(&mut child);
    let status = wait_timeout(&mut child, Duration::from_secs(15)).expect("exits after SIGTERM");
    let seen = ready.lines.join().unwrap();
    assert!(ready.ready, "{seen:?}");
    assert!(status.success(), "{status:?} {seen:?}");
    assert!(
        seen.iter()
            .any(|l| l.contains("started a local redis-server")),
        "{seen:?}"
    );
    assert!(plugins.is_dir(), "--dev creates the plugins folder");
    assert!(state.join("appendonlydir").is_dir(), "AOF is on");
    // The job history's PostgreSQL, in its own folder, stopped with the node.
    assert!(
        seen.iter()
            .any(|l| l.contains("started a local PostgreSQL for the job history")),
        "{seen:?}"
    );
    assert!(pg_state.join("data/PG_VERSION").is_file());
    assert!(
        !pg_state.join("data/postmaster.pid").exists(),
        "PostgreSQL was shut down with the node"
    );
    // The child redis-server is gone: nothing listens on the dev port any more.
    let log = std::fs::read_to_string(state.join("redis.log")).unwrap();
    assert!(
        log.contains("ready to exit, bye bye"),
        "redis was shut down cleanly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_startup_still_drains_and_exits_cleanly() {
    let redis = TestRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop"]);
    let mut child = spawn_serve(&redis.url(), dir.path());
    // The very first log line comes long before the node is up.
    let run = sigterm_on_line(&mut child, "");
    let status = wait_timeout(&mut child, Duration::from_secs(10)).expect("exits after SIGTERM");
    let seen = run.lines.join().unwrap();
    assert!(run.ready, "{seen:?}");
    assert!(status.success(), "{status:?}: {seen:?}");
    assert!(seen.iter().any(|l| l.contains("shutting down")), "{seen:?}");
}

#[test]
fn config_init_writes_each_profile_and_never_overwrites_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobhost.toml");
    let path = file.to_str().unwrap();
    let out = jobhost(&["config", "init", path], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dev = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        dev,
        include_str!("../../examples/jobhost.toml"),
        "development: every knob at its default"
    );
    let again = jobhost(&["config", "init", "--profile", "production", path], None);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    let forced = jobhost(
        &["config", "init", "--profile", "production", "--force", path],
        None,
    );
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    let prod = jobhost_config::Config::from_file(&file).unwrap();
    assert_eq!(prod.log.format, jobhost_config::LogFormat::Json);
    let bad = jobhost(&["config", "init", "--profile", "staging", "-"], None);
    assert!(!bad.status.success());
}

#[test]
fn config_check_prints_the_effective_config_masked_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobhost.toml");
    std::fs::write(
        &file,
        "[api]\ngrpc_addr = \"127.0.0.1:1111\"\nhttp_addr = \"127.0.0.1:2222\"\n",
    )
    .unwrap();
    // file < env: the environment's address wins, the file's other one stays.
    let out = Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["config", "check", file.to_str().unwrap()])
        .env_remove("JOBHOST_CONFIG")
        .env("JOBHOST_GRPC_ADDR", "127.0.0.1:3333")
        .env("JOBHOST_REDIS_URL", "redis://app:hunter2@redis:6379")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("grpc_addr = \"127.0.0.1:3333\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("http_addr = \"127.0.0.1:2222\""),
        "{stdout}"
    );
    assert!(stdout.contains("redis://app:***@redis:6379"), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");

    std::fs::write(&file, "[sandbox]\nmax_pids = \"many\"\n").unwrap();
    let out = jobhost(&["config", "check", file.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("max_pids"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_beats_the_environment_which_beats_the_file() {
    let redis = TestRedis::start().await;
    let env_port = jobhost_store::free_port();
    let file_port = jobhost_store::free_port();
    // Server::start_with_env passes --grpc-addr (a third free port) and waits for health
    // there: it only gets it if the flag won over both.
    let server = common::server::Server::start_with_env(
        &redis.url(),
        &["noop"],
        &format!("[api]\ngrpc_addr = \"127.0.0.1:{file_port}\"\n"),
        &[("JOBHOST_GRPC_ADDR", &format!("127.0.0.1:{env_port}"))],
    )
    .await;
    for port in [env_port, file_port] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "nothing listens on {port}"
        );
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_state_lists_gets_deletes_and_clears_a_plugins_kv() {
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    store.kv_set("counter", "cursor", b"42", 100).await.unwrap();
    store
        .kv_set("counter", "seen:a", &[0, 1, 2], 100)
        .await
        .unwrap();
    store.kv_set("other", "mine", b"x", 100).await.unwrap();
    let url = redis.url();
    let state = |extra: &[&str]| {
        let mut args = vec!["plugins", "state", "counter", "--redis-url", url.as_str()];
        args.extend_from_slice(extra);
        jobhost(&args, None)
    };

    let out = state(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let row = |key: &str| {
        listing
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
    };
    assert_eq!(row("cursor"), Some(vec!["cursor", "2"]), "{listing}");
    assert_eq!(row("seen:a"), Some(vec!["seen:a", "3"]), "{listing}");
    assert!(!listing.contains("mine"), "another plugin's key: {listing}");
    let out = state(&["--json"]);
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        entries,
        serde_json::json!([{"key": "cursor", "bytes": 2}, {"key": "seen:a", "bytes": 3}])
    );

    // Values come out as stored, bytes included.
    let out = state(&["--get", "seen:a"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, [0, 1, 2]);
    let out = state(&["--get", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains(r#"plugin "counter" has no key "nope""#));

    let out = state(&["--delete", "cursor"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(store.kv_get("counter", "cursor").await.unwrap(), None);
    assert_eq!(state(&["--delete", "cursor"]).status.code(), Some(1));

    let out = state(&["--clear"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(r#"cleared 1 keys of plugin "counter""#));
    assert!(store.kv_keys("counter", "").await.unwrap().is_empty());
    assert_eq!(
        store.kv_get("other", "mine").await.unwrap().as_deref(),
        Some(&b"x"[..]),
        "other plugins keep theirs"
    );
    assert!(text(&state(&[]).stdout).contains(r#"plugin "counter" has no state"#));

    // Flags that contradict each other are refused.
    let out = state(&["--get", "a", "--clear"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

/// What a plugin says about itself reaches the operator's terminal escaped: a newline in its
/// version cannot forge a row, an escape sequence cannot clear the screen; and a plugin's log
/// line cannot forge a node log line.
#[test]
fn plugin_text_reaches_terminals_and_logs_escaped() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &["noop", "hostile"]);
    let d = dir.path().to_str().unwrap();
    let out = jobhost(&["plugins", "list", "--dir", d], None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("forged-row")),
        "a row was forged: {stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("hostile ")).count(),
        1
    );
    assert!(stdout.contains("6.6.6\\nforged-row"), "{stdout}");

    let file = dir.path().join("hostile.wasm");
    let out = jobhost(&["plugins", "inspect", file.to_str().unwrap()], None);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
    assert!(
        stdout.contains("description: \\u{1b}[2J\\u{1b}[31mred alert\\u{7}\\nsecond line"),
        "{stdout}"
    );
    assert!(
        !stdout.lines().any(|l| l.starts_with("second line")),
        "{stdout}"
    );

    // run-local prints the plugin's log lines to stderr, escaped.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args([
            "run-local",
            "--plugin",
            "hostile",
            "--spec",
            "-",
            "--dir",
            d,
        ])
        .env("JOBHOST_CACHE", "false")
        .env_remove("JOBHOST_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br"log:ok\n2026-12-07T00:00:00Z ERROR forged")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("[INFO] ok\\n2026-12-07T00:00:00Z ERROR forged"),
        "{stderr}"
    );
    assert!(
        !stderr.lines().any(|l| l.starts_with("2026-12-07")),
        "{stderr}"
    );
}

/// A plugin's log line with a newline is one line in the node's log, escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_log_lines_cannot_forge_node_log_lines() {
    use common::server::{Server, schedule_ok, wait_state};
    use jobhost_proto::scheduler::{JobState, ScheduleJobRequest};
    let redis = TestRedis::start().await;
    let server =
        Server::start_with_env(&redis.url(), &["hostile"], "", &[("JOBHOST_LOG", "info")]).await;
    let mut client = server.client().await;
    let job = schedule_ok(
        &mut client,
        ScheduleJobRequest {
            job_type: "hostile".into(),
            spec: r"log:ok\n2026-12-07T00:00:00Z ERROR forged".into(),
            ..Default::default()
        },
    )
    .await;
    wait_state(&mut client, &job.id, JobState::Succeeded).await;
    let log = server.log();
    assert!(
        log.contains(r"ok\n2026-12-07T00:00:00Z ERROR forged"),
        "{log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("2026-12-07T00:00:00Z")),
        "{log}"
    );
}
