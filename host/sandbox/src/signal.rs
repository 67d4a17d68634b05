//! Signals to job processes (the only place outside `cgroup.rs` that touches them).

pub use libc::{SIGKILL, SIGTERM};

/// Sends `signal` to process `pid`; a process that is already gone is not an error.
pub fn kill(pid: i32, signal: i32) {
    if pid > 0 {
        // SAFETY: kill(2) has no memory effects; a stale pid at worst gets ESRCH.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Sends `signal` to every process of group `pgid`.
pub fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: as above; a negative pid addresses the process group.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// True if process `pid` exists and is not a zombie (a dead process whose parent, often
/// init after reparenting, has not collected it yet).
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}
