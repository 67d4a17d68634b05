//! Capabilities: what a plugin can reach beyond its own memory.
//!
//! Each capability is one module with up to four steps, in the manner of Spin's factors:
//! - *check config*: check its own fields of `[plugins.<id>]` ([`Capability::check`]), when
//!   the runtime is built and by `jobhost config check` ([`check_config`]);
//! - *link*: add its WIT bindings to the process-wide [`Linker`] once;
//! - *check*: name the WIT interfaces it provides, so a component importing one of them is
//!   rejected at load unless the plugin's config grants the capability (deny by default);
//! - *prepare*: shape the per-instance WASI context from the plugin's grant.
//!
//! Grants are enforced twice. At load, a component importing an interface of a capability
//! it is not granted is rejected. At call time, every host function of a grantable
//! capability checks the plugin's grant again ([`GrantCheck::require`]) and answers the
//! guest with an error naming the capability and the config key, recorded in the job log.
//! The second check holds when the first cannot: every interface is linked for every
//! plugin, and grants can change while a build is loaded ([`GrantTable`]).
//!
//! A new capability is a new module plus one line in [`ALL`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use jobhost_config::{Config, ConfigError, PluginConfig, SecretSource};

use crate::context::{CallKind, CurrentCall, JobContext, MemoryLimiter};
use crate::job::LogLevel;
use crate::output::GuestOutput;
use crate::secrets::SecretProvider;
use destinations::Destinations;
use http::HttpPolicy;
use kv::{KvHost, KvLimits};
use process::ProcessHost;

pub mod destinations;
pub mod host;
pub mod http;
mod http_send;
pub mod kv;
pub mod network;
pub mod process;
pub mod wasi;

/// One capability a plugin may be given.
pub trait Capability: Send + Sync + 'static {
    /// Name used in grants (`plugins.<id>.grants = ["<name>"]`).
    fn name(&self) -> &'static str;
    /// WIT interface name prefixes this capability provides, e.g. `"wasi:sockets/"`.
    fn interfaces(&self) -> &'static [&'static str];
    /// Whether every plugin has it without a grant.
    fn always_granted(&self) -> bool {
        false
    }
    /// Checks this capability's fields of plugin `id`'s config; the message names the knob.
    fn check(&self, _id: &str, _plugin: &PluginConfig) -> Result<(), String> {
        Ok(())
    }
    /// Adds the capability's host functions to the linker.
    fn link(&self, linker: &mut Linker<CallState>) -> wasmtime::Result<()>;
    /// Configures a fresh instance's WASI context; `grants` tells whether the plugin has the
    /// capability now, and can be kept to check again at call time; `destinations` says
    /// where its connections may go.
    fn prepare(
        &self,
        _grants: &GrantCheck,
        _destinations: &Destinations,
        _wasi: &mut WasiCtxBuilder,
    ) {
    }
}

/// Every capability this host knows, in link order.
pub static ALL: &[&dyn Capability] = &[
    &host::HostApi,
    &wasi::WasiBase,
    &network::Network,
    &http::Http,
    &process::Process,
    &kv::Kv,
];

/// The capability providing WIT interface `interface` (e.g. `wasi:sockets/tcp@0.2.3`).
pub fn providing(interface: &str) -> Option<&'static dyn Capability> {
    ALL.iter()
        .copied()
        .find(|cap| cap.interfaces().iter().any(|p| interface.starts_with(p)))
}

/// True if `name` is a capability that can appear in a grant.
pub fn is_grantable(name: &str) -> bool {
    ALL.iter()
        .any(|cap| !cap.always_granted() && cap.name() == name)
}

/// Names of the capabilities that can appear in a grant, for error messages.
pub fn grantable_names() -> Vec<&'static str> {
    ALL.iter()
        .filter(|cap| !cap.always_granted())
        .map(|cap| cap.name())
        .collect()
}

/// Checks every `[plugins.<id>]` section against the capabilities: each grant names one,
/// and each capability accepts its own fields.
pub fn check_config(config: &Config) -> Result<(), ConfigError> {
    for (id, plugin) in &config.plugins {
        check_grants(id, &plugin.grants).map_err(ConfigError::Invalid)?;
        for cap in ALL {
            cap.check(id, plugin).map_err(ConfigError::Invalid)?;
        }
    }
    Ok(())
}

/// Checks that every name in `grants` is a grantable capability.
pub fn check_grants(id: &str, grants: &[String]) -> Result<(), String> {
    match grants.iter().find(|g| !is_grantable(g)) {
        Some(bad) => Err(format!(
            "plugins.{id}.grants: unknown capability {bad:?} (known: {})",
            grantable_names().join(", ")
        )),
        None => Ok(()),
    }
}

/// Links every capability into `linker`.
pub fn link_all(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    for cap in ALL {
        cap.link(linker)?;
    }
    Ok(())
}

/// True if `name` is a capability every plugin has without a grant.
pub fn is_always_granted(name: &str) -> bool {
    ALL.iter()
        .any(|cap| cap.always_granted() && cap.name() == name)
}

/// The message a plugin gets when it reaches a capability it is not granted.
pub fn not_granted(capability: &str, plugin: &str) -> String {
    format!(
        "capability {capability:?} is not granted to plugin {plugin:?} (plugins.{plugin}.grants)"
    )
}

/// The grants of every plugin as they stand now: `plugins.<id>.grants` from the config,
/// changed while the node runs by [`crate::Runtime::set_grants`]. Loading checks a
/// component's imports against it; every host call of a grantable capability checks it
/// again, so a revoked grant holds from the next call on, even for a build loaded before.
#[derive(Debug, Default)]
pub struct GrantTable {
    grants: RwLock<HashMap<String, Arc<[String]>>>,
    /// Bumped at every change: an instance kept between attempts was shaped by the grants
    /// of its generation (its WASI context allows sockets and name lookups or not), so a
    /// change retires it.
    generation: std::sync::atomic::AtomicU64,
}

impl GrantTable {
    /// The grants `config` gives.
    pub fn from_config(config: &Config) -> Self {
        let grants = config
            .plugins
            .iter()
            .map(|(id, plugin)| (id.clone(), plugin.grants.iter().cloned().collect()))
            .collect();
        GrantTable {
            grants: RwLock::new(grants),
            generation: Default::default(),
        }
    }

    /// The capabilities granted to `plugin` (the always-granted ones not included).
    pub fn get(&self, plugin: &str) -> Vec<String> {
        let grants = self.grants.read().unwrap_or_else(|p| p.into_inner());
        grants.get(plugin).map(|g| g.to_vec()).unwrap_or_default()
    }

    /// Replaces the grants of `plugin`.
    pub fn set(&self, plugin: &str, grants: Vec<String>) {
        let mut table = self.grants.write().unwrap_or_else(|p| p.into_inner());
        table.insert(plugin.to_owned(), grants.into());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// How many changes the table has seen.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// True if `plugin` has `capability` now (always-granted ones included).
    pub fn is_granted(&self, plugin: &str, capability: &str) -> bool {
        if is_always_granted(capability) {
            return true;
        }
        let grants = self.grants.read().unwrap_or_else(|p| p.into_inner());
        grants
            .get(plugin)
            .is_some_and(|g| g.iter().any(|c| c == capability))
    }
}

/// One call's view of its plugin's grants: what host functions check before they act.
#[derive(Clone)]
pub struct GrantCheck {
    plugin: Arc<str>,
    table: Arc<GrantTable>,
    context: CurrentCall,
    /// Denials of this call that reached the node's log: the first few do, so a plugin
    /// refused in a loop cannot flood it (the job's log has a budget of its own).
    logged: Arc<std::sync::atomic::AtomicU32>,
}

/// Denials of one call written to the node's log; the rest go to the job's log only.
const NODE_LOG_DENIALS: u32 = 5;

impl GrantCheck {
    /// The grants of `plugin` in `table`; denials are recorded in the job log of the call
    /// `context` serves.
    pub fn new(plugin: &str, table: Arc<GrantTable>, context: CurrentCall) -> Self {
        GrantCheck {
            plugin: plugin.into(),
            table,
            context,
            logged: Arc::default(),
        }
    }

    /// The plugin id.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// True if the plugin has `capability` now.
    pub fn is_granted(&self, capability: &str) -> bool {
        self.table.is_granted(&self.plugin, capability)
    }

    /// `Ok` if the plugin has `capability` now; otherwise records the denial (job log, node
    /// log) and returns the message for the guest.
    pub fn require(&self, capability: &str) -> Result<(), String> {
        if self.is_granted(capability) {
            return Ok(());
        }
        let message = not_granted(capability, &self.plugin);
        self.deny(capability, &message);
        Err(message)
    }

    /// Starts counting denials afresh, for the next call of a kept instance.
    fn reset(&self) {
        self.logged.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records a denial of `capability`, explained by `message`, in the job and node logs.
    pub fn deny(&self, capability: &str, message: &str) {
        self.context.get().log(LogLevel::Warn, message);
        let logged = self
            .logged
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if logged < NODE_LOG_DENIALS {
            let more = if logged + 1 == NODE_LOG_DENIALS {
                " (further denials of this call go to the job's log only)"
            } else {
                ""
            };
            tracing::warn!(
                plugin = %crate::text::printable(&self.plugin),
                capability,
                "capability denied at call time: {}{more}",
                crate::text::printable(message)
            );
        }
    }
}

/// The data of a plugin call's store: each capability's side of the call, and the call's
/// shared context. Built by [`crate::instance::new_store`].
pub struct CallState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_policy: HttpPolicy,
    pub(crate) secrets: std::sync::Arc<std::collections::BTreeMap<String, SecretSource>>,
    pub(crate) secret_provider: Option<Arc<dyn SecretProvider>>,
    pub(crate) process: Arc<ProcessHost>,
    pub(crate) plugin_id: String,
    pub(crate) executables: Arc<[String]>,
    pub(crate) grants: GrantCheck,
    pub(crate) kv: Arc<KvHost>,
    pub(crate) kv_limits: KvLimits,
    pub(crate) call_kind: CallKind,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) context: Arc<JobContext>,
    /// What the long-lived handles (output, socket check) log into.
    pub(crate) current: CurrentCall,
    /// The guest's stdout and stderr, to flush an unterminated line when a call ends.
    pub(crate) outputs: [GuestOutput; 2],
    /// The [`GrantTable::generation`] the store was built under.
    pub(crate) grants_generation: u64,
}

impl CallState {
    /// Aims a kept instance's state at the call `context` (its log, deadline, cancellation
    /// and budgets): the previous call's unterminated output lines go to the previous log.
    pub(crate) fn begin_call(&mut self, context: Arc<JobContext>) {
        self.end_call();
        self.current.set(context.clone());
        self.grants.reset();
        self.http_policy.begin_call(context.clone());
        self.limiter.context = context.clone();
        self.context = context;
    }

    /// Logs what is left of the guest's unterminated output lines into the current call.
    fn end_call(&self) {
        for output in &self.outputs {
            output.flush_pending();
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml: &str) -> Result<(), String> {
        check_config(&Config::from_toml(toml).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_grant_is_rejected() {
        let err = check("[plugins.x]\ngrants = [\"teleport\"]\n").unwrap_err();
        assert!(
            err.contains("plugins.x.grants") && err.contains("teleport"),
            "{err}"
        );
        assert!(err.contains("known: network, http, process, kv"), "{err}");
        check("[plugins.x]\ngrants = [\"http\", \"kv\"]\n").unwrap();
    }

    #[test]
    fn kv_limits_are_range_checked() {
        let err = check("[plugins.x]\nkv_max_keys = 0\n").unwrap_err();
        assert!(err.contains("plugins.x.kv_max_keys"), "{err}");
        let err = check("[plugins.x]\nkv_max_value_bytes = 99999999999\n").unwrap_err();
        assert!(err.contains("plugins.x.kv_max_value_bytes"), "{err}");
        check("[plugins.x]\nkv_max_keys = 10\nkv_max_value_bytes = 100\n").unwrap();
    }

    #[test]
    fn host_patterns_are_checked_by_the_http_capability() {
        let err = check("[plugins.w]\nallowed_hosts = [\"ftp://x\"]\n").unwrap_err();
        assert!(err.contains("plugins.w.allowed_hosts"), "{err}");
        check("[plugins.w]\nallowed_hosts = [\"https://*.example.com\"]\n").unwrap();
    }

    #[test]
    fn the_example_config_passes_the_capability_checks() {
        let example = include_str!("../../../../examples/jobhost.toml");
        check_config(&Config::from_toml(example).unwrap()).unwrap();
    }
}
