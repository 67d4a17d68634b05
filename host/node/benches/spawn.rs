//! Spawn-and-wait of `/bin/true`: plain, and inside a fresh cgroup with limits (the shell
//! job path), both with warm cgroups (the default) and with each cgroup created on the spawn
//! path. Prints medians and their ratios. Needs root and a writable cgroup hierarchy.

#[path = "support.rs"]
mod support;

use std::time::{Duration, Instant};

use jobhost_sandbox::{CommandSpec, Limits, Options, Sandbox};

const RUNS: usize = 300;

/// One spawn-and-wait of `/bin/true`: plain with `None`, else confined in `sandbox`.
async fn once(sandbox: Option<&Sandbox>) -> Duration {
    let start = Instant::now();
    match sandbox {
        None => {
            tokio::process::Command::new("/bin/true")
                .status()
                .await
                .unwrap();
        }
        Some(sandbox) => {
            let command = CommandSpec {
                program: "/bin/true".into(),
                ..Default::default()
            };
            let process = sandbox.spawn(&command, Limits::default()).unwrap();
            process.wait().await.unwrap();
        }
    }
    start.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    support::percentile(&times, 0.5)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let warm = Sandbox::detect();
        if warm.hierarchy().is_none() {
            println!("spawn: no writable cgroup hierarchy here (not root?): skipped");
            return;
        }
        let cold = Sandbox::detect_with(Options {
            warm_cgroups: 0,
            ..Options::default()
        });
        // Interleaved, so drift in the machine's speed affects the three alike.
        let (mut plain, mut warm_times, mut cold_times) = (vec![], vec![], vec![]);
        for _ in 0..RUNS {
            plain.push(once(None).await);
            warm_times.push(once(Some(&warm)).await);
            cold_times.push(once(Some(&cold)).await);
        }
        let (plain, warm, cold) = (median(plain), median(warm_times), median(cold_times));
        let ratio = |d: Duration| d.as_secs_f64() / plain.as_secs_f64();
        println!(
            "spawn+wait /bin/true, {RUNS} runs each, interleaved, medians: plain {plain:.2?}; \
             in a fresh cgroup: warm (default) {warm:.2?} (ratio {:.2}), created on the spawn \
             path {cold:.2?} (ratio {:.2})",
            ratio(warm),
            ratio(cold)
        );
    });
}
