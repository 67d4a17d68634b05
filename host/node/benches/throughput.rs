//! End-to-end job throughput through a real redis-server: no-op jobs enqueued in a burst and
//! run by 1 or 2 nodes (each its own runtime, Redis connection and worker loop, in this
//! process). Prints jobs/s, enqueue-to-start latency p50/p99 (under the burst, and one job at
//! a time), and the Redis round trips the nodes made per job.
//!
//! Run with `just bench` (which builds the plugins and installs redis-server first).

#[path = "support.rs"]
mod support;

use std::time::Duration;

use futures::StreamExt;
use jobhost::worker::{self, WorkerSettings};
use jobhost_config::Config;
use jobhost_runtime::Runtime;
use jobhost_store::{DevRedis, Event, JobRecord, NewJob, Store, StoreOptions, free_port};
use tokio_util::sync::CancellationToken;

const BURST: usize = 5_000;
const ONE_BY_ONE: usize = 200;
const CONCURRENCY: usize = 32;

fn noop() -> NewJob {
    NewJob {
        job_type: "noop".into(),
        spec: "{}".into(),
        ..Default::default()
    }
}

struct Node {
    store: Store,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start_node(url: &str, options: &StoreOptions) -> Node {
    let mut config = Config::default();
    config.runtime.plugins_dir = support::test_plugins_dir();
    config.runtime.cache = false;
    let runtime = Runtime::new(config).unwrap();
    runtime.sync_dir().await.unwrap();
    let store = Store::connect(url, options.clone()).await.unwrap();
    let settings = WorkerSettings {
        node_id: worker::new_node_id(),
        concurrency: CONCURRENCY,
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(5),
        poll: Duration::from_secs(1),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker::run(
        store.clone(),
        runtime,
        settings,
        shutdown.clone(),
    ));
    Node {
        store,
        shutdown,
        task,
    }
}

/// Enqueues `n` jobs concurrently and waits for all of them to finish (via `done` events,
/// so waiting costs no Redis round trips). Returns their records.
async fn burst(client: &Store, n: usize) -> Vec<JobRecord> {
    let mut done = std::pin::pin!(client.events().await.unwrap());
    let enqueues = (0..n).map(|_| async { client.enqueue(&noop()).await.unwrap().0 });
    let ids: Vec<String> = futures::future::join_all(enqueues).await;
    let mut finished = 0;
    while finished < n {
        if let Some(Event::Done(_)) = done.next().await {
            finished += 1;
        }
    }
    let records = futures::future::join_all(ids.iter().map(|id| client.get(id))).await;
    records.into_iter().map(|r| r.unwrap().unwrap()).collect()
}

fn start_latencies(jobs: &[JobRecord]) -> Vec<u64> {
    let mut latencies: Vec<u64> = jobs
        .iter()
        .map(|j| j.history[0].started_ms.saturating_sub(j.created_ms))
        .collect();
    latencies.sort_unstable();
    latencies
}

async fn run(nodes: usize, url: &str) {
    let options = StoreOptions {
        prefix: format!("bench{nodes}"),
        ..Default::default()
    };
    let client = Store::connect(url, options.clone()).await.unwrap();
    let mut running = Vec::new();
    for _ in 0..nodes {
        running.push(start_node(url, &options).await);
    }
    while client.nodes().await.unwrap().len() < nodes {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut idle = Vec::with_capacity(ONE_BY_ONE);
    for _ in 0..ONE_BY_ONE {
        idle.extend(burst(&client, 1).await);
    }
    let idle = start_latencies(&idle);

    let before: u64 = running.iter().map(|n| n.store.requests()).sum();
    let jobs = burst(&client, BURST).await;
    let after: u64 = running.iter().map(|n| n.store.requests()).sum();
    let first = jobs.iter().map(|j| j.created_ms).min().unwrap();
    let last = jobs.iter().filter_map(|j| j.finished_ms).max().unwrap();
    let per_second = BURST as f64 / ((last - first).max(1) as f64 / 1000.0);
    let busy = start_latencies(&jobs);
    // Node round trips per job, plus the one enqueue.
    let per_job = (after - before) as f64 / BURST as f64 + 1.0;

    for node in running {
        node.shutdown.cancel();
        node.task.await.unwrap();
    }
    println!(
        "{nodes} node{}  {per_second:>7.0} jobs/s   start latency: burst p50 {:>4} ms p99 {:>4} ms, \
         one at a time p50 {:>2} ms p99 {:>2} ms   {per_job:.2} Redis round trips/job",
        if nodes == 1 { " " } else { "s" },
        support::percentile(&busy, 0.5),
        support::percentile(&busy, 0.99),
        support::percentile(&idle, 0.5),
        support::percentile(&idle, 0.99),
    );
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut redis = DevRedis::start(dir.path(), Some(free_port()))
            .await
            .expect("redis-server starts");
        println!(
            "end to end through Redis: {BURST} no-op jobs in a burst, {ONE_BY_ONE} one at a time; \
             node concurrency {CONCURRENCY}"
        );
        for nodes in [1, 2] {
            run(nodes, &redis.url()).await;
        }
        redis.stop().await;
    });
}
