//! `jobctl` against a real server: output, --json, --wait and exit codes.

use crate::common;

use std::process::{Command, Output};

use common::server::Server;
use common::*;

fn jobctl(server: &str, args: &[&str]) -> Output {
    Command::new(common::jobctl_bin())
        .args(["--server", server])
        .args(args)
        .env_remove("JOBHOST_SERVER")
        .output()
        .expect("jobctl runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_wait_get_list_logs_plugins_nodes() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello", "noop"]).await;
    let addr = server.addr.as_str();

    let out = jobctl(
        addr,
        &[
            "schedule",
            "--type",
            "hello",
            "--spec",
            r#"{"name":"Ada"}"#,
            "--label",
            "team=infra",
            "--wait",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("state:     SUCCEEDED"), "{text}");
    assert!(
        text.contains(r#"output:    {"greeting":"hello, Ada"}"#),
        "{text}"
    );
    let id = text
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("id:")
        .trim()
        .to_owned();

    let out = jobctl(addr, &["--json", "get", &id]);
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["state"], "SUCCEEDED");
    assert_eq!(job["labels"]["team"], "infra");
    assert_eq!(job["history"][0]["outcome"], "succeeded");

    let out = jobctl(addr, &["--json", "list", "--type", "hello"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["jobs"][0]["id"], id.as_str());
    let out = jobctl(addr, &["list", "--state", "succeeded"]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("SUCCEEDED")),
        "{}",
        stdout(&out)
    );

    let out = jobctl(addr, &["logs", &id]);
    assert_eq!(
        stdout(&out).trim(),
        "[attempt 1] INFO  greeting Ada (attempt 1)\n[attempt 1] INFO  progress 100%: done"
    );
    // Following a finished job prints its history and ends.
    let out = jobctl(addr, &["logs", "-f", &id]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));

    let out = jobctl(addr, &["plugins"]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("hello") && l.contains("loaded"))
    );
    let out = jobctl(addr, &["--json", "nodes"]);
    let nodes: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(nodes.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_1_and_usage_errors_exit_2() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello", "flaky"]).await;
    let addr = server.addr.as_str();

    let out = jobctl(addr, &["schedule", "--type", "hello", "--spec", "{}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("InvalidArgument: invalid spec for job type `hello`"),
        "{}",
        stderr(&out)
    );

    let out = jobctl(
        addr,
        &["schedule", "--type", "flaky", "--spec", "fail", "--wait"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the job failed, so --wait fails"
    );
    assert!(
        stdout(&out).contains("state:     FAILED"),
        "{}",
        stdout(&out)
    );

    let out = jobctl(addr, &["get", "no-such-job"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));

    assert_eq!(jobctl(addr, &["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        jobctl(addr, &["list", "--state", "sleepy"]).status.code(),
        Some(2)
    );
    assert_eq!(
        jobctl(addr, &["schedule", "--type", "hello", "--delay", "soon"])
            .status
            .code(),
        Some(2)
    );

    let nobody = format!("127.0.0.1:{}", jobhost_store::free_port());
    let out = jobctl(&nobody, &["nodes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach jobhost at http://127.0.0.1:"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_delayed_jobs() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let addr = server.addr.as_str();
    let out = jobctl(
        addr,
        &["--json", "schedule", "--type", "noop", "--delay", "1h"],
    );
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["state"], "SCHEDULED");
    let id = job["id"].as_str().unwrap();
    let out = jobctl(addr, &["cancel", id, "--reason", "changed my mind"]);
    assert_eq!(stdout(&out).trim(), format!("job {id} CANCELLED"));
    let out = jobctl(addr, &["--json", "get", id]);
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["reason"], "changed my mind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_worker_commands_create_stream_and_stop_shell_jobs() {
    let redis = TestRedis::start().await;
    let config = "[plugins.shell]\ngrants = [\"process\"]\n";
    let server = Server::start_with(&redis.url(), &["shell"], config).await;
    let addr = server.addr.as_str();

    let out = jobctl(
        addr,
        &[
            "create",
            "--max-cpu",
            "50",
            "--max-memory",
            "64",
            "/bin/sh",
            "-c",
            "echo hello; echo world",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("Job created:\nID: "), "{text}");
    assert!(
        text.contains("Command: /bin/sh -c echo hello; echo world"),
        "{text}"
    );
    let id = text
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("ID: ")
        .to_owned();
    let out = jobctl(addr, &["stream", &id]);
    assert_eq!(stdout(&out), "hello\nworld\n");

    let out = jobctl(addr, &["create", "/bin/sleep", "60"]);
    let id = stdout(&out)
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("ID: ")
        .to_owned();
    let mut client = server.client().await;
    common::server::wait_state(
        &mut client,
        &id,
        jobhost_proto::scheduler::JobState::Running,
    )
    .await;
    // `stop` answers once the job has ended, with the state every other view shows.
    let out = jobctl(addr, &["stop", &id]);
    assert_eq!(
        stdout(&out),
        format!("Job stopped successfully:\nID: {id}\nStatus: CANCELLED\n")
    );
    let job = client
        .get_job(jobhost_proto::scheduler::GetJobRequest { job_id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(
        job.state(),
        jobhost_proto::scheduler::JobState::Cancelled,
        "ended when stop answered"
    );

    let out = jobctl(addr, &["create", "--max-iobps", "1048576", "/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&out)
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("ID: ")
        .to_owned();
    common::server::wait_state(
        &mut client,
        &id,
        jobhost_proto::scheduler::JobState::Succeeded,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_from_file_sends_one_job_a_line_and_reports_each() {
    let redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["hello", "noop"]).await;
    let addr = server.addr.as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"type\": \"hello\", \"spec\": {\"name\": \"Ada\"}}\n",
            "\n",
            "not a job\n",
            "{\"type\": \"hello\", \"spec\": {}}\n",
            "{\"type\": \"noop\", \"labels\": {\"from\": \"file\"}}\n",
        ),
    )
    .unwrap();
    // Batches of two: the file takes two calls, and the results keep the file's order.
    let path = file.to_str().unwrap();
    let out = jobctl(
        addr,
        &[
            "--json",
            "schedule",
            "--from-file",
            path,
            "--batch-size",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 job(s) refused"),
        "{}",
        stderr(&out)
    );
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let numbers: Vec<u64> = lines.iter().map(|l| l["line"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 3, 4, 5], "{lines:?}");
    assert_eq!(lines[1]["error"]["code"], "InvalidArgument");
    assert!(
        lines[1]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("not a job")
    );
    assert_eq!(lines[2]["error"]["code"], "InvalidArgument");
    assert_eq!(lines[3]["job"]["labels"]["from"], "file");
    let ada = lines[0]["job"]["id"].as_str().unwrap();
    let mut client = server.client().await;
    let job = common::server::wait_state(
        &mut client,
        ada,
        jobhost_proto::scheduler::JobState::Succeeded,
    )
    .await;
    assert_eq!(job.output, r#"{"greeting":"hello, Ada"}"#);

    // From standard input, all good: exit 0, one line per job.
    let mut child = Command::new(common::jobctl_bin())
        .args(["--server", addr, "schedule", "--from-file", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    let mut stdin = child.stdin.take().unwrap();
    for _ in 0..3 {
        writeln!(stdin, "{{\"type\": \"noop\"}}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().all(|l| l.contains(": job ")), "{text}");

    // --from-file and --type do not mix.
    let out = jobctl(addr, &["schedule", "--from-file", path, "--type", "noop"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// `jobctl schedule` across a Redis outage: UNAVAILABLE is retried with the idempotency key
/// it sent first, and the job is created once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_retries_unavailable_with_one_idempotency_key() {
    let mut redis = TestRedis::start().await;
    let server = Server::start(&redis.url(), &["noop"]).await;
    let addr = server.addr.clone();
    redis.stop().await;
    let run = tokio::task::spawn_blocking(move || {
        jobctl(
            &addr,
            &[
                "schedule", "--type", "noop", "--spec", "x", "--label", "outage=1",
            ],
        )
    });
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    redis.start_again().await;
    let out = run.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("retrying in"),
        "it was answered UNAVAILABLE first: {}",
        stderr(&out)
    );
    let mut client = server.client().await;
    let page = client
        .list_jobs(jobhost_proto::scheduler::ListJobsRequest {
            labels: [("outage".to_owned(), "1".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.jobs.len(), 1, "{:?}", page.jobs);
}
