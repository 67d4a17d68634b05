//! Pending timers cost the host nothing: 100k timer jobs wait as delayed jobs in Redis, not
//! as instances or tasks. A real `jobhost serve` process runs them; the bench prints that
//! node's RSS before and while they wait, and how late they fire (fired − due, p50/p99)
//! when they come due, spread over 30 s.
//!
//! Run with `just bench` (which builds the plugins and installs redis-server first).

#[path = "support.rs"]
mod support;

use std::time::Duration;

use jobhost_store::{DevRedis, NewJob, Store, StoreOptions, free_port, now_ms};

const TIMERS: usize = 100_000;
const SPREAD_MS: u64 = 30_000;
const LEAD_MS: u64 = 20_000;

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut redis = DevRedis::start(dir.path(), Some(free_port()))
            .await
            .expect("redis-server starts");
        let store = Store::connect(&redis.url(), StoreOptions::default())
            .await
            .unwrap();

        let config = dir.path().join("node.toml");
        std::fs::write(
            &config,
            format!(
                "[redis]\nurl = {:?}\n[runtime]\ncache = false\n[worker]\nconcurrency = 64\n\
                 [api]\ngrpc_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n\
                 [plugins.timer]\ngrants = [\"http\"]\n",
                redis.url()
            ),
        )
        .unwrap();
        let plugins = support::test_plugins_dir().join("..");
        let mut node = std::process::Command::new(env!("CARGO_BIN_EXE_jobhost"))
            .args(["--config", config.to_str().unwrap(), "serve"])
            .args(["--plugins-dir", plugins.to_str().unwrap()])
            .env_remove("JOBHOST_REDIS_URL")
            .env("JOBHOST_LOG", "warn")
            .env("JOBHOST_TLS_ENABLED", "false")
            .spawn()
            .expect("jobhost starts");
        while store.nodes().await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let idle = rss_mib(node.id());

        // Due times spread over SPREAD_MS, starting LEAD_MS from now (enough to enqueue all).
        let start = now_ms() + LEAD_MS;
        let mut ids = Vec::with_capacity(TIMERS);
        for chunk in (0..TIMERS).collect::<Vec<_>>().chunks(1000) {
            let enqueues = chunk.iter().map(|i| {
                let due = start + (*i as u64 * SPREAD_MS) / TIMERS as u64;
                let job = NewJob {
                    job_type: "timer".into(),
                    spec: format!(
                        r#"{{"duration_seconds":0,"timer_name":"t{i}","fire_at_ms":{due}}}"#
                    ),
                    run_at_ms: Some(due),
                    ..Default::default()
                };
                let store = store.clone();
                async move { store.enqueue(&job).await.unwrap().0 }
            });
            ids.extend(futures::future::join_all(enqueues).await);
        }
        assert!(now_ms() < start, "enqueueing took longer than the lead time");
        let pending = rss_mib(node.id());
        println!(
            "{TIMERS} pending timers: node RSS {idle:.0} MiB idle, {pending:.0} MiB with all pending \
             (+{:.1} MiB; the waits live in Redis)",
            pending - idle
        );

        // Wait until all have fired.
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if now_ms() < start + SPREAD_MS {
                continue;
            }
            let records = futures::future::join_all(ids.iter().map(|id| store.get(id))).await;
            let mut lateness: Vec<u64> = Vec::with_capacity(TIMERS);
            let mut done = true;
            for record in records.into_iter().map(|r| r.unwrap().unwrap()) {
                let Some(output) = record.output else {
                    done = false;
                    break;
                };
                let out: serde_json::Value = serde_json::from_str(&output).unwrap();
                let late = out["fired_at_ms"].as_u64().unwrap() - out["scheduled_at_ms"].as_u64().unwrap();
                lateness.push(late);
            }
            if !done {
                continue;
            }
            lateness.sort_unstable();
            println!(
                "fired {TIMERS} timers due over {} s: lateness p50 {} ms, p99 {} ms, max {} ms",
                SPREAD_MS / 1000,
                support::percentile(&lateness, 0.5),
                support::percentile(&lateness, 0.99),
                lateness[lateness.len() - 1],
            );
            break;
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &node.id().to_string()])
            .status();
        let _ = node.wait();
        redis.stop().await;
    });
}
