//! Several real `jobhost serve` processes on one real redis-server: no job is lost when a
//! node is killed or when Redis restarts.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use jobhost_store::{JobRecord, JobState, Store};

/// Writes a node config: short leases so a dead node's jobs come back quickly.
fn node_config(dir: &Path, redis_url: &str) -> std::path::PathBuf {
    let file = dir.join("node.toml");
    std::fs::write(
        &file,
        format!(
            "[redis]\nurl = {redis_url:?}\n\n[runtime]\ncache = false\nmax_instances = 16\n\n\
             [worker]\nconcurrency = 8\nlease_ms = 2000\nheartbeat_ms = 500\npoll_ms = 200\n\
             shutdown_grace_ms = 2000\n\n[api]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    file
}

fn spawn_node(config: &Path, plugins: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_jobhost"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("JOBHOST_TLS_ENABLED", "false")
        .args(["--plugins-dir", plugins.to_str().unwrap()])
        .env_remove("JOBHOST_REDIS_URL")
        .env("JOBHOST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()))
        .spawn()
        .unwrap()
}

fn sigterm_and_wait(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("node did not stop after SIGTERM");
}

async fn records(store: &Store, ids: &[String]) -> Vec<JobRecord> {
    let gets = ids.iter().map(|id| store.get(id));
    futures::future::join_all(gets)
        .await
        .into_iter()
        .map(|r| r.expect("redis answers").expect("job exists"))
        .collect()
}

async fn count_final(store: &Store, ids: &[String]) -> usize {
    loop {
        let gets = ids.iter().map(|id| store.get(id));
        let all = futures::future::join_all(gets).await;
        if all.iter().all(|r| r.is_ok()) {
            return all
                .into_iter()
                .filter(|r| matches!(r, Ok(Some(j)) if j.state.is_final()))
                .count();
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // Redis restarting
    }
}

async fn enqueue_sleepers(store: &Store, n: usize, sleep_ms: u32) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let mut job = new_job("noop", &i.to_string());
        job.labels.insert("sleep_ms".into(), sleep_ms.to_string());
        job.retry.max_attempts = 5;
        ids.push(store.enqueue(&job).await.unwrap().0);
    }
    ids
}

async fn wait_all_final(store: &Store, ids: &[String], limit: Duration) {
    let start = Instant::now();
    loop {
        let done = count_final(store, ids).await;
        if done == ids.len() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "only {done}/{} jobs finished",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_no_job_and_only_its_jobs_run_twice() {
    let redis = TestRedis::start().await;
    let store = redis.store().await;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install(&plugins, &["noop"]);
    let config = node_config(dir.path(), &redis.url());
    let mut nodes: Vec<Child> = (0..3)
        .map(|i| spawn_node(&config, &plugins, &dir.path().join(format!("node{i}.log"))))
        .collect();

    let ids = enqueue_sleepers(&store, 2_000, 20).await;
    // Kill one node mid-run, hard.
    let start = Instant::now();
    while count_final(&store, &ids).await < 400 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "jobs are not being run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let victim = nodes.remove(0);
    let victim_pid = victim.id();
    let mut victim = victim;
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();

    wait_all_final(&store, &ids, Duration::from_secs(180)).await;
    let all = records(&store, &ids).await;
    let marker = format!("-{victim_pid}-");
    let mut rerun = 0;
    for job in &all {
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        let (last, earlier) = job.history.split_last().unwrap();
        assert_eq!(last.outcome, "succeeded");
        for attempt in earlier {
            rerun += 1;
            assert!(
                attempt.node.contains(&marker) && attempt.outcome == "lost",
                "a job ran twice though it was not in flight on the killed node: {job:?}"
            );
        }
    }
    println!("2000 jobs SUCCEEDED; {rerun} were in flight on the killed node and ran again");
    for node in &mut nodes {
        assert!(sigterm_and_wait(node).success());
    }
    // The survivors deregister at once; the killed node's registration lapses after three
    // missed heartbeats (1.5 s here).
    let start = Instant::now();
    while !store.nodes().await.unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a node registration outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One node serving `noop` on `redis_url`: its folder (kept alive by the caller), the
/// process, and the file its log goes to.
fn noop_node(redis_url: &str) -> (tempfile::TempDir, Child, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    install(&plugins, &["noop"]);
    let config = node_config(dir.path(), redis_url);
    let log = dir.path().join("node.log");
    let node = spawn_node(&config, &plugins, &log);
    (dir, node, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_completes_across_a_redis_restart() {
    let mut redis = TestRedis::start().await;
    let store = redis.store().await;
    let (_dir, mut node, log) = noop_node(&redis.url());

    let ids = enqueue_sleepers(&store, 400, 20).await;
    let start = Instant::now();
    while count_final(&store, &ids).await < 100 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "jobs are not being run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    redis.restart().await; // SHUTDOWN (AOF fsynced), then the same port and data
    wait_all_final(&store, &ids, Duration::from_secs(120)).await;
    for job in records(&store, &ids).await {
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    }
    assert!(sigterm_and_wait(&mut node).success());
    let log = std::fs::read_to_string(&log).unwrap();
    // The event subscription always notices a restart; requests in flight may, too.
    assert!(
        log.contains("event subscription dropped") || log.contains("redis unreachable"),
        "the outage was logged:\n{log}"
    );
}

/// A Redis outage is one line in the node's log when it starts and one when it ends (not a
/// line per request or per retrying loop), and work resumes at once when Redis is back:
/// retries are at most half a second apart (they were up to 5 s apart, so a job waited
/// seconds after a long outage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_logged_once_and_work_resumes_at_once() {
    let mut redis = TestRedis::start().await;
    let store = redis.store().await;
    let (_dir, mut node, log) = noop_node(&redis.url());
    let ids = enqueue_sleepers(&store, 1, 0).await;
    wait_all_final(&store, &ids, Duration::from_secs(30)).await;

    // Long enough for a doubling backoff to have grown to seconds.
    redis.stop().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    redis.start_again().await;
    let back = Instant::now();
    let store = redis.store().await;
    let ids = enqueue_sleepers(&store, 1, 0).await;
    wait_all_final(&store, &ids, Duration::from_secs(30)).await;
    let resumed = back.elapsed();
    assert!(sigterm_and_wait(&mut node).success());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        resumed < Duration::from_millis(2500),
        "a job enqueued once Redis was back waited {resumed:?}:\n{log}"
    );
    assert_eq!(
        log.matches("redis unreachable").count(),
        1,
        "one line when Redis went away:\n{log}"
    );
    assert_eq!(
        log.matches("redis reachable again after").count(),
        1,
        "one line when it came back:\n{log}"
    );
    // Besides the two lines: the event subscription dropping and health turning
    // NOT_SERVING, once each (and the plaintext warning at start).
    let noisy = log
        .lines()
        .filter(|l| (l.contains("WARN") || l.contains("ERROR")) && !l.contains("PLAINTEXT"))
        .count();
    assert!(noisy <= 4, "the outage was logged line by line:\n{log}");
}
