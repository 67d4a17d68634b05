//! One job's cgroup, on cgroup v1 (one directory per controller) or v2 (one directory).
//!
//! Written against cgroupfs directly rather than through cgroups-rs: measured on this kind of
//! machine, cgroups-rs 0.5 swallows errors when applying memory and blkio limits, its `kill`
//! fails on v1, its `delete` sleeps ~150 ms and then fails with EBUSY, and a fresh cgroup
//! through it costs ~2.6 ms against ~1.7 ms for plain mkdir/write/rmdir. Every limit written
//! here is read back, so a limit the kernel refused is an error, not a silent no-op.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which cgroup layout the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2 (unified), with the controllers jobhost needs enabled for its subtree.
    V2 {
        /// Where jobhost's job cgroups are created.
        root: PathBuf,
    },
    /// cgroup v1 (or hybrid): a directory per controller.
    V1 {
        /// Mount point of the v1 hierarchies (usually `/sys/fs/cgroup`).
        mount: PathBuf,
    },
}

/// Resource limits of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Percent of one CPU (100 = one full core).
    pub cpu_percent: u32,
    /// Memory cap, MiB (swap is not allowed where the kernel lets us say so).
    pub memory_mb: u64,
    /// Most processes and threads at once (a fork bomb hits this).
    pub pids: u64,
    /// Read and write bandwidth on one disk, bytes/s: `(major, minor, bps)` of the whole
    /// disk holding the job's working directory. On v1 only direct I/O and fsync'd
    /// writeback are charged (buffered writes are not throttled); v2 charges writeback too.
    pub io: Option<(u32, u32, u64)>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu_percent: 100,
            memory_mb: 512,
            pids: 512,
            io: None,
        }
    }
}

/// The v1 controllers a job cgroup spans, in creation order.
pub(super) const V1_CONTROLLERS: &[&str] =
    &["cpu", "cpuacct", "memory", "pids", "freezer", "blkio"];

/// CFS period used for CPU limits.
const CPU_PERIOD_US: u64 = 100_000;

/// A job's cgroup. Removing it is explicit ([`JobCgroup::remove`]) because it must be empty.
#[derive(Debug)]
pub struct JobCgroup {
    /// Directories of the cgroup: one on v2, one per controller on v1.
    dirs: Vec<(&'static str, PathBuf)>,
    v2: bool,
    /// The limits written to it; `None` for a cgroup found on disk (only ever cleaned up).
    applied: Option<Limits>,
}

/// Errors creating or driving a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroupfs operation failed.
    #[error("cgroup {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The kernel kept a different value than the one written.
    #[error("cgroup {path}: wrote {wanted:?} but the kernel kept {got:?}")]
    NotApplied {
        /// The file.
        path: PathBuf,
        /// What was written.
        wanted: String,
        /// What it reads back.
        got: String,
    },
    /// Processes were still in the cgroup after the kill loop.
    #[error("cgroup {0} still has processes after every kill attempt")]
    NotEmpty(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(io_error(path))
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(io_error(path))
}

/// Writes `value` and checks the kernel kept it (as read back through `normalize`).
fn write_checked(
    path: &Path,
    value: &str,
    normalize: impl Fn(&str) -> String,
) -> Result<(), CgroupError> {
    write(path, value)?;
    let got = read(path)?;
    if normalize(&got) != normalize(value) {
        return Err(CgroupError::NotApplied {
            path: path.to_owned(),
            wanted: value.to_owned(),
            got,
        });
    }
    Ok(())
}

impl JobCgroup {
    /// Creates the cgroup `name` under jobhost's part of `hierarchy`, with `limits`.
    pub fn create(hierarchy: &Hierarchy, name: &str, limits: Limits) -> Result<Self, CgroupError> {
        let mut cgroup = JobCgroup::existing(hierarchy, name);
        for (_, dir) in &cgroup.dirs {
            // A fresh directory or an error: an existing one may hold another job's processes.
            fs::create_dir(dir).map_err(io_error(dir))?;
        }
        if let Err(e) = cgroup.set_limits(limits) {
            let _ = cgroup.remove();
            return Err(e);
        }
        Ok(cgroup)
    }

    /// Its name (the last component of its directories).
    pub fn name(&self) -> &str {
        self.dirs[0]
            .1
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }

    /// Sets `limits`, writing only the ones that differ from what the cgroup already has.
    /// Limits are only ever set on an empty cgroup (a pre-created one taken for a job).
    pub fn set_limits(&mut self, limits: Limits) -> Result<(), CgroupError> {
        self.apply(self.applied, limits)?;
        self.applied = Some(limits);
        Ok(())
    }

    /// The cgroup `name` as it may already exist (for cleanup), without creating anything.
    pub fn existing(hierarchy: &Hierarchy, name: &str) -> Self {
        let (dirs, v2) = match hierarchy {
            Hierarchy::V2 { root } => (vec![("", root.join(name))], true),
            Hierarchy::V1 { mount } => (
                V1_CONTROLLERS
                    .iter()
                    .map(|c| (*c, mount.join(c).join(super::PARENT).join(name)))
                    .collect(),
                false,
            ),
        };
        JobCgroup {
            dirs,
            v2,
            applied: None,
        }
    }

    fn dir(&self, controller: &str) -> &Path {
        self.dirs
            .iter()
            .find(|(c, _)| self.v2 || *c == controller)
            .map(|(_, d)| d.as_path())
            .expect("every controller has a directory")
    }

    /// Writes each limit of `limits` that differs from `old` (every limit when `old` is
    /// `None`). Only ever called on a new cgroup or a pre-created one; an I/O limit is only
    /// ever added, never lifted (the pool's cgroups are made without one: see
    /// `Sandbox::detect_with`).
    fn apply(&self, old: Option<Limits>, limits: Limits) -> Result<(), CgroupError> {
        let changed = |field: fn(&Limits) -> u64| old.is_none_or(|o| field(&o) != field(&limits));
        let cpu = changed(|l| u64::from(l.cpu_percent));
        let memory = changed(|l| l.memory_mb);
        let pids = changed(|l| l.pids);
        let io = limits.io.filter(|_| old.is_none_or(|o| o.io != limits.io));
        let bytes = limits.memory_mb.saturating_mul(1024 * 1024);
        let quota = u64::from(limits.cpu_percent) * CPU_PERIOD_US / 100;
        let same = |s: &str| s.to_owned();
        if self.v2 {
            let dir = self.dir("");
            if cpu {
                write_checked(
                    &dir.join("cpu.max"),
                    &format!("{quota} {CPU_PERIOD_US}"),
                    same,
                )?;
            }
            if memory {
                write_checked(&dir.join("memory.max"), &bytes.to_string(), same)?;
                // No swap, where the kernel has swap accounting.
                let _ = write(&dir.join("memory.swap.max"), "0");
            }
            if pids {
                write_checked(&dir.join("pids.max"), &limits.pids.to_string(), same)?;
            }
            if let Some((major, minor, bps)) = io {
                let line = format!("{major}:{minor} rbps={bps} wbps={bps}");
                write(&dir.join("io.max"), &line)?;
                let kept = read(&dir.join("io.max"))?;
                if !kept.contains(&format!("rbps={bps} wbps={bps}")) {
                    return Err(CgroupError::NotApplied {
                        path: dir.join("io.max"),
                        wanted: line,
                        got: kept,
                    });
                }
            }
        } else {
            if cpu {
                let dir = self.dir("cpu");
                write_checked(
                    &dir.join("cpu.cfs_period_us"),
                    &CPU_PERIOD_US.to_string(),
                    same,
                )?;
                write_checked(&dir.join("cpu.cfs_quota_us"), &quota.to_string(), same)?;
            }
            if memory {
                let dir = self.dir("memory");
                // The kernel rounds to pages: compare page counts.
                let pages = |s: &str| (s.parse::<u64>().unwrap_or(0) / 4096).to_string();
                let mut files = vec![dir.join("memory.limit_in_bytes")];
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    // memory+swap may never be below memory: raise it first, lower it last.
                    let raising = old.is_some_and(|o| o.memory_mb < limits.memory_mb);
                    if raising {
                        files.insert(0, memsw);
                    } else {
                        files.push(memsw);
                    }
                }
                for file in files {
                    write_checked(&file, &bytes.to_string(), pages)?;
                }
            }
            if pids {
                write_checked(
                    &self.dir("pids").join("pids.max"),
                    &limits.pids.to_string(),
                    same,
                )?;
            }
            if let Some((major, minor, bps)) = io {
                let blkio = self.dir("blkio");
                let line = format!("{major}:{minor} {bps}");
                for file in [
                    "blkio.throttle.read_bps_device",
                    "blkio.throttle.write_bps_device",
                ] {
                    write_checked(&blkio.join(file), &line, same)?;
                }
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` files a new process must be written into (one per directory; on
    /// v1, `blkio` only when the job has an I/O limit, since each move costs ~15 µs).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        let unthrottled = self.applied.is_some_and(|l| l.io.is_none());
        self.dirs
            .iter()
            .filter(|(c, _)| !(unthrottled && *c == "blkio"))
            .map(|(_, d)| d.join("cgroup.procs"))
            .collect()
    }

    /// Process ids currently in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let dir = if self.v2 {
            self.dir("")
        } else {
            self.dir("pids")
        };
        fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// True if the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let (file, key) = if self.v2 {
            (self.dir("").join("memory.events"), "oom_kill")
        } else {
            (self.dir("memory").join("memory.oom_control"), "oom_kill")
        };
        fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .any(|(k, v)| k == key && v.trim().parse::<u64>().unwrap_or(0) > 0)
    }

    /// CPU time used by the cgroup.
    pub fn cpu_time(&self) -> Duration {
        if self.v2 {
            let stat = fs::read_to_string(self.dir("").join("cpu.stat")).unwrap_or_default();
            let usec = stat
                .lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            Duration::from_micros(usec)
        } else {
            let ns = read(&self.dir("cpuacct").join("cpuacct.usage"))
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            Duration::from_nanos(ns)
        }
    }

    /// True if any of its directories exists.
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|(_, d)| d.exists())
    }

    /// The memory cap the kernel holds for it, in bytes.
    pub fn memory_limit(&self) -> Option<u64> {
        let file = if self.v2 {
            self.dir("").join("memory.max")
        } else {
            self.dir("memory").join("memory.limit_in_bytes")
        };
        read(&file).ok()?.parse().ok()
    }

    /// Peak memory use of the cgroup, in bytes (0 on v2 before Linux 5.19, which has no
    /// `memory.peak`).
    pub fn peak_memory(&self) -> u64 {
        let file = if self.v2 {
            self.dir("").join("memory.peak")
        } else {
            self.dir("memory").join("memory.max_usage_in_bytes")
        };
        read(&file).ok().and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// Kills every process in the cgroup, including ones that left the job's process group
    /// (setsid) or ignore SIGTERM, and waits until the cgroup is empty. v2 uses `cgroup.kill`
    /// where the kernel has it (5.14+); otherwise the cgroup is frozen (v1 freezer, v2
    /// `cgroup.freeze`) so nothing can fork while its processes are killed one by one, then
    /// thawed so they can die.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = self.pids();
            if pids.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(CgroupError::NotEmpty(self.dirs[0].1.clone()));
            }
            let kill_file = self.v2.then(|| self.dir("").join("cgroup.kill"));
            if let Some(kill_file) = kill_file.filter(|f| f.exists()) {
                write(&kill_file, "1")?;
            } else {
                // v1 freezer, or v2 before cgroup.kill (Linux < 5.14) with cgroup.freeze.
                let (freezer, frozen, thawed) = if self.v2 {
                    (self.dir("").join("cgroup.freeze"), "1", "0")
                } else {
                    (
                        self.dir("freezer").join("freezer.state"),
                        "FROZEN",
                        "THAWED",
                    )
                };
                let _ = write(&freezer, frozen);
                for pid in self.pids() {
                    super::signal::kill(pid, super::signal::SIGKILL);
                }
                let _ = write(&freezer, thawed);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Removes the (empty) cgroup directories, retrying briefly while the kernel finishes
    /// tearing down the last process.
    pub fn remove(&self) -> Result<(), CgroupError> {
        for (_, dir) in self.dirs.iter().rev() {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => return Err(io_error(dir)(e)),
                }
            }
        }
        Ok(())
    }
}
