//! Helpers shared by the benchmarks (each bench uses a subset).
#![allow(dead_code)]

use std::path::PathBuf;

/// The folder of the test plugins built by `just plugins`.
pub fn test_plugins_dir() -> PathBuf {
    let dir = std::env::var_os("JOBHOST_TEST_PLUGINS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"));
    let dir = dir.join("testing");
    assert!(
        dir.join("noop.wasm").is_file(),
        "no noop.wasm in {}: run `just bench`",
        dir.display()
    );
    dir
}

/// The `p` quantile (0..=1) of sorted samples.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Counters of a redis-server (`INFO`), to say where its time goes.
#[derive(Debug, Clone, Default)]
pub struct RedisCounters {
    /// Per command (`INFO commandstats`): calls and µs spent, scripts' own time included
    /// in `evalsha`.
    pub per_command: std::collections::BTreeMap<String, (u64, u64)>,
    /// CPU seconds (user + system) the server used.
    pub cpu_secs: f64,
    /// Commands run, those inside scripts included (scripts themselves not counted).
    pub commands: u64,
    /// Scripts run (`EVALSHA`/`EVAL`).
    pub scripts: u64,
    /// Bytes of memory in use (`used_memory`).
    pub memory: u64,
}

/// What `redis-cli` prints for `args` sent to the redis-server on `port`.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl RedisCounters {
    /// The counters of the redis-server on `port` now (via `redis-cli`).
    pub fn read(port: u16) -> RedisCounters {
        let text = redis_cli(port, &["INFO", "all"]);
        let mut counters = RedisCounters::default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(v) = line
                .strip_prefix("used_cpu_user:")
                .or_else(|| line.strip_prefix("used_cpu_sys:"))
            {
                counters.cpu_secs += v.parse::<f64>().unwrap_or(0.0);
            } else if let Some(v) = line.strip_prefix("used_memory:") {
                counters.memory = v.parse().unwrap_or(0);
            } else if let Some(rest) = line.strip_prefix("cmdstat_") {
                let (name, stats) = rest.split_once(':').unwrap_or((rest, ""));
                let field = |name: &str| -> u64 {
                    stats
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(name))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                let calls = field("calls=");
                counters
                    .per_command
                    .insert(name.to_owned(), (calls, field("usec=")));
                match name {
                    "evalsha" | "eval" => counters.scripts += calls,
                    "info" | "config|resetstat" | "ping" => {}
                    _ => counters.commands += calls,
                }
            }
        }
        counters
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &RedisCounters) -> RedisCounters {
        let per_command = self
            .per_command
            .iter()
            .map(|(name, (calls, usec))| {
                let (c0, u0) = before.per_command.get(name).copied().unwrap_or_default();
                (name.clone(), (calls - c0, usec - u0))
            })
            .filter(|(_, (calls, _))| *calls > 0)
            .collect();
        RedisCounters {
            per_command,
            cpu_secs: self.cpu_secs - before.cpu_secs,
            commands: self.commands - before.commands,
            scripts: self.scripts - before.scripts,
            memory: self.memory.saturating_sub(before.memory),
        }
    }
}

impl RedisCounters {
    /// The commands that took most of Redis's time, per job of `jobs`: `name calls µs`.
    pub fn top(&self, jobs: usize, n: usize) -> String {
        let mut by_time: Vec<_> = self.per_command.iter().collect();
        by_time.sort_by_key(|(_, (_, usec))| std::cmp::Reverse(*usec));
        by_time
            .iter()
            .take(n)
            .map(|(name, (calls, usec))| {
                format!(
                    "{name} {:.2}×/{:.1} µs",
                    *calls as f64 / jobs as f64,
                    *usec as f64 / jobs as f64
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// CPU seconds (user + system) this process has used.
pub fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// This process's resident set size, in MiB.
pub fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
