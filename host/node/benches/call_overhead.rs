//! Plugin call overhead: a fresh instance of `noop` plus its `run` call, through the same
//! `Runtime::run` path jobs take (slot, store, limits, instantiate, call, outcome).
//!
//! Prints median and p99 with the pooling allocator on and off. Run with `just bench`
//! (which builds the plugins first). `JOBHOST_BENCH_POOLING=on|off` measures one mode only,
//! which is handy under a profiler.

#[path = "support.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobhost_config::Config;
use jobhost_runtime::{DiscardEvents, JobInput, RunOptions, Runtime};

const WARMUP: usize = 500;
const SAMPLES: usize = 20_000;

async fn measure(pooling: bool) -> (Vec<Duration>, String) {
    let mut config = Config::default();
    config.runtime.plugins_dir = support::test_plugins_dir();
    config.runtime.cache_dir = None;
    config.runtime.pooling = pooling;
    let runtime = Runtime::new(config).expect("runtime");
    runtime.sync_dir().await.expect("plugins");
    assert!(runtime.plugin_for("noop").is_some(), "noop loaded");
    let job = JobInput {
        id: "bench".into(),
        job_type: "noop".into(),
        spec: "{}".into(),
        attempt: 1,
        labels: Default::default(),
    };
    let options = RunOptions::new(Arc::new(DiscardEvents));
    for _ in 0..WARMUP {
        let report = runtime.run(&job, options.clone()).await.unwrap();
        assert!(report.outcome.is_completed(), "{}", report.outcome);
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        let report = runtime.run(&job, options.clone()).await.unwrap();
        samples.push(start.elapsed());
        assert!(report.outcome.is_completed());
    }
    samples.sort();
    (samples, format!("{:?}", runtime.stats().allocator))
}

fn main() {
    let modes = match std::env::var("JOBHOST_BENCH_POOLING").as_deref() {
        Ok("on") => vec![true],
        Ok("off") => vec![false],
        _ => vec![true, false],
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("plugin call overhead: fresh instance + no-op run, {SAMPLES} samples each");
    println!(
        "{:<8} {:<10} {:>10} {:>10} {:>10}",
        "pooling", "allocator", "median", "p99", "min"
    );
    for pooling in modes {
        let (samples, allocator) = rt.block_on(measure(pooling));
        println!(
            "{:<8} {:<10} {:>10.1?} {:>10.1?} {:>10.1?}",
            if pooling { "on" } else { "off" },
            allocator,
            support::percentile(&samples, 0.5),
            support::percentile(&samples, 0.99),
            samples[0],
        );
    }
}
