//! Per-call state: one fresh [`Store`] per plugin call, with its limits, deadline,
//! cancellation and log budget, and the mapping of what went wrong into a precise reason.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::capabilities;
use super::capabilities::http::HttpPolicy;
use super::capabilities::kv::{KvHost, KvLimits};
use super::capabilities::process::ProcessHost;
use super::capabilities::{GrantCheck, GrantTable};
use super::job::{CrashKind, JobEvents, LogLevel, human_duration};
use super::output::GuestOutput;
use super::plugin::PluginPolicy;
use super::secrets::{SecretProvider, SecretProviders};
use jobhost_config::SecretSource;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

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

/// Limits and hooks of one plugin call.
pub struct CallSpec {
    /// Which export is called.
    pub kind: CallKind,
    /// Wall-clock budget of the call.
    pub timeout: Duration,
    /// Cancels the call (cooperatively first, then by interruption after the grace period).
    pub cancel: CancellationToken,
    /// Time a cancelled plugin gets to return on its own.
    pub cancel_grace: Duration,
    /// Where log lines and progress go.
    pub events: Arc<dyn JobEvents>,
    /// Bytes of log kept for this call.
    pub log_limit: usize,
    /// Native-process support (the `process` capability).
    pub process: Arc<ProcessHost>,
    /// The grants of every plugin as they stand now (checked again at call time).
    pub grants: Arc<GrantTable>,
    /// Plugin state (the `kv` capability).
    pub kv: Arc<KvHost>,
    /// Secrets the embedding node provides, per plugin.
    pub secrets: Arc<SecretProviders>,
}

/// Shared between the store, the host functions and the runtime for one call.
pub struct JobContext {
    /// Cancellation of this call.
    pub cancel: CancellationToken,
    events: Arc<dyn JobEvents>,
    deadline: Instant,
    timeout: Duration,
    cancel_grace: Duration,
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
}

const STDERR_TAIL: usize = 4096;

impl JobContext {
    fn new(spec: &CallSpec) -> Self {
        JobContext {
            cancel: spec.cancel.clone(),
            events: spec.events.clone(),
            deadline: Instant::now() + spec.timeout,
            timeout: spec.timeout,
            cancel_grace: spec.cancel_grace,
            log: Mutex::new(LogBudget {
                limit: spec.log_limit,
                used: 0,
                dropped: 0,
                stderr_tail: String::new(),
            }),
            interrupted: AtomicU8::new(NOT_INTERRUPTED),
            cancel_seen: OnceLock::new(),
            memory_exceeded: AtomicUsize::new(0),
        }
    }

    /// Logs a line if the budget allows (true); the first line over budget leaves a marker
    /// instead.
    pub fn log(&self, level: LogLevel, message: &str) -> bool {
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
        drop(budget);
        self.events.log(level, message);
        true
    }

    /// Records a line the guest wrote to stderr (logged, and kept for panic reports).
    pub fn stderr_line(&self, line: &str) {
        {
            let mut budget = self.log.lock().unwrap_or_else(|p| p.into_inner());
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
    fn on_epoch_tick(&self) -> Result<(), ()> {
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
    fn crash_reason(&self, error: &wasmtime::Error) -> Crash {
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
        match error.downcast_ref::<Trap>() {
            Some(trap) => Crash::Contained(CrashKind::Trap, format!("wasm trap: {trap}")),
            None => Crash::Contained(CrashKind::Trap, format!("{error:#}")),
        }
    }

    fn deadline_exceeded(&self) -> Crash {
        Crash::Contained(
            CrashKind::Deadline,
            format!("deadline {} exceeded", human_duration(self.timeout)),
        )
    }

    /// The message of a Rust panic, recovered from what the guest printed to stderr.
    fn panic_message(&self) -> Option<String> {
        let budget = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let tail = &budget.stderr_tail;
        let at = tail.rfind("panicked at ")?;
        // Rust prints "thread '..' panicked at src/lib.rs:1:2:\n<message>\n".
        let rest = &tail[at..];
        let mut lines = rest.lines();
        let location = lines
            .next()?
            .trim_start_matches("panicked at ")
            .trim_end_matches(':');
        let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
        Some(format!("{} ({location})", message.join(" ").trim()))
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
    limit: usize,
    context: Arc<JobContext>,
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

/// The data of a plugin call's [`Store`].
pub struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_policy: HttpPolicy,
    secrets: std::sync::Arc<std::collections::BTreeMap<String, SecretSource>>,
    secret_provider: Option<Arc<dyn SecretProvider>>,
    process: Arc<ProcessHost>,
    plugin_id: String,
    executables: Arc<[String]>,
    grants: GrantCheck,
    kv: Arc<KvHost>,
    kv_limits: KvLimits,
    call_kind: CallKind,
    table: ResourceTable,
    limiter: MemoryLimiter,
    context: Arc<JobContext>,
}

impl CallState {
    /// The call's shared context.
    pub fn context(&self) -> &JobContext {
        &self.context
    }

    /// The process-wide native-process support.
    pub fn process_host(&self) -> Arc<ProcessHost> {
        self.process.clone()
    }

    /// The plugin's id and its allowed executables (empty: any).
    pub fn process_policy(&self) -> (String, Arc<[String]>) {
        (self.plugin_id.clone(), self.executables.clone())
    }

    /// The call's shared context, as a handle that outlives a borrow of the state.
    pub fn context_arc(&self) -> Arc<JobContext> {
        self.context.clone()
    }

    /// The plugin's grants, to check at call time.
    pub fn grants(&self) -> &GrantCheck {
        &self.grants
    }

    /// Which export this call is for.
    pub fn call_kind(&self) -> CallKind {
        self.call_kind
    }

    /// Where plugin state lives.
    pub fn kv_host(&self) -> Arc<KvHost> {
        self.kv.clone()
    }

    /// The plugin's id (its state's scope) and its state's limits.
    pub fn kv_scope(&self) -> (String, KvLimits) {
        (self.plugin_id.clone(), self.kv_limits)
    }

    /// The plugin's secret `name`, read from its source now (env or file), else from the
    /// provider the node registered for the plugin.
    pub fn secret(&self, name: &str) -> Option<String> {
        if let Some(source) = self.secrets.get(name) {
            return source.read();
        }
        self.secret_provider.as_ref()?.secret(name)
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.http_policy,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A fresh store for one call of `plugin`, with its limits and interruption wired in.
pub fn new_store(
    engine: &wasmtime::Engine,
    policy: &PluginPolicy,
    spec: &CallSpec,
) -> (Store<CallState>, Arc<JobContext>) {
    let context = Arc::new(JobContext::new(spec));
    let grants = GrantCheck::new(&policy.id, spec.grants.clone(), context.clone());
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(GuestOutput::stdout(context.clone()))
        .stderr(GuestOutput::stderr(context.clone()));
    for cap in capabilities::ALL {
        cap.prepare(&grants, &mut wasi);
    }
    let state = CallState {
        wasi: wasi.build(),
        http: WasiHttpCtx::new(),
        http_policy: HttpPolicy::new(
            &policy.id,
            policy.allowed_hosts.clone(),
            policy.http_timeout,
            policy.http_max_response_bytes,
            context.clone(),
            grants.clone(),
        ),
        secrets: policy.secrets.clone(),
        secret_provider: spec.secrets.get(&policy.id),
        process: spec.process.clone(),
        plugin_id: policy.id.clone(),
        executables: policy.executables.clone(),
        grants,
        kv: spec.kv.clone(),
        kv_limits: policy.kv_limits,
        call_kind: spec.kind,
        table: ResourceTable::new(),
        limiter: MemoryLimiter {
            limit: policy.memory_bytes,
            context: context.clone(),
        },
        context: context.clone(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|store| match store.data().context.on_epoch_tick() {
        // Yielding lets a busy plugin share its executor thread and lets the runtime's
        // outer deadline fire even while the guest spins.
        Ok(()) => Ok(UpdateDeadline::Yield(1)),
        Err(()) => Err(wasmtime::format_err!("interrupted")),
    });
    (store, context)
}

/// Runs `call` (an export call on `store`) under the context's deadline and cancellation.
///
/// Wasm code is interrupted by the epoch callback; host-side waits (a plugin in `sleep`) by
/// the timers here. Either way the reason is precise.
pub async fn contained<T>(
    context: &JobContext,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> Result<T, Crash> {
    let cancelled_and_overdue = async {
        context.cancel.cancelled().await;
        tokio::time::sleep(context.cancel_grace).await;
    };
    let result = tokio::select! {
        result = call => result,
        () = tokio::time::sleep_until(context.deadline.into()) => {
            return Err(context.deadline_exceeded());
        }
        () = cancelled_and_overdue => return Err(Crash::Cancelled),
    };
    result.map_err(|error| context.crash_reason(&error))
}
