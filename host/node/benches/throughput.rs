//! Job throughput through the real gRPC API and a real redis-server, with BullMQ in the same
//! run on a Redis with the same settings.
//!
//! Each node is what `jobhost serve` runs (its runtime, Redis connection and worker loop; the
//! first also serves `jobhost.v1.JobScheduler` over gRPC on a local port), in this process.
//! A client submits no-op jobs with `ScheduleJobs` (batches of 1,000, 4 in flight):
//! - *submit+run*: nodes running while the jobs arrive; jobs/s from the first request to
//!   the last job recorded;
//! - *run alone*: the jobs submitted first, then the nodes start; jobs/s from their start.
//!
//! Where the time goes: Redis CPU, commands and scripts per job (`INFO`), this process's CPU
//! per job (client, API and nodes together), Redis bytes per finished job kept. Then a soak
//! of `JOBHOST_BENCH_SOAK_JOBS` jobs (default 1,000,000; 0 skips it) through one node: node
//! RSS and Redis memory as it goes, at the default retention. Last, BullMQ's peer bench
//! (`peers/bullmq/run.sh`) and the ratios.
//!
//! Run with `just bench` (which builds the plugins and installs redis-server first).

#[path = "node.rs"]
mod node;
#[path = "support.rs"]
mod support;

use std::time::Instant;

use jobhost_store::{DevRedis, Store, StoreOptions, free_port};
use node::{BATCH, IN_FLIGHT, Node, drained, runtime, serve_api, stop, submit};
use support::RedisCounters;

/// Jobs per measured run (BullMQ's peer runs the same number).
const JOBS: usize = 20_000;
/// Jobs a node runs at once (BullMQ's worker runs at the same concurrency).
const CONCURRENCY: usize = 50;

/// Where a measured run starts from: the time, Redis's counters, this process's CPU.
struct Start {
    at: Instant,
    redis: RedisCounters,
    cpu_secs: f64,
}

impl Start {
    fn now(redis: &DevRedis) -> Start {
        Start {
            redis: RedisCounters::read(redis.port()),
            cpu_secs: support::process_cpu_secs(),
            at: Instant::now(),
        }
    }

    /// What the run of [`JOBS`] jobs since `self` saw.
    fn measured(&self, redis: &DevRedis) -> Measured {
        Measured {
            per_second: JOBS as f64 / self.at.elapsed().as_secs_f64(),
            redis: RedisCounters::read(redis.port()).since(&self.redis),
            cpu_secs: support::process_cpu_secs() - self.cpu_secs,
        }
    }
}

/// What one measured run saw.
struct Measured {
    per_second: f64,
    redis: RedisCounters,
    cpu_secs: f64,
}

impl Measured {
    fn print(&self, what: &str) {
        let n = JOBS as f64;
        println!(
            "  {what:<11} {:>7.0} jobs/s   Redis: {:>5.1} µs CPU, {:>4.1} commands, {:.2} scripts per job   \
             this process: {:>5.1} µs CPU per job",
            self.per_second,
            self.redis.cpu_secs * 1e6 / n,
            self.redis.commands as f64 / n,
            self.redis.scripts as f64 / n,
            self.cpu_secs * 1e6 / n,
        );
        println!(
            "    Redis time per job by command: {}",
            self.redis.top(JOBS, 8)
        );
    }
}

/// Attempts one kept noop instance serves in the opt-in reuse run (`plugins.noop.reuse`).
const REUSE: u32 = 1000;

/// Runs `JOBS` jobs on `nodes` nodes, submitted while they run, then submitted before they
/// start; with `reuse`, noop keeps its instances (opt-in). Returns (submit+run, run alone)
/// jobs/s.
async fn run(nodes: usize, reuse: Option<u32>, redis: &DevRedis) -> (f64, f64) {
    let options = StoreOptions {
        prefix: format!("bench{nodes}-{}", reuse.unwrap_or(1)),
        ..Default::default()
    };
    let store = Store::connect(&redis.url(), options.clone()).await.unwrap();
    let mut runtimes = Vec::new();
    let mut stores = Vec::new();
    for _ in 0..nodes {
        runtimes.push(node::runtime_reusing(reuse).await);
        stores.push(Store::connect(&redis.url(), options.clone()).await.unwrap());
    }
    let client = serve_api(&stores[0], &runtimes[0]).await;
    let start_all = || -> Vec<Node> {
        stores
            .iter()
            .zip(&runtimes)
            .map(|(s, r)| node::start_worker(s, r, CONCURRENCY))
            .collect()
    };
    println!("{}:", setup(nodes, reuse));

    // Warm up (instance pools, connections), then submit+run.
    let running = start_all();
    submit(&client, 2 * BATCH).await;
    drained(&store).await;
    let start = Start::now(redis);
    submit(&client, JOBS).await;
    drained(&store).await;
    let both = start.measured(redis);
    both.print("submit+run");
    stop(running).await;

    // Run alone: the jobs wait in Redis, then the nodes start.
    submit(&client, JOBS).await;
    let start = Start::now(redis);
    let running = start_all();
    drained(&store).await;
    let alone = start.measured(redis);
    alone.print("run alone");
    stop(running).await;
    (both.per_second, alone.per_second)
}

/// Redis bytes per finished job kept, and what the default retention keeps at 1,000 jobs/s.
async fn footprint(redis: &DevRedis) {
    let options = StoreOptions {
        prefix: "footprint".into(),
        ..Default::default()
    };
    // From an empty Redis: what the runs above left would make this run pay for growing
    // Redis's key tables past a power of two (all of it, at once), which a steady load
    // spreads over every job.
    let flushed = support::redis_cli(redis.port(), &["FLUSHALL"]);
    assert_eq!(flushed.trim(), "OK", "FLUSHALL before the footprint run");
    let store = Store::connect(&redis.url(), options.clone()).await.unwrap();
    let runtime = runtime().await;
    let client = serve_api(&store, &runtime).await;
    let before = RedisCounters::read(redis.port());
    let running = vec![node::start_worker(&store, &runtime, CONCURRENCY)];
    submit(&client, JOBS).await;
    drained(&store).await;
    stop(running).await;
    let per_job = RedisCounters::read(redis.port()).since(&before).memory as f64 / JOBS as f64;
    let kept = options
        .succeeded_max
        .min(options.succeeded_retention.as_secs() * 1000) as f64;
    println!(
        "Redis bytes per finished no-op job kept: {per_job:.0}; at the default retention \
         (succeeded: {} s or {} jobs, whichever is fewer) a steady 1,000 jobs/s keeps {:.0} MiB",
        options.succeeded_retention.as_secs(),
        options.succeeded_max,
        per_job * kept / (1024.0 * 1024.0)
    );
}

/// `jobs` no-op jobs through one node; node RSS and Redis memory every tenth of the way.
async fn soak(redis: &DevRedis, jobs: usize) {
    let options = StoreOptions {
        prefix: "soak".into(),
        ..Default::default()
    };
    let store = Store::connect(&redis.url(), options).await.unwrap();
    let runtime = runtime().await;
    let client = serve_api(&store, &runtime).await;
    let running = vec![node::start_worker(&store, &runtime, CONCURRENCY)];
    let step = (jobs / 10).max(BATCH);
    let t0 = Instant::now();
    let mut done = 0;
    println!("soak: {jobs} no-op jobs through one node (ScheduleJobs, default retention)");
    while done < jobs {
        let n = step.min(jobs - done);
        submit(&client, n).await;
        drained(&store).await;
        done += n;
        println!(
            "  {done:>8} jobs  {:>6.0} jobs/s  node RSS {:>6.1} MiB  Redis used_memory {:>6.1} MiB",
            done as f64 / t0.elapsed().as_secs_f64(),
            support::rss_mib(),
            RedisCounters::read(redis.port()).memory as f64 / (1024.0 * 1024.0),
        );
    }
    stop(running).await;
}

/// BullMQ's (end to end, processing) jobs/s, median of its rounds, from its peer bench.
fn bullmq() -> Option<(f64, f64)> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/bullmq/run.sh");
    let out = std::process::Command::new(&script)
        .args([JOBS.to_string(), CONCURRENCY.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{text}");
    if !out.status.success() {
        println!(
            "bullmq peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let figure = |line: &str, label: &str| -> Option<f64> {
        let rest = line.split(label).nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    };
    let mut e2e = Vec::new();
    let mut processing = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("bullmq round")) {
        e2e.extend(figure(line, "end to end "));
        processing.extend(figure(line, "processing "));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    Some((median(&mut e2e)?, median(&mut processing)?))
}

/// How a run is set up, as the output names it.
fn setup(nodes: usize, reuse: Option<u32>) -> String {
    let nodes = format!("{nodes} node{}", if nodes == 1 { "" } else { "s" });
    match reuse {
        Some(n) => format!("{nodes}, noop reuse = {n} (opt-in)"),
        None => nodes,
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut redis = DevRedis::start(dir.path(), Some(free_port()))
            .await
            .expect("redis-server starts");
        println!(
            "{JOBS} no-op jobs through gRPC ScheduleJobs ({BATCH} a call, {IN_FLIGHT} in flight), \
             node concurrency {CONCURRENCY}; redis-server with AOF, fsync every second"
        );
        let mut figures = Vec::new();
        for (nodes, reuse) in [(1, None), (2, None), (1, Some(REUSE))] {
            figures.push((setup(nodes, reuse), run(nodes, reuse, &redis).await));
        }
        footprint(&redis).await;
        let soak_jobs = std::env::var("JOBHOST_BENCH_SOAK_JOBS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        if soak_jobs > 0 {
            soak(&redis, soak_jobs).await;
        }
        redis.stop().await;
        match bullmq() {
            Some((e2e, processing)) => {
                println!(
                    "BullMQ (median of 3): end to end {e2e:.0} jobs/s, processing {processing:.0} jobs/s"
                );
                for (setup, (both, alone)) in figures {
                    println!(
                        "ratio jobhost/BullMQ, {setup}: end to end {:.2}× (goal ≥ 3×), \
                         processing {:.2}× (goal ≥ 2×)",
                        both / e2e,
                        alone / processing
                    );
                }
            }
            None => println!("BullMQ peer skipped: no ratio"),
        }
    });
}
