//! The context of one plugin call, shared by its store, its host functions and the
//! runtime: which export it is, its deadline, cancellation, log budget and memory cap, and
//! the mapping of what went wrong into a precise reason.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wasmtime::{ResourceLimiter, Trap};

use crate::job::{CrashKind, JobEvents, LogLevel, human_duration};

/// Which export a call is for: what the plugin may do depends on it (`describe` and
/// `validate` must have no side effects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `describe()`, once at load.
    Describe,
    /// `validate(spec)`, before a job is accepted.
    Validate,
    /// `run(job)`: one attempt of a job.
    Run,
}

/// Shared between the store, the host functions and the runtime for one call.
pub struct JobContext {
    /// Cancellation of this call.
    pub cancel: CancellationToken,
    events: Arc<dyn JobEvents>,
    pub(crate) deadline: Instant,
    timeout: Duration,
    pub(crate) cancel_grace: Duration,
    log: Mutex<LogBudget>,
    interrupted: AtomicU8,
    cancel_seen: OnceLock<Instant>,
    /// The memory limit (bytes) that was hit, or 0.
    memory_exceeded: AtomicUsize,
}

const NOT_INTERRUPTED: u8 = 0;
const INTERRUPTED_DEADLINE: u8 = 1;
const INTERRUPTED_CANCEL: u8 = 2;

struct LogBudget {
    limit: usize,
    used: usize,
    dropped: u64,
    /// The tail of stderr, to recover a Rust panic message after an abort.
    stderr_tail: String,
    /// What stderr said from the last `panicked at` line on (its first
    /// [`PANIC_CAPTURE`] bytes), however long the message: the tail alone loses the
    /// header of a long one.
    panic: Option<String>,
}

const STDERR_TAIL: usize = 4096;
/// Most bytes of a panic report kept; the reason shows at most [`PANIC_REASON`] of its
/// message.
const PANIC_CAPTURE: usize = 8192;
/// Most bytes of a panic message in a failure reason.
const PANIC_REASON: usize = 2048;

impl JobContext {
    /// The context of a call that may run for `timeout`, gets `cancel_grace` to return
    /// once `cancel` fires, and may log `log_limit` bytes to `events`.
    pub(crate) fn new(
        cancel: CancellationToken,
        events: Arc<dyn JobEvents>,
        timeout: Duration,
        cancel_grace: Duration,
        log_limit: usize,
    ) -> Self {
        JobContext {
            cancel,
            events,
            deadline: Instant::now() + timeout,
            timeout,
            cancel_grace,
            log: Mutex::new(LogBudget {
                limit: log_limit,
                used: 0,
                dropped: 0,
                stderr_tail: String::new(),
                panic: None,
            }),
            interrupted: AtomicU8::new(NOT_INTERRUPTED),
            cancel_seen: OnceLock::new(),
            memory_exceeded: AtomicUsize::new(0),
        }
    }

    /// Logs a line if the budget allows (true); the first line over budget leaves a marker
    /// instead.
    pub fn log(&self, level: LogLevel, message: &str) -> bool {
        self.within_budget(message) && {
            self.events.log(level, message);
            true
        }
    }

    /// As [`JobContext::log`], for a line the plugin logged through `host.log`.
    pub fn plugin_log(&self, level: LogLevel, message: &str) -> bool {
        self.within_budget(message) && {
            self.events.plugin_log(level, message);
            true
        }
    }

    /// Takes `message` out of the log budget; false (and one warning) once it is spent.
    fn within_budget(&self, message: &str) -> bool {
        let mut budget = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if budget.used + message.len() > budget.limit {
            budget.dropped += 1;
            if budget.dropped == 1 {
                let limit = budget.limit;
                drop(budget);
                self.events.log(
                    LogLevel::Warn,
                    &format!("log limit of {limit} bytes reached; further lines are dropped"),
                );
            }
            return false;
        }
        budget.used += message.len();
        true
    }

    /// Records a line the guest wrote to stderr (logged, and kept for panic reports).
    pub fn stderr_line(&self, line: &str) {
        {
            let mut budget = self.log.lock().unwrap_or_else(|p| p.into_inner());
            if line.contains("panicked at ") {
                budget.panic = Some(String::new());
            }
            if let Some(panic) = budget.panic.as_mut()
                && panic.len() < PANIC_CAPTURE
            {
                panic.push_str(cut_at(line, PANIC_CAPTURE - panic.len()));
                panic.push('\n');
            }
            let tail = &mut budget.stderr_tail;
            tail.push_str(line);
            tail.push('\n');
            if tail.len() > STDERR_TAIL {
                let mut cut = tail.len() - STDERR_TAIL;
                while !tail.is_char_boundary(cut) {
                    cut += 1;
                }
                tail.drain(..cut);
            }
        }
        self.log(LogLevel::Warn, line);
    }

    /// Forwards a progress report; its message counts against the log budget like a line.
    pub fn progress(&self, percent: u8, message: &str) {
        {
            let mut budget = self.log.lock().unwrap_or_else(|p| p.into_inner());
            if budget.used + message.len() > budget.limit {
                budget.dropped += 1;
                return;
            }
            budget.used += message.len();
        }
        self.events.progress(percent, message);
    }

    /// Lines waiting to be delivered by the events sink.
    pub fn backlog(&self) -> usize {
        self.events.backlog()
    }

    /// Lines dropped because the log budget was spent.
    pub fn logs_dropped(&self) -> u64 {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).dropped
    }

    /// Decides, at each epoch tick, whether wasm execution may go on.
    pub(crate) fn on_epoch_tick(&self) -> Result<(), ()> {
        let now = Instant::now();
        if now >= self.deadline {
            self.interrupted
                .store(INTERRUPTED_DEADLINE, Ordering::Relaxed);
            return Err(());
        }
        if self.cancel.is_cancelled() && self.cancel_overdue(now) {
            self.interrupted
                .store(INTERRUPTED_CANCEL, Ordering::Relaxed);
            return Err(());
        }
        Ok(())
    }

    fn cancel_overdue(&self, now: Instant) -> bool {
        // The grace period runs from the first tick that saw the cancellation.
        let seen = *self.cancel_seen.get_or_init(|| now);
        now.duration_since(seen) >= self.cancel_grace
    }

    /// The reason a call that ended with `error` stopped.
    pub(crate) fn crash_reason(&self, error: &wasmtime::Error) -> Crash {
        match self.interrupted.load(Ordering::Relaxed) {
            INTERRUPTED_CANCEL => return Crash::Cancelled,
            INTERRUPTED_DEADLINE => return self.deadline_exceeded(),
            _ => {}
        }
        let limit = self.memory_exceeded.load(Ordering::Relaxed);
        if limit > 0 {
            return Crash::Contained(
                CrashKind::MemoryLimit,
                format!("memory limit {} MiB exceeded", limit / (1024 * 1024)),
            );
        }
        if let Some(panic) = self.panic_message() {
            return Crash::Contained(CrashKind::Panic, format!("plugin panicked: {panic}"));
        }
        // `exit(n)` from the guest (wasi:cli/exit): not a crash of the host's making, and
        // the status is what matters, not the wasm backtrace that comes with it.
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return Crash::Contained(
                CrashKind::Trap,
                format!("plugin exited with status {}", exit.0),
            );
        }
        match error.downcast_ref::<Trap>() {
            // A trap says "wasm trap: ..." itself.
            Some(trap) => Crash::Contained(CrashKind::Trap, trap.to_string()),
            // Other errors: their messages without the wasm backtrace wasmtime attaches.
            None => Crash::Contained(CrashKind::Trap, without_backtrace(error)),
        }
    }

    pub(crate) fn deadline_exceeded(&self) -> Crash {
        Crash::Contained(
            CrashKind::Deadline,
            format!("deadline {} exceeded", human_duration(self.timeout)),
        )
    }

    /// The message of a Rust panic, recovered from what the guest printed to stderr (at
    /// most [`PANIC_REASON`] bytes of it).
    fn panic_message(&self) -> Option<String> {
        let budget = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let report = budget.panic.as_deref()?;
        let at = report.find("panicked at ")?;
        // Rust prints "thread '..' panicked at src/lib.rs:1:2:\n<message>\n".
        let mut lines = report[at..].lines();
        let location = lines
            .next()?
            .trim_start_matches("panicked at ")
            .trim_end_matches(':');
        let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
        let message = message.join(" ");
        let message = message.trim();
        let shown = cut_at(message, PANIC_REASON);
        let more = if shown.len() < message.len() || report.len() >= PANIC_CAPTURE {
            "… (cut)"
        } else {
            ""
        };
        Some(format!("{shown}{more} ({location})"))
    }
}

/// `error`'s messages, outermost first, without the wasm backtrace wasmtime adds as context
/// (a multi-line frame list that says nothing to whoever reads a job's failure).
fn without_backtrace(error: &wasmtime::Error) -> String {
    let messages: Vec<String> = error
        .chain()
        .map(|e| e.to_string())
        .filter(|m| !m.starts_with("error while executing at wasm backtrace"))
        .collect();
    if messages.is_empty() {
        return "the plugin stopped with an error".into();
    }
    messages.join(": ")
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut_at(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The call a store serves now, shared by the handles that live as long as the store (the
/// guest's stdout and stderr, the socket address check): an instance kept between attempts
/// (`plugins.<id>.reuse`) re-aims them at each new call.
#[derive(Clone)]
pub struct CurrentCall(Arc<Mutex<Arc<JobContext>>>);

impl CurrentCall {
    /// Handles aimed at `context`.
    pub fn new(context: Arc<JobContext>) -> Self {
        CurrentCall(Arc::new(Mutex::new(context)))
    }

    /// The context of the call in progress.
    pub fn get(&self) -> Arc<JobContext> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Aims every handle at `context`.
    pub(crate) fn set(&self, context: Arc<JobContext>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = context;
    }
}

/// How a contained call ended when it did not return normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Crash {
    /// The call was cancelled and did not return within the grace period.
    Cancelled,
    /// The host stopped the plugin.
    Contained(CrashKind, String),
}

/// Caps linear memory; records the hit so the reason can say so.
pub struct MemoryLimiter {
    pub(crate) limit: usize,
    pub(crate) context: Arc<JobContext>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.context
                .memory_exceeded
                .store(self.limit, Ordering::Relaxed);
            // An error (not `Ok(false)`) traps at the `memory.grow`, so the plugin cannot
            // swallow the failure and limp on.
            return Err(wasmtime::format_err!("memory limit exceeded"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Table growth cap: far above what real plugins use, far below what hurts the host.
const MAX_TABLE_ELEMENTS: usize = 100_000;
