//! The job history's cost and speed, with a real redis-server and a real PostgreSQL:
//!
//! - *node throughput, history off vs on*: [`JOBS`] no-op jobs through gRPC `ScheduleJobs`
//!   on one node (submit+run), alternately without history and with it (the store's outbox
//!   on and the archive drain running against PostgreSQL), [`ROUNDS`] times each; medians
//!   and the ratio (goal: on within 10 % of off);
//! - *archive throughput*: [`JOBS`] finished jobs waiting in the outbox, then the drain
//!   started; jobs/s into PostgreSQL until the outbox is empty, per batch size.
//!
//! Run with `just bench` (which builds the plugins and installs redis-server and PostgreSQL
//! first).

#[path = "node.rs"]
mod node;
#[path = "support.rs"]
mod support;

use std::time::{Duration, Instant};

use jobhost::history::{DrainSettings, drain};
use jobhost_config::HistoryConfig;
use jobhost_history::{DevPostgres, History};
use jobhost_store::{DevRedis, Store, StoreOptions, free_port};
use tokio_util::sync::CancellationToken;

/// Jobs per measured run.
const JOBS: usize = 20_000;
/// Alternating off/on runs.
const ROUNDS: usize = 3;
const CONCURRENCY: usize = 50;

async fn outbox_empty(store: &Store) {
    while store.archive_backlog().await.unwrap().0 > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The default `[history]` on the bench's PostgreSQL, but for the batch size.
fn history_config(pg: &DevPostgres, batch: usize) -> HistoryConfig {
    HistoryConfig {
        postgres_url: pg.url(),
        batch_size: batch,
        ..Default::default()
    }
}

/// One submit+run of [`JOBS`] on a fresh prefix; with `history`, the outbox is on and the
/// drain runs. Returns (jobs/s, seconds until the outbox was empty after the last job).
async fn run(
    redis: &DevRedis,
    round: usize,
    history: Option<&History>,
    config: &HistoryConfig,
) -> (f64, f64) {
    let options = StoreOptions {
        prefix: format!(
            "hist{round}{}",
            if history.is_some() { "on" } else { "off" }
        ),
        archive_max: if history.is_some() { 1_000_000 } else { 0 },
        ..Default::default()
    };
    let store = Store::connect(&redis.url(), options).await.unwrap();
    let runtime = node::runtime().await;
    let client = node::serve_api(&store, &runtime).await;
    let stop = CancellationToken::new();
    if let Some(history) = history {
        let settings = DrainSettings::new(config, format!("bench-{round}"));
        tokio::spawn(drain(
            store.clone(),
            history.clone(),
            settings,
            stop.clone(),
        ));
    }
    let worker = node::start_worker(&store, &runtime, CONCURRENCY);
    node::submit(&client, 2 * node::BATCH).await; // warm-up
    node::drained(&store).await;
    outbox_empty(&store).await;
    let start = Instant::now();
    node::submit(&client, JOBS).await;
    node::drained(&store).await;
    let rate = JOBS as f64 / start.elapsed().as_secs_f64();
    let ran = Instant::now();
    outbox_empty(&store).await;
    let lag = ran.elapsed().as_secs_f64();
    node::stop(vec![worker]).await;
    stop.cancel();
    (rate, lag)
}

/// CPU seconds used so far by the bench's PostgreSQL: its postmaster (`postmaster.pid`)
/// and its children (the backends and background workers).
fn postgres_cpu_secs(pg: &DevPostgres) -> f64 {
    let pid_file =
        std::fs::read_to_string(pg.data_dir().join("postmaster.pid")).unwrap_or_default();
    let Some(postmaster) = pid_file.lines().next().map(str::trim) else {
        return 0.0;
    };
    let mut secs = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((pid, rest)) = stat.split_once(" (") else {
            continue;
        };
        let Some((_, fields)) = rest.rsplit_once(") ") else {
            continue;
        };
        // After the name: state, ppid, ..., utime (12th), stime (13th), in clock ticks.
        let f: Vec<&str> = fields.split(' ').collect();
        if f.len() > 12 && (pid == postmaster || f[1] == postmaster) {
            let ticks = |i: usize| f[i].parse::<f64>().unwrap_or(0.0);
            secs += (ticks(11) + ticks(12)) / 100.0; // USER_HZ
        }
    }
    secs
}

/// [`JOBS`] jobs finished with the drain stopped, then the drain started: jobs/s into
/// PostgreSQL until the outbox is empty, with the CPU each side spent per job.
async fn archive_rate(redis: &DevRedis, pg: &DevPostgres, batch: usize) -> f64 {
    let options = StoreOptions {
        prefix: format!("archive{batch}"),
        archive_max: 1_000_000,
        ..Default::default()
    };
    let store = Store::connect(&redis.url(), options).await.unwrap();
    let runtime = node::runtime().await;
    let client = node::serve_api(&store, &runtime).await;
    let worker = node::start_worker(&store, &runtime, CONCURRENCY);
    node::submit(&client, JOBS).await;
    node::drained(&store).await;
    node::stop(vec![worker]).await;
    let config = history_config(pg, batch);
    let history = History::open(&config).await.unwrap();
    let stop = CancellationToken::new();
    let (redis_before, pg_before) = (
        support::RedisCounters::read(redis.port()),
        postgres_cpu_secs(pg),
    );
    let cpu_before = support::process_cpu_secs();
    let start = Instant::now();
    let settings = DrainSettings::new(&config, format!("bench-archive-{batch}"));
    tokio::spawn(drain(store.clone(), history, settings, stop.clone()));
    outbox_empty(&store).await;
    let rate = JOBS as f64 / start.elapsed().as_secs_f64();
    let n = JOBS as f64;
    let redis_used = support::RedisCounters::read(redis.port()).since(&redis_before);
    // (Before the drain stops: its backend's CPU goes with it.)
    let pg_used = postgres_cpu_secs(pg) - pg_before;
    stop.cancel();
    println!(
        "archive throughput, batch {batch:>4}: {rate:>7.0} jobs/s into PostgreSQL; CPU per job: \
         PostgreSQL {:.1} µs, Redis {:.1} µs, this process (drain) {:.1} µs",
        pg_used * 1e6 / n,
        redis_used.cpu_secs * 1e6 / n,
        (support::process_cpu_secs() - cpu_before) * 1e6 / n,
    );
    println!(
        "    Redis time per job by command: {}",
        redis_used.top(JOBS, 6)
    );
    rate
}

/// Jobs/s from the first submission until the last job was archived.
fn archived_rate(run_rate: f64, lag_secs: f64) -> f64 {
    JOBS as f64 / (JOBS as f64 / run_rate + lag_secs)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut redis = DevRedis::start(&dir.path().join("redis"), Some(free_port()))
            .await
            .expect("redis-server starts");
        let pg_dir = tempfile::tempdir().unwrap();
        let mut pg = DevPostgres::start(pg_dir.path(), Some(free_port()))
            .await
            .expect("PostgreSQL starts (`just postgresql` installs it)");
        println!(
            "job history: {JOBS} no-op jobs through gRPC ScheduleJobs, 1 node at concurrency \
             {CONCURRENCY}; redis-server with AOF (fsync every second), PostgreSQL {} with its \
             defaults (fsync on)",
            pg.dir().display()
        );
        let config = history_config(&pg, HistoryConfig::default().batch_size);
        let history = History::open(&config).await.unwrap();
        let rounds = if std::env::var_os("JOBHOST_BENCH_ARCHIVE_ONLY").is_some() { 0 } else { ROUNDS };
        let (mut off, mut on, mut lags) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (rate, _) = run(&redis, round, None, &config).await;
            off.push(rate);
            let (rate, lag) = run(&redis, round, Some(&history), &config).await;
            on.push(rate);
            lags.push(lag);
            println!(
                "  round {round}: history off {:>7.0} jobs/s, on {:>7.0} jobs/s ({:.2}×); \
                 outbox empty {:.2} s after the last job ran (all {JOBS} archived: {:.0} jobs/s)",
                off[round],
                on[round],
                on[round] / off[round],
                lags[round],
                archived_rate(on[round], lags[round])
            );
        }
        if rounds > 0 {
        let (off, on, lag) = (median(&mut off), median(&mut on), median(&mut lags));
        println!(
            "node throughput (median of {ROUNDS}): history off {off:.0} jobs/s, on {on:.0} jobs/s: \
             {:.1} % of off (goal ≥ 90 %); archive lag after the last job {lag:.2} s, so run \
             and archived {:.0} jobs/s ({:.1} % of off: the CPU archiving takes on this \
             machine, PostgreSQL included)",
            100.0 * on / off,
            archived_rate(on, lag),
            100.0 * archived_rate(on, lag) / off
        );
        }
        for batch in [100, 500, 2000] {
            archive_rate(&redis, &pg, batch).await;
        }
        pg.stop().await;
        redis.stop().await;
    });
}
