//! Spawn-and-wait of `/bin/true`: plain, and inside a fresh cgroup with limits (the shell
//! job path). Prints medians and their ratio. Needs root and a writable cgroup hierarchy.

#[path = "support.rs"]
mod support;

use std::time::{Duration, Instant};

use jobhost::sandbox::{CommandSpec, Limits, Sandbox};

const RUNS: usize = 300;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let sandbox = Sandbox::detect();
        if sandbox.hierarchy().is_none() {
            println!("spawn: no writable cgroup hierarchy here (not root?): skipped");
            return;
        }
        let mut plain: Vec<Duration> = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let start = Instant::now();
            tokio::process::Command::new("/bin/true")
                .status()
                .await
                .unwrap();
            plain.push(start.elapsed());
        }
        let command = CommandSpec {
            program: "/bin/true".into(),
            ..Default::default()
        };
        let mut confined: Vec<Duration> = Vec::with_capacity(RUNS);
        for i in 0..RUNS {
            let start = Instant::now();
            let process = sandbox
                .spawn(
                    &format!("bench-{}-{i}", std::process::id()),
                    &command,
                    Limits::default(),
                )
                .unwrap();
            process.wait().await.unwrap();
            confined.push(start.elapsed());
        }
        plain.sort();
        confined.sort();
        let (p, c) = (
            support::percentile(&plain, 0.5),
            support::percentile(&confined, 0.5),
        );
        println!(
            "spawn+wait /bin/true, {RUNS} runs: plain median {p:.2?}, in a fresh cgroup {c:.2?} \
             (ratio {:.2})",
            c.as_secs_f64() / p.as_secs_f64()
        );
    });
}
