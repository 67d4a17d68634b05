//! Plugin call overhead: a fresh instance of `noop` plus its `run` call, through the same
//! `Runtime::run` path jobs take (slot, store, limits, instantiate, call, outcome).
//!
//! Prints median and p99 with the pooling allocator on and off, and with the instance kept
//! between attempts (`plugins.noop.reuse`, opt-in). Run with `just bench` (which builds the
//! plugins first). `JOBHOST_BENCH_POOLING=on|off|reuse` measures one mode only, which is
//! handy under a profiler.

#[path = "support.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobhost_config::Config;
use jobhost_runtime::{DiscardEvents, JobInput, RunOptions, Runtime};

const WARMUP: usize = 500;
const SAMPLES: usize = 20_000;

/// Attempts one kept instance serves in the `reuse` mode.
const REUSE: u32 = 1000;

#[derive(Clone, Copy)]
enum Mode {
    /// A fresh pooled instance per attempt (the default).
    Pooling,
    /// A fresh instance per attempt, mmap'd on demand.
    OnDemand,
    /// Pooling, and `plugins.noop.reuse = REUSE`.
    Reuse,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Pooling => "on",
            Mode::OnDemand => "off",
            Mode::Reuse => "reuse",
        }
    }
}

async fn measure(mode: Mode) -> (Vec<Duration>, String) {
    let mut config = Config::default();
    config.runtime.plugins_dir = support::test_plugins_dir();
    config.runtime.cache_dir = None;
    config.runtime.pooling = !matches!(mode, Mode::OnDemand);
    if let Mode::Reuse = mode {
        config.plugins.entry("noop".into()).or_default().reuse = Some(REUSE);
    }
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
        Ok("on") => vec![Mode::Pooling],
        Ok("off") => vec![Mode::OnDemand],
        Ok("reuse") => vec![Mode::Reuse],
        _ => vec![Mode::Pooling, Mode::OnDemand, Mode::Reuse],
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "plugin call overhead: fresh instance + no-op run, {SAMPLES} samples each \
         (reuse: one instance kept for {REUSE} attempts, plugins.noop.reuse; opt-in)"
    );
    println!(
        "{:<8} {:<10} {:>10} {:>10} {:>10}",
        "pooling", "allocator", "median", "p99", "min"
    );
    for mode in modes {
        let (samples, allocator) = rt.block_on(measure(mode));
        println!(
            "{:<8} {:<10} {:>10.1?} {:>10.1?} {:>10.1?}",
            mode.name(),
            allocator,
            support::percentile(&samples, 0.5),
            support::percentile(&samples, 0.99),
            samples[0],
        );
    }
}
