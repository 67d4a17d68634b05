//! Open-loop latency: jobs arrive through gRPC `ScheduleJob` at a fixed rate (1,000 a
//! second for 30 s by default; `JOBHOST_BENCH_RATE`, `JOBHOST_BENCH_SECS`), each request
//! sent on its tick whether or not earlier ones were answered. Prints p50/p99/max from
//! sending the request to the plugin starting (the attempt's `started_ms`, stamped by Redis's
//! clock on this machine), and from sending to the answer. Goal: p99 < 5 ms.
//!
//! Run with `just bench`.

#[path = "node.rs"]
mod node;
#[path = "support.rs"]
mod support;

use std::time::Duration;

use jobhost_store::{DevRedis, Store, StoreOptions, free_port, now_ms};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rate = env_or("JOBHOST_BENCH_RATE", 1_000).max(1);
    let secs = env_or("JOBHOST_BENCH_SECS", 30).max(1);
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut redis = DevRedis::start(dir.path(), Some(free_port()))
            .await
            .expect("redis-server starts");
        let store = Store::connect(&redis.url(), StoreOptions::default())
            .await
            .unwrap();
        let runtime = node::runtime().await;
        let running = vec![node::start_worker(&store, &runtime, 50)];
        let client = node::serve_api(&store, &runtime).await;
        let job = node::noop();
        println!(
            "open loop: {rate} no-op jobs/s through gRPC ScheduleJob for {secs} s, one node (concurrency 50)"
        );
        // The client runs on its own thread and runtime, so its timers and tasks do not
        // queue behind the node's.
        let sent = std::thread::spawn(move || {
            let client_rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("client runtime");
            client_rt.block_on(async move {
                let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut sent = Vec::new();
                for _ in 0..rate * secs {
                    tick.tick().await;
                    let (mut client, job) = (client.clone(), job.clone());
                    sent.push(tokio::spawn(async move {
                        let at = now_ms();
                        let started = std::time::Instant::now();
                        let answer = client.schedule_job(job).await.expect("ScheduleJob");
                        let answered = started.elapsed();
                        (at, answered, answer.into_inner().job.unwrap().id)
                    }));
                }
                let mut answers = Vec::with_capacity(sent.len());
                for handle in sent {
                    answers.push(handle.await.unwrap());
                }
                answers
            })
        })
        .join()
        .expect("client thread");
        let mut to_start = Vec::new();
        let mut to_answer = Vec::new();
        for (at, answered, id) in sent {
            to_answer.push(answered.as_micros() as u64);
            let started = loop {
                let record = store.get(&id).await.unwrap().unwrap();
                if let Some(attempt) = record.history.first() {
                    break attempt.started_ms;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            };
            to_start.push(started.saturating_sub(at));
        }
        to_start.sort_unstable();
        to_answer.sort_unstable();
        println!(
            "  request to plugin start: p50 {} ms  p99 {} ms  max {} ms (goal p99 < 5 ms)",
            support::percentile(&to_start, 0.5),
            support::percentile(&to_start, 0.99),
            to_start.last().unwrap()
        );
        println!(
            "  request to answer:       p50 {:.2} ms  p99 {:.2} ms",
            support::percentile(&to_answer, 0.5) as f64 / 1000.0,
            support::percentile(&to_answer, 0.99) as f64 / 1000.0,
        );
        node::stop(running).await;
        redis.stop().await;
    });
}
