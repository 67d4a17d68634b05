//! Native processes in real cgroups (run as root): limits hold, OOM is reported, fork bombs
//! are capped, and a stop leaves nothing behind.

use std::time::{Duration, Instant};

use jobhost_sandbox::{CommandSpec, JobCgroup, Limits, Sandbox, SpawnError, signal};

fn sh(script: &str) -> CommandSpec {
    CommandSpec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: None,
    }
}

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::detect();
    assert!(
        sandbox.hierarchy().is_some(),
        "these tests need root and a writable cgroup hierarchy"
    );
    sandbox
}

#[tokio::test]
async fn exit_codes_are_reported_and_the_cgroup_is_removed() {
    let sandbox = sandbox();
    let process = sandbox.spawn(&sh("exit 7"), Limits::default()).unwrap();
    let cgroup = JobCgroup::existing(sandbox.hierarchy().unwrap(), process.cgroup_name().unwrap());
    assert!(cgroup.exists());
    let report = process.wait().await.unwrap();
    assert_eq!(
        (report.code, report.signal, report.oom_killed),
        (Some(7), None, false)
    );
    // Emptied cgroups are removed by the warm pool's thread, just after the report.
    let start = Instant::now();
    while cgroup.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "cgroup not removed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_memory_hog_is_oom_killed_and_reported() {
    let sandbox = sandbox();
    let limits = Limits {
        memory_mb: 32,
        ..Limits::default()
    };
    // python3 allocates and touches 256 MiB.
    let hog = CommandSpec {
        program: "python3".into(),
        args: vec![
            "-c".into(),
            "b = bytearray(256 * 1024 * 1024); print(len(b))".into(),
        ],
        env: vec![("PATH".into(), "/usr/bin:/bin:/usr/local/bin".into())],
        cwd: None,
    };
    let report = sandbox.spawn(&hog, limits).unwrap().wait().await.unwrap();
    assert!(report.oom_killed, "{report:?}");
    assert_eq!(report.signal, Some(signal::SIGKILL), "{report:?}");
    assert!(report.peak_memory <= 33 * 1024 * 1024, "{report:?}");
}

#[tokio::test]
async fn a_job_asking_more_memory_than_the_warm_default_gets_it() {
    // Warm cgroups hold the default 512 MiB; raising the cap (memory and memory+swap, in
    // that order on v1) must work, and the job's peak is its own.
    let sandbox = sandbox();
    let limits = Limits {
        memory_mb: 1024,
        ..Limits::default()
    };
    let big = CommandSpec {
        program: "python3".into(),
        args: vec![
            "-c".into(),
            "b = bytearray(700 * 1024 * 1024); print(len(b))".into(),
        ],
        env: vec![("PATH".into(), "/usr/bin:/bin:/usr/local/bin".into())],
        cwd: None,
    };
    let report = sandbox.spawn(&big, limits).unwrap().wait().await.unwrap();
    assert_eq!(
        (report.code, report.oom_killed),
        (Some(0), false),
        "{report:?}"
    );
    assert!(report.peak_memory >= 700 * 1024 * 1024, "{report:?}");
}

#[tokio::test]
async fn each_job_accounts_only_for_itself() {
    let sandbox = sandbox();
    // A fixed amount of work (~0.15 s of CPU natively), whatever else the machine is doing.
    let work = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done";
    let busy = sandbox
        .spawn(&sh(work), Limits::default())
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert!(busy.cpu_time >= Duration::from_millis(50), "{busy:?}");
    let idle = sandbox
        .spawn(&sh("true"), Limits::default())
        .unwrap()
        .wait()
        .await
        .unwrap();
    // Relative, so it holds on slow (emulated) machines too: `true` is a tiny fraction.
    assert!(idle.cpu_time * 4 < busy.cpu_time, "{idle:?} vs {busy:?}");
}

#[tokio::test]
async fn cpu_is_held_to_its_quota() {
    let sandbox = sandbox();
    let limits = Limits {
        cpu_percent: 20,
        ..Limits::default()
    };
    let process = sandbox.spawn(&sh("while :; do :; done"), limits).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = process.stop(Duration::from_millis(100)).await.unwrap();
    let used = report.cpu_time.as_secs_f64();
    // 20 % of one core over ~2 s is ~0.4 s of CPU; allow scheduling slack either way.
    assert!(
        (0.25..=0.55).contains(&used),
        "used {used:.3} s of CPU in ~2 s at 20 %"
    );
}

#[tokio::test]
async fn a_fork_bomb_is_capped_by_pids_and_stopped_cleanly() {
    let sandbox = sandbox();
    let limits = Limits {
        pids: 32,
        ..Limits::default()
    };
    let bomb = sh("bomb() { bomb | bomb & }; bomb; sleep 30");
    let process = sandbox.spawn(&bomb, limits).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let count = process.pids().len();
    assert!(count <= 32, "{count} processes despite a cap of 32");
    let pids = process.pids();
    process.stop(Duration::from_millis(100)).await.unwrap();
    assert!(
        pids.iter().all(|p| !signal::alive(*p)),
        "every bomb process is gone"
    );
}

#[tokio::test]
async fn stop_kills_children_that_ignore_sigterm_or_escaped_with_setsid() {
    let sandbox = sandbox();
    let script = r#"trap "" TERM
setsid sh -c 'trap "" TERM; sleep 1000' &
sh -c 'trap "" TERM; sleep 1000' &
sleep 1000"#;
    let process = sandbox.spawn(&sh(script), Limits::default()).unwrap();
    let start = Instant::now();
    while process.pids().len() < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "children did not start: {:?}",
            process.pids()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pids = process.pids();
    let report = process.stop(Duration::from_millis(100)).await.unwrap();
    assert_eq!(
        report.signal,
        Some(signal::SIGKILL),
        "the shell ignored SIGTERM: {report:?}"
    );
    for pid in pids {
        assert!(!signal::alive(pid), "pid {pid} survived the stop");
    }
}

#[tokio::test]
async fn a_missing_executable_is_a_clear_error() {
    let sandbox = sandbox();
    let missing = CommandSpec {
        program: "/no/such/tool".into(),
        ..Default::default()
    };
    let err = sandbox.spawn(&missing, Limits::default()).err().unwrap();
    assert!(matches!(err, SpawnError::NotFound(_)), "{err:?}");
    assert_eq!(err.to_string(), "no such executable: /no/such/tool");
}

#[tokio::test]
async fn a_limit_the_kernel_refuses_is_an_error_not_a_silent_no_op() {
    let sandbox = sandbox();
    let bad = Limits {
        cpu_percent: 0,
        ..Limits::default()
    };
    let err = sandbox.spawn(&sh("true"), bad).err();
    assert!(err.is_some(), "a zero CPU quota is refused by the kernel");
}

#[tokio::test]
async fn a_restarted_node_removes_the_cgroups_a_crashed_one_left() {
    let sandbox = sandbox();
    // A pid that existed and is gone: the "crashed node".
    let mut gone = std::process::Command::new("/bin/true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let hierarchy = sandbox.hierarchy().unwrap();
    let name = format!("{dead_pid}-{}", std::process::id());
    let cgroup = JobCgroup::create(hierarchy, &name, Limits::default()).unwrap();
    let process = sandbox.spawn_in(cgroup, &sh("sleep 1000")).unwrap();
    let pids = process.pids();
    // The crash: nobody cleans up, neither the job nor the node's unused warm cgroups.
    std::mem::forget(process);
    assert!(pids.iter().all(|p| signal::alive(*p)));
    let warm = JobCgroup::create(
        hierarchy,
        &format!("{dead_pid}-{}-warm", std::process::id()),
        Limits::default(),
    )
    .unwrap();

    assert!(sandbox.reap_orphans() >= 2);
    assert!(!warm.exists(), "the crashed node's warm cgroup is removed");
    for pid in pids {
        assert!(!signal::alive(pid), "orphaned job process {pid} survived");
    }
    assert!(!JobCgroup::existing(hierarchy, &name).exists());
}

#[tokio::test]
async fn direct_writes_are_throttled_to_the_io_limit() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let (major, minor) =
        jobhost_sandbox::disk_of(dir.path()).expect("/var/tmp is on a block device");
    let bps = 2 * 1024 * 1024;
    let limits = Limits {
        io: Some((major, minor, bps)),
        ..Limits::default()
    };
    let file = dir.path().join("out");
    // 6 MiB of direct I/O at 2 MiB/s: about 3 s. (On cgroup v1 buffered writes are not
    // charged, which is why the job writes with O_DIRECT.)
    let script = format!(
        "dd if=/dev/zero of={} bs=1M count=6 oflag=direct 2>/dev/null",
        file.display()
    );
    let start = Instant::now();
    let report = sandbox
        .spawn(&sh(&script), limits)
        .unwrap()
        .wait()
        .await
        .unwrap();
    let took = start.elapsed().as_secs_f64();
    assert_eq!(report.code, Some(0), "{report:?}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 6 * 1024 * 1024);
    let rate = 6.0 * 1024.0 * 1024.0 / took;
    assert!(
        (0.6 * bps as f64..=1.3 * bps as f64).contains(&rate),
        "wrote at {rate:.0} B/s under a {bps} B/s limit ({took:.2} s)"
    );
}
