//! Pre-created ("warm") job cgroups, so neither the start nor the end of a job pays for
//! creating or removing one.
//!
//! Creating a cgroup with its limits costs more than starting a small process (measured on
//! v1 with six controllers: ~160 µs of mkdir and ~150 µs of limit writes and read-backs),
//! and removing it ~140 µs more. A background thread keeps a few empty cgroups ready with
//! the default limits and removes the ones jobs are done with; a job takes one and writes
//! only the limits that differ. Cgroups keep the name they were made with (cgroup v2 does
//! not allow renaming them). They are never reused: each job gets one no process has been
//! in, so its accounting (CPU time, peak memory, OOM kills) is the job's alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use super::cgroup::{CgroupError, Hierarchy, JobCgroup, Limits};

/// Job cgroup names are unique within the process (several sandboxes may share it).
static NEXT: AtomicU64 = AtomicU64::new(0);

/// How long the refill thread waits after it failed to create a cgroup.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// A new job cgroup name: this process's pid (so a node restarted after a crash can tell
/// its predecessor's leftovers from live nodes' cgroups), a random value fixed for the
/// process (two processes with one pid, e.g. PID 1 in two containers sharing a cgroupfs, or
/// a restart that got the same pid, never share names), then a sequence number.
pub(super) fn new_name() -> String {
    static PROCESS: OnceLock<u32> = OnceLock::new();
    let process = PROCESS.get_or_init(rand::random::<u32>);
    format!(
        "{}-{process:08x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A set of ready job cgroups and the thread that keeps it full and removes used ones.
/// Dropping it stops the thread and removes the cgroups no job took.
#[derive(Debug)]
pub(super) struct WarmPool {
    shared: Arc<Shared>,
}

/// Hands a job's emptied cgroup to the pool's thread for removal.
#[derive(Debug, Clone)]
pub(super) struct Retirer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    hierarchy: Hierarchy,
    limits: Limits,
    size: usize,
    state: Mutex<State>,
    /// Signalled when a cgroup was taken or retired, or the pool closed.
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    ready: Vec<JobCgroup>,
    /// Emptied cgroups of finished jobs, to remove.
    retired: Vec<JobCgroup>,
    closed: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WarmPool {
    /// Keeps `size` cgroups with `limits` ready in `hierarchy`. `None` if `size` is zero or
    /// the refill thread cannot start (jobs then create their own cgroups).
    pub(super) fn start(hierarchy: &Hierarchy, limits: Limits, size: usize) -> Option<Self> {
        if size == 0 {
            return None;
        }
        let shared = Arc::new(Shared {
            hierarchy: hierarchy.clone(),
            limits,
            size,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        let started = std::thread::Builder::new()
            .name("jobhost-cgroups".into())
            .spawn(move || refill(&worker));
        match started {
            Ok(_) => Some(WarmPool { shared }),
            Err(e) => {
                tracing::warn!("cannot start the cgroup refill thread ({e}): no warm cgroups");
                None
            }
        }
    }

    /// An unused cgroup with `limits`: a warm one, or a new one when none is ready.
    pub(super) fn take(&self, limits: Limits) -> Result<JobCgroup, CgroupError> {
        let warm = self.shared.state().ready.pop();
        self.shared.wake.notify_one();
        let Some(mut cgroup) = warm else {
            return JobCgroup::create(&self.shared.hierarchy, &new_name(), limits);
        };
        if let Err(e) = cgroup.set_limits(limits) {
            let _ = cgroup.remove();
            return Err(e);
        }
        Ok(cgroup)
    }

    /// Where jobs hand back their cgroups.
    pub(super) fn retirer(&self) -> Retirer {
        Retirer {
            shared: self.shared.clone(),
        }
    }

    /// How many cgroups are ready now.
    #[cfg(test)]
    fn ready(&self) -> usize {
        self.shared.state().ready.len()
    }
}

impl Retirer {
    /// Removes `cgroup`, which must be empty, on the pool's thread (here, once the pool is
    /// gone).
    pub(super) fn retire(&self, cgroup: JobCgroup) {
        let mut state = self.shared.state();
        if state.closed {
            drop(state);
            remove(&cgroup);
            return;
        }
        state.retired.push(cgroup);
        drop(state);
        self.shared.wake.notify_one();
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        let (ready, retired) = {
            let mut state = self.shared.state();
            state.closed = true;
            (
                std::mem::take(&mut state.ready),
                std::mem::take(&mut state.retired),
            )
        };
        self.shared.wake.notify_all();
        for cgroup in ready.iter().chain(&retired) {
            remove(cgroup);
        }
    }
}

fn remove(cgroup: &JobCgroup) {
    if let Err(e) = cgroup.remove() {
        tracing::error!("cannot remove job cgroup {}: {e}", cgroup.name());
    }
}

/// The pool's thread: removes retired cgroups, and creates new ones while fewer than `size`
/// are ready, until the pool closes.
fn refill(shared: &Shared) {
    loop {
        let retired = {
            let mut state = shared.state();
            while !state.closed && state.retired.is_empty() && state.ready.len() >= shared.size {
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if state.closed {
                return;
            }
            std::mem::take(&mut state.retired)
        };
        // Removal first: a job start never waits on it, and it frees kernel memory.
        for cgroup in &retired {
            remove(cgroup);
        }
        if shared.state().ready.len() >= shared.size {
            continue;
        }
        match JobCgroup::create(&shared.hierarchy, &new_name(), shared.limits) {
            Ok(cgroup) => {
                let mut state = shared.state();
                if state.closed {
                    drop(state);
                    let _ = cgroup.remove();
                    return;
                }
                state.ready.push(cgroup);
            }
            Err(e) => {
                tracing::warn!("cannot pre-create a job cgroup ({e}); retrying in 5 s");
                let state = shared.state();
                let _ = shared.wake.wait_timeout(state, RETRY_AFTER);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs root and a writable cgroup hierarchy at /sys/fs/cgroup (v1 or v2).
    #[test]
    fn the_pool_refills_and_hands_out_cgroups_with_the_asked_limits() {
        let root = std::path::Path::new("/sys/fs/cgroup");
        let sandbox = crate::Sandbox::detect_at(root, false);
        let Some(hierarchy) = sandbox.hierarchy() else {
            panic!("this test needs root and a writable cgroup hierarchy");
        };
        let pool = WarmPool::start(hierarchy, Limits::default(), 2).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool.ready() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the pool never filled"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let warm: Vec<String> = pool
            .shared
            .state()
            .ready
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let limits = Limits {
            memory_mb: 64,
            ..Limits::default()
        };
        let cgroup = pool.take(limits).unwrap();
        assert!(
            warm.contains(&cgroup.name().to_owned()),
            "a ready one was taken"
        );
        assert_eq!(cgroup.memory_limit(), Some(64 * 1024 * 1024));
        cgroup.remove().unwrap();
        drop(pool);
        for name in warm {
            assert!(
                !JobCgroup::existing(hierarchy, &name).exists(),
                "{name} left behind"
            );
        }
    }
}
