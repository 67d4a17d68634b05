//! Per-call stores: one fresh [`Store`] per plugin call, with its limits, deadline and
//! cancellation wired in, and the call run contained under them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::capabilities::destinations::{Destinations, ProtectedServices};
use crate::capabilities::http::HttpPolicy;
use crate::capabilities::kv::KvHost;
use crate::capabilities::process::ProcessHost;
use crate::capabilities::{self, CallState, GrantCheck, GrantTable};
use crate::context::{CallKind, Crash, CurrentCall, JobContext, MemoryLimiter};
use crate::job::JobEvents;
use crate::output::GuestOutput;
use crate::policy::PluginPolicy;
use crate::secrets::SecretProviders;

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
    /// The node's own services, which no plugin connection may reach.
    pub protected: Arc<ProtectedServices>,
}

/// The context of one call under `spec`: its deadline starts now.
pub fn new_context(spec: &CallSpec) -> Arc<JobContext> {
    Arc::new(JobContext::new(
        spec.cancel.clone(),
        spec.events.clone(),
        spec.timeout,
        spec.cancel_grace,
        spec.log_limit,
    ))
}

/// A fresh store for one call of `plugin`, with its limits and interruption wired in.
pub fn new_store(
    engine: &wasmtime::Engine,
    policy: &PluginPolicy,
    spec: &CallSpec,
) -> (Store<CallState>, Arc<JobContext>) {
    // Read before the grants shape the context: a change racing with this retires the
    // store rather than letting it outlive the grants it was built under.
    let grants_generation = spec.grants.generation();
    let context = new_context(spec);
    let current = CurrentCall::new(context.clone());
    let grants = GrantCheck::new(&policy.id, spec.grants.clone(), current.clone());
    let outputs = [
        GuestOutput::stdout(current.clone()),
        GuestOutput::stderr(current.clone()),
    ];
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(outputs[0].clone()).stderr(outputs[1].clone());
    let destinations = Destinations::new(
        &policy.id,
        policy.allow_private.clone(),
        spec.protected.clone(),
    );
    for cap in capabilities::ALL {
        cap.prepare(&grants, &destinations, &mut wasi);
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
            destinations,
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
        table: resource_table(),
        limiter: MemoryLimiter {
            limit: policy.memory_bytes,
            context: context.clone(),
        },
        context: context.clone(),
        current,
        outputs,
        grants_generation,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    arm(&mut store);
    store.epoch_deadline_callback(|store| match store.data().context.on_epoch_tick() {
        // Yielding lets a busy plugin share its executor thread and lets the runtime's
        // outer deadline fire even while the guest spins.
        Ok(()) => Ok(UpdateDeadline::Yield(1)),
        Err(()) => Err(wasmtime::format_err!("interrupted")),
    });
    (store, context)
}

/// Most host resources (streams, pollables, sockets, HTTP requests and their parts) one
/// instance may hold at once. Each lives in the host's memory, not the guest's, so the memory
/// cap does not bound them; wasmtime's own bound is a million. A plugin that asks for more
/// traps: `resource table has no free keys`.
pub const MAX_RESOURCES: usize = 10_000;

/// The resource table of a new store, bounded by [`MAX_RESOURCES`].
fn resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    table
}

/// Aims a kept instance's store at the call `context` under `spec`, with its deadline
/// checks armed.
pub fn begin_call(store: &mut Store<CallState>, context: Arc<JobContext>, spec: &CallSpec) {
    let state = store.data_mut();
    state.begin_call(context);
    state.call_kind = spec.kind;
    // A provider registered since the instance was made serves from this call on.
    state.secret_provider = spec.secrets.get(&state.plugin_id);
    arm(store);
}

/// Checks the call's deadline and cancellation at the next epoch tick.
fn arm(store: &mut Store<CallState>) {
    store.set_epoch_deadline(1);
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
