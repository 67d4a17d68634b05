//! Native processes under cgroups: the only code that touches cgroups and signals.
//!
//! A job process is placed in a fresh cgroup (CPU quota, memory cap without swap, pids cap)
//! before it executes anything, leads its own process group, and is stopped as a whole:
//! SIGTERM to the group, a grace period, then SIGKILL to everything left in the cgroup —
//! which includes children that ignore SIGTERM and ones that escaped the group with setsid.
//! Supports cgroup v2 and v1 (or hybrid); which one is detected at start. Empty cgroups are
//! kept ready ([`Options::warm_cgroups`]) so creating one is not on the spawn path.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

pub mod cgroup;
mod pool;
pub mod signal;

pub use cgroup::{CgroupError, Hierarchy, JobCgroup, Limits};

/// Name of jobhost's own cgroup, under which job cgroups are created.
pub const PARENT: &str = "jobhost";

/// What to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandSpec {
    /// Executable (a path, or a name looked up in PATH).
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment (nothing else is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The executable does not exist.
    #[error("no such executable: {0}")]
    NotFound(String),
    /// The host has no usable cgroups and running unconfined is not allowed.
    #[error(
        "this host cannot confine processes (no writable cgroup hierarchy: run jobhost as root, \
         or set sandbox.allow_unconfined = true to run them without limits)"
    )]
    Unconfined,
    /// The cgroup could not be set up.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The process could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The executable.
        program: String,
        /// Why.
        source: std::io::Error,
    },
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitReport {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal that ended it, if one did.
    pub signal: Option<i32>,
    /// True if the kernel's OOM killer struck in its cgroup.
    pub oom_killed: bool,
    /// CPU time of the whole cgroup.
    pub cpu_time: Duration,
    /// Peak memory of the whole cgroup, bytes.
    pub peak_memory: u64,
}

/// How a [`Sandbox`] is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where cgroupfs is mounted.
    pub mount: PathBuf,
    /// Run processes without limits where no hierarchy is usable.
    pub allow_unconfined: bool,
    /// How many empty job cgroups to keep ready (0: create each on the spawn path).
    pub warm_cgroups: usize,
    /// The limits ready cgroups have; a job asking for these (the configured defaults) needs
    /// no limit writes when it starts.
    pub warm_limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mount: PathBuf::from("/sys/fs/cgroup"),
            allow_unconfined: false,
            warm_cgroups: 4,
            warm_limits: Limits::default(),
        }
    }
}

/// The host's cgroup setup. Clones share one pool of ready cgroups.
#[derive(Debug, Clone)]
pub struct Sandbox {
    hierarchy: Option<Hierarchy>,
    allow_unconfined: bool,
    pool: Option<Arc<pool::WarmPool>>,
}

impl Sandbox {
    /// Detects the cgroup layout at `/sys/fs/cgroup` and prepares jobhost's parent cgroup,
    /// with the default [`Options`]; without a writable hierarchy, processes cannot be
    /// confined (see [`SpawnError::Unconfined`]).
    pub fn detect() -> Sandbox {
        Sandbox::detect_with(Options::default())
    }

    /// Like [`Sandbox::detect`] for cgroupfs mounted at `mount`, without warm cgroups;
    /// `allow_unconfined` lets processes run without limits where no hierarchy is usable.
    pub fn detect_at(mount: &Path, allow_unconfined: bool) -> Sandbox {
        Sandbox::detect_with(Options {
            mount: mount.to_owned(),
            allow_unconfined,
            warm_cgroups: 0,
            ..Options::default()
        })
    }

    /// Detects the cgroup layout as `options` say, and starts keeping warm cgroups ready.
    pub fn detect_with(options: Options) -> Sandbox {
        let Options {
            mount,
            allow_unconfined,
            warm_cgroups,
            warm_limits,
        } = options;
        let mount = mount.as_path();
        let hierarchy = if mount.join("cgroup.controllers").exists() {
            prepare_v2(mount).ok()
        } else if mount.join("memory").is_dir() {
            prepare_v1(mount).ok()
        } else {
            None
        };
        // Warm cgroups never carry an I/O limit: a job without one must not inherit it.
        let warm_limits = Limits {
            io: None,
            ..warm_limits
        };
        let pool = hierarchy
            .as_ref()
            .and_then(|h| pool::WarmPool::start(h, warm_limits, warm_cgroups))
            .map(Arc::new);
        match &hierarchy {
            Some(Hierarchy::V2 { root }) => tracing::info!(root = %root.display(), "cgroup v2"),
            Some(Hierarchy::V1 { mount }) => {
                tracing::info!(mount = %mount.display(), "cgroup v1 (hybrid)")
            }
            None if allow_unconfined => tracing::warn!(
                "no writable cgroup hierarchy: processes will run UNCONFINED (sandbox.allow_unconfined)"
            ),
            None => tracing::warn!(
                "no writable cgroup hierarchy: process jobs are refused (see sandbox.allow_unconfined)"
            ),
        }
        Sandbox {
            hierarchy,
            allow_unconfined,
            pool,
        }
    }

    /// True if processes can be started: confined, or unconfined where that is allowed.
    pub fn can_run(&self) -> bool {
        self.hierarchy.is_some() || self.allow_unconfined
    }

    /// The detected layout, if any.
    pub fn hierarchy(&self) -> Option<&Hierarchy> {
        self.hierarchy.as_ref()
    }

    /// Kills and removes job cgroups left by a node process that no longer exists (a crash
    /// or SIGKILL skips the cleanup). Their jobs come back through their expired leases.
    /// Returns how many were removed (unused warm ones included). Job cgroups are named
    /// `<pid of the node>-<n>`.
    pub fn reap_orphans(&self) -> usize {
        let Some(hierarchy) = &self.hierarchy else {
            return 0;
        };
        let listing = match hierarchy {
            Hierarchy::V2 { root } => root.clone(),
            Hierarchy::V1 { mount } => mount.join("pids").join(PARENT),
        };
        let Ok(entries) = fs::read_dir(&listing) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(owner) = name.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            if !entry.path().is_dir() || owner == std::process::id() as i32 || signal::alive(owner)
            {
                continue;
            }
            let cgroup = JobCgroup::existing(hierarchy, &name);
            let had_processes = !cgroup.pids().is_empty();
            match cgroup.kill_all().and_then(|()| cgroup.remove()) {
                Ok(()) if had_processes => {
                    tracing::warn!(cgroup = %name, "killed the processes of a job left by a crashed node");
                    removed += 1;
                }
                Ok(()) => {
                    tracing::debug!(cgroup = %name, "removed an empty cgroup left by a crashed node");
                    removed += 1;
                }
                Err(e) => {
                    tracing::error!(cgroup = %name, "cannot remove an orphaned job cgroup: {e}")
                }
            }
        }
        removed
    }

    /// Starts `command` in a cgroup no process has been in, with `limits` (a warm one when
    /// ready). Its stdout and stderr are piped; stdin is closed.
    pub fn spawn(
        &self,
        command: &CommandSpec,
        limits: Limits,
    ) -> Result<SandboxedProcess, SpawnError> {
        let Some(hierarchy) = &self.hierarchy else {
            if !self.allow_unconfined {
                return Err(SpawnError::Unconfined);
            }
            tracing::warn!(
                program = %command.program,
                "running a process UNCONFINED: no CPU, memory or pids limits"
            );
            let child = start(&[], command)?;
            return Ok(SandboxedProcess::new(child, None));
        };
        let cgroup = match &self.pool {
            Some(pool) => pool.take(limits)?,
            None => JobCgroup::create(hierarchy, &pool::new_name(), limits)?,
        };
        self.spawn_in(cgroup, command)
    }

    /// Starts `command` in `cgroup` (empty, made with [`JobCgroup::create`] in this
    /// sandbox's hierarchy), which the process then owns: it is removed after the report.
    pub fn spawn_in(
        &self,
        cgroup: JobCgroup,
        command: &CommandSpec,
    ) -> Result<SandboxedProcess, SpawnError> {
        match start(&cgroup.procs_files(), command) {
            Ok(child) => {
                let retirer = self.pool.as_ref().map(|p| p.retirer());
                Ok(SandboxedProcess::new(child, Some((cgroup, retirer))))
            }
            Err(e) => {
                let _ = cgroup.remove();
                Err(e)
            }
        }
    }
}

fn prepare_v1(mount: &Path) -> Result<Hierarchy, CgroupError> {
    for controller in cgroup::V1_CONTROLLERS {
        let dir = mount.join(controller).join(PARENT);
        fs::create_dir_all(&dir).map_err(|source| CgroupError::Io { path: dir, source })?;
    }
    Ok(Hierarchy::V1 {
        mount: mount.to_owned(),
    })
}

fn prepare_v2(mount: &Path) -> Result<Hierarchy, CgroupError> {
    let root = mount.join(PARENT);
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| CgroupError::Io { path, source }
    };
    // Controllers must be enabled down to jobhost's subtree. A cgroup with processes cannot
    // enable them for its children (the no-internal-processes rule), except the real root;
    // inside a container on v2, `mount` is the container's own cgroup and holds its
    // processes (jobhost among them): they move to a leaf first, as container inits do.
    let control = mount.join("cgroup.subtree_control");
    match fs::write(&control, "+cpu +memory +pids") {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            move_processes_to_leaf(mount)?;
            fs::write(&control, "+cpu +memory +pids").map_err(io_err(&control))?;
        }
        other => other.map_err(io_err(&control))?,
    }
    fs::create_dir_all(&root).map_err(io_err(&root))?;
    let inner = root.join("cgroup.subtree_control");
    fs::write(&inner, "+cpu +memory +pids").map_err(io_err(&inner))?;
    // I/O limits need the io controller, which not every host delegates.
    for dir in [&control, &inner] {
        let _ = fs::write(dir, "+io");
    }
    Ok(Hierarchy::V2 { root })
}

/// Moves every process of cgroup `dir` into its child `init` (created if needed).
fn move_processes_to_leaf(dir: &Path) -> Result<(), CgroupError> {
    let leaf = dir.join("init");
    fs::create_dir_all(&leaf).map_err(|source| CgroupError::Io {
        path: leaf.clone(),
        source,
    })?;
    let procs = leaf.join("cgroup.procs");
    let listed = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in listed.lines().filter(|l| !l.trim().is_empty()) {
        // A process that exited meanwhile cannot be moved; that is fine.
        let _ = fs::write(&procs, pid.trim());
    }
    tracing::info!(
        cgroup = %dir.display(),
        "moved this cgroup's processes to init/ so controllers can be enabled for job cgroups"
    );
    Ok(())
}

fn start(
    procs_files: &[PathBuf],
    command: &CommandSpec,
) -> Result<tokio::process::Child, SpawnError> {
    // Opened before fork: the child only writes its pid to them (no allocation after fork).
    let procs: Vec<fs::File> = procs_files
        .iter()
        .map(|path| {
            fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|source| CgroupError::Io {
                    path: path.clone(),
                    source,
                })
        })
        .collect::<Result<_, _>>()?;
    let fds: Vec<i32> = procs.iter().map(|f| f.as_raw_fd()).collect();
    let mut cmd = tokio::process::Command::new(&command.program);
    cmd.args(&command.args)
        .env_clear()
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = &command.cwd {
        cmd.current_dir(cwd);
    }
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (setpgid, getpid, write) on a stack buffer.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut buf = [0u8; 20];
            let text = format_pid(libc::getpid(), &mut buf);
            for fd in &fds {
                if libc::write(*fd, text.as_ptr().cast(), text.len()) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => SpawnError::NotFound(command.program.clone()),
        _ => SpawnError::Spawn {
            program: command.program.clone(),
            source,
        },
    })?;
    drop(procs);
    Ok(child)
}

/// `(major, minor)` of the whole disk that holds `path` (a partition's parent disk), for
/// I/O limits; `None` when `path` is not on a block device (tmpfs, overlay, network).
pub fn disk_of(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(path).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if !sys.exists() {
        return None;
    }
    if sys.join("partition").exists() {
        // The parent directory of a partition's sysfs node is its disk.
        let disk = fs::canonicalize(&sys).ok()?.parent()?.join("dev");
        let text = fs::read_to_string(disk).ok()?;
        let (ma, mi) = text.trim().split_once(':')?;
        return Some((ma.parse().ok()?, mi.parse().ok()?));
    }
    Some((major, minor))
}

/// `pid` in decimal, in `buf`, without allocating.
fn format_pid(pid: i32, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = pid.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// A process running in its own cgroup (or unconfined, where that is allowed). Dropping it
/// before [`SandboxedProcess::report`] kills the whole tree and removes the cgroup, so an
/// abandoned job leaves nothing behind.
pub struct SandboxedProcess {
    child: tokio::process::Child,
    cgroup: Option<JobCgroup>,
    /// Removes the emptied cgroup off the job's path (the warm pool's thread), if there is
    /// a pool; without one the cgroup is removed in place.
    retirer: Option<pool::Retirer>,
    pgid: i32,
    reported: bool,
}

impl SandboxedProcess {
    fn new(
        child: tokio::process::Child,
        cgroup: Option<(JobCgroup, Option<pool::Retirer>)>,
    ) -> Self {
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        let (cgroup, retirer) = cgroup.unzip();
        SandboxedProcess {
            child,
            cgroup,
            retirer: retirer.flatten(),
            pgid,
            reported: false,
        }
    }

    /// Removes the (emptied) cgroup: on the pool's thread when there is one.
    fn release(&mut self, cgroup: JobCgroup) -> Result<(), CgroupError> {
        match &self.retirer {
            Some(retirer) => {
                retirer.retire(cgroup);
                Ok(())
            }
            None => cgroup.remove(),
        }
    }

    /// The name of its cgroup (`None` when unconfined), for logs and checks.
    pub fn cgroup_name(&self) -> Option<&str> {
        self.cgroup.as_ref().map(|c| c.name())
    }

    /// Its process id (also its process group id).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its stdout (once).
    pub fn stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Its stderr (once).
    pub fn stderr(&mut self) -> Option<tokio::process::ChildStderr> {
        self.child.stderr.take()
    }

    /// Pids in its cgroup right now (itself and every descendant, escaped or not); without
    /// a cgroup, only the main process.
    pub fn pids(&self) -> Vec<i32> {
        match &self.cgroup {
            Some(cgroup) => cgroup.pids(),
            None => vec![self.pgid],
        }
    }

    /// Waits until the main process exits.
    pub async fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.wait().await.ok()
    }

    /// SIGKILL to everything: the cgroup when confined, else the process group.
    pub fn kill_everything(&self) -> Result<(), CgroupError> {
        match &self.cgroup {
            Some(cgroup) => cgroup.kill_all(),
            None => {
                signal::kill_group(self.pgid, signal::SIGKILL);
                Ok(())
            }
        }
    }

    /// Stops the whole process tree: SIGTERM to its group, `grace` to exit, then SIGKILL to
    /// everything in its cgroup until it is empty. Returns the main process's status.
    pub async fn terminate(
        &mut self,
        grace: Duration,
    ) -> Result<Option<std::process::ExitStatus>, CgroupError> {
        signal::kill_group(self.pgid, signal::SIGTERM);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => Ok(status.ok()),
            Err(_) => {
                self.kill_everything()?;
                Ok(self.child.wait().await.ok())
            }
        }
    }

    /// Kills whatever the process left behind (descendants may outlive it: the job ends
    /// with all of them), reads the cgroup's accounting and removes the cgroup (with warm
    /// cgroups, on the pool's thread a moment later). Unconfined processes have no
    /// accounting (zeros).
    pub fn report(
        mut self,
        status: Option<std::process::ExitStatus>,
    ) -> Result<ExitReport, CgroupError> {
        use std::os::unix::process::ExitStatusExt;
        self.reported = true;
        self.kill_everything()?;
        let mut report = ExitReport {
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            oom_killed: false,
            cpu_time: Duration::ZERO,
            peak_memory: 0,
        };
        if let Some(cgroup) = self.cgroup.take() {
            report.oom_killed = cgroup.oom_killed();
            report.cpu_time = cgroup.cpu_time();
            report.peak_memory = cgroup.peak_memory();
            self.release(cgroup)?;
        }
        Ok(report)
    }

    /// Waits for the process to exit, then reports (see [`SandboxedProcess::report`]).
    pub async fn wait(mut self) -> Result<ExitReport, CgroupError> {
        let status = self.exited().await;
        self.report(status)
    }

    /// Stops the tree (see [`SandboxedProcess::terminate`]), then reports.
    pub async fn stop(mut self, grace: Duration) -> Result<ExitReport, CgroupError> {
        let status = self.terminate(grace).await?;
        self.report(status)
    }
}

impl Drop for SandboxedProcess {
    fn drop(&mut self) {
        if self.reported {
            return;
        }
        let cleaned = self
            .kill_everything()
            .and_then(|()| match self.cgroup.take() {
                Some(cgroup) => self.release(cgroup),
                None => Ok(()),
            });
        if let Err(e) = cleaned {
            tracing::error!("abandoned job process not cleaned up: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_format_without_allocating() {
        let mut buf = [0u8; 20];
        assert_eq!(format_pid(0, &mut buf), b"0");
        assert_eq!(format_pid(4_194_304, &mut buf), b"4194304");
    }
}
