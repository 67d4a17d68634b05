//! The component runtime: the only code that touches wasmtime.
//!
//! - [`engine`]: one Engine per process (pooling allocator, epoch ticker);
//! - [`cache`]: compiled components on disk;
//! - [`plugin`]: loading and checking one `.wasm` file;
//! - [`registry`]: the plugins a node serves, swapped atomically on reload;
//! - [`watcher`]: hot reload of the plugins folder;
//! - [`capabilities`]: host imports, granted per plugin;
//! - [`policy`]: the grants and limits a plugin's instances get, from its config;
//! - [`context`], [`instance`], [`output`]: one sandboxed store per call, its deadline,
//!   cancellation and limits, and its log;
//! - `warm`: instances kept between attempts of plugins that opt in (`plugins.<id>.reuse`).
//!
//! [`Runtime`] ties these together: it loads plugins and runs job attempts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;
use wasmtime::Engine;
use wasmtime::component::Linker;

pub mod bindings;
pub mod cache;
pub mod capabilities;
pub mod context;
pub mod engine;
pub mod instance;
pub mod job;
pub mod output;
pub mod plugin;
pub mod policy;
pub mod registry;
pub mod secrets;
pub mod text;
mod warm;
pub mod watcher;

use bindings::jobhost::plugin::types;
use cache::{CacheStats, ComponentCache};
use capabilities::CallState;
use capabilities::GrantTable;
use capabilities::destinations::ProtectedServices;
use capabilities::kv::KvHost;
pub use capabilities::kv::{KvBackend, KvError, KvResult, KvWrite};
pub use capabilities::{check_config, check_grants};
use context::{CallKind, Crash};
use engine::Allocator;
use instance::CallSpec;
pub use job::{CrashKind, DiscardEvents, JobEvents, JobInput, LogLevel, RunOutcome};
use jobhost_config::Config;
pub use plugin::{CapabilityStatus, CapabilityUse, LoadError, PluginInfo, is_valid_job_type};
use plugin::{Loader, Plugin, Rejection};
pub use registry::PluginStatus;
use registry::{Change, Registry, RejectedFile};
pub use secrets::{SecretProvider, SecretProviders};

/// Errors setting up the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime refused the engine configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// A capability refused its part of the configuration.
    #[error("{0}")]
    Config(String),
    /// The host's own imports failed to link (a bug).
    #[error("cannot link host capabilities: {0}")]
    Link(String),
    /// The plugins folder is missing or unreadable.
    #[error("cannot read plugins folder {path}: {reason}")]
    PluginsDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The folder watcher could not start.
    #[error("cannot watch plugins folder {path}: {reason}")]
    Watch {
        /// The folder.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Errors running or validating a job, before any plugin code runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// No loaded plugin serves the job type.
    #[error("no loaded plugin serves job type `{0}`")]
    NoPlugin(String),
}

/// Errors from [`Runtime::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    /// No loaded plugin serves the job type.
    #[error("no loaded plugin serves job type `{0}`")]
    NoPlugin(String),
    /// Every instance slot stayed busy for the whole validation budget.
    #[error("all plugin instance slots are busy; try again shortly")]
    Busy,
    /// The job type needs something this host cannot provide (e.g. confined processes).
    #[error("{0}")]
    Unavailable(String),
    /// The plugin rejected the spec; the message is the plugin's.
    #[error("{0}")]
    Invalid(String),
    /// No plugin serves the job type yet, and plugins are still compiling (one of them may
    /// serve it): retry shortly.
    #[error(
        "no plugin serves job type `{job_type}` yet; still compiling: {}; retry shortly",
        compiling.join(", ")
    )]
    Compiling {
        /// The job type asked for.
        job_type: String,
        /// The plugin ids compiling now.
        compiling: Vec<String>,
    },
    /// The plugin's `validate` crashed.
    #[error("plugin could not validate the spec: {0}")]
    Crashed(String),
}

/// Per-call options of [`Runtime::run`].
#[derive(Clone)]
pub struct RunOptions {
    /// Deadline of the attempt; the plugin's configured default when `None`.
    pub timeout: Option<Duration>,
    /// Cancels the attempt.
    pub cancel: CancellationToken,
    /// Receives log lines and progress.
    pub events: Arc<dyn JobEvents>,
}

impl RunOptions {
    /// Options with default deadline, no cancellation, and `events` as sink.
    pub fn new(events: Arc<dyn JobEvents>) -> Self {
        RunOptions {
            timeout: None,
            cancel: CancellationToken::new(),
            events,
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// How it ended.
    pub outcome: RunOutcome,
    /// Id of the plugin that ran it.
    pub plugin_id: String,
    /// Its version (from `describe`).
    pub plugin_version: String,
    /// SHA-256 of its file: tells exactly which build ran.
    pub plugin_digest: String,
    /// Wall-clock time from instantiation to return.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// Log lines dropped because the job's log budget was spent.
    pub logs_dropped: u64,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// What a folder sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Ids newly loaded.
    pub loaded: Vec<String>,
    /// Ids whose new file replaced a serving version.
    pub replaced: Vec<String>,
    /// Ids whose file was removed.
    pub removed: Vec<String>,
    /// Ids whose latest file was rejected.
    pub rejected: Vec<String>,
}

/// Counters describing the runtime.
#[derive(Debug, Clone, Serialize)]
pub struct RuntimeStats {
    /// Which instance allocator is in use.
    pub allocator: Allocator,
    /// Compile and cache-hit counts.
    pub cache: CacheStats,
    /// Instance slots free right now.
    pub free_slots: usize,
    /// Instance slots in all (`runtime.max_instances`).
    pub slots: usize,
    /// Instances kept for their plugin's next attempt (`plugins.<id>.reuse`), waiting or
    /// running; at most `runtime.max_instances`.
    pub kept_instances: usize,
}

/// The result of inspecting one file without serving it.
pub struct Inspection {
    /// Plugin id the file would have.
    pub id: String,
    /// The loaded plugin, or why it would be rejected.
    pub result: Result<Arc<Plugin>, Rejection>,
}

struct Inner {
    config: Config,
    engine: Engine,
    allocator: Allocator,
    linker: Linker<CallState>,
    cache: Arc<ComponentCache>,
    registry: Registry,
    slots: Semaphore,
    /// Room for instances kept between attempts (`plugins.<id>.reuse`).
    kept: warm::KeptBudget,
    /// What a kept instance's handles point at between attempts: no job's log.
    between_calls: Arc<context::JobContext>,
    validation: Validation,
    sync_lock: Mutex<()>,
    process: Arc<capabilities::process::ProcessHost>,
    grants: Arc<GrantTable>,
    kv: Arc<KvHost>,
    secrets: Arc<SecretProviders>,
    protected: Arc<ProtectedServices>,
    /// Plugin ids whose files are being compiled now, with the file.
    compiling: std::sync::Mutex<std::collections::BTreeMap<String, PathBuf>>,
    /// True once the first read of the plugins folder has finished.
    first_sync_done: tokio::sync::watch::Sender<bool>,
    /// True once some plugin serves a job type.
    serving: tokio::sync::watch::Sender<bool>,
}

/// Removes a plugin id from [`Inner::compiling`] when its load ends, however it ends.
struct Compiling<'a> {
    runtime: &'a Runtime,
    id: String,
}

impl Drop for Compiling<'_> {
    fn drop(&mut self) {
        self.runtime.compiling_set().remove(&self.id);
    }
}

/// What reading one plugin file gave.
enum FileLoad {
    /// A new build loaded (it serves once [`Registry::resolve`] says so).
    Loaded(Box<Plugin>),
    /// The file was refused.
    Rejected(String, PathBuf, Rejection),
    /// The same bytes are loaded already.
    Unchanged,
}

/// The instance budget of `validate` calls: slots of their own (`runtime.validate_slots`)
/// and a few per plugin (`runtime.validate_per_plugin`).
struct Validation {
    slots: Semaphore,
    per_plugin: std::sync::Mutex<std::collections::HashMap<String, Arc<Semaphore>>>,
}

impl Validation {
    fn new(slots: u32) -> Validation {
        Validation {
            slots: Semaphore::new(slots as usize),
            per_plugin: Default::default(),
        }
    }

    /// The semaphore of plugin `id`'s validate calls, `permits` wide.
    fn per_plugin(&self, id: &str, permits: u32) -> Arc<Semaphore> {
        let mut map = self.per_plugin.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(permits as usize)))
            .clone()
    }
}

/// The component runtime of a node. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// Checks the capabilities' config ([`check_config`]), creates the engine, links the
    /// capabilities, starts the epoch ticker. Loads nothing.
    pub fn new(config: Config) -> Result<Runtime, RuntimeError> {
        check_config(&config).map_err(|e| RuntimeError::Config(e.to_string()))?;
        let (engine, allocator) =
            engine::build(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        engine::start_epoch_ticker(&engine, Duration::from_millis(config.runtime.epoch_tick_ms));
        let mut linker = Linker::new(&engine);
        capabilities::link_all(&mut linker).map_err(|e| RuntimeError::Link(format!("{e:#}")))?;
        let cache = Arc::new(ComponentCache::new(
            &engine,
            config.runtime.cache_folder().as_deref(),
        ));
        let slots = Semaphore::new(config.runtime.max_instances as usize);
        let kept = warm::KeptBudget::new(config.runtime.max_instances as usize);
        let validate_slots = config.runtime.validate_slots;
        // `job_types.<type>.plugin`: the only plugin that may serve the type.
        let pins = config
            .job_types
            .iter()
            .filter_map(|(job_type, c)| Some((job_type.clone(), c.plugin.clone()?)))
            .collect();
        let process = Arc::new(capabilities::process::ProcessHost::new(
            config.sandbox.clone(),
        ));
        let grants = Arc::new(GrantTable::from_config(&config));
        tracing::info!(
            ?allocator,
            max_instances = config.runtime.max_instances,
            "runtime ready"
        );
        let runtime = Runtime {
            inner: Arc::new(Inner {
                config,
                engine,
                allocator,
                linker,
                cache,
                registry: Registry::with_pins(pins),
                slots,
                kept,
                between_calls: Arc::new(context::JobContext::new(
                    CancellationToken::new(),
                    Arc::new(DiscardEvents),
                    Duration::ZERO,
                    Duration::ZERO,
                    0,
                )),
                validation: Validation::new(validate_slots),
                sync_lock: Mutex::new(()),
                process,
                grants,
                kv: Arc::new(KvHost::in_memory()),
                secrets: Arc::default(),
                protected: Arc::default(),
                compiling: Default::default(),
                first_sync_done: tokio::sync::watch::Sender::new(false),
                serving: tokio::sync::watch::Sender::new(false),
            }),
        };
        if runtime.inner.config.keeps_instances() {
            start_kept_expiry(&runtime.inner);
        }
        Ok(runtime)
    }

    fn compiling_set(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, PathBuf>> {
        self.inner
            .compiling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Plugin ids whose files are being compiled now (at start, or after a change).
    pub fn compiling(&self) -> Vec<String> {
        self.compiling_set().keys().cloned().collect()
    }

    /// Whether the first read of the plugins folder has finished (a node serves its APIs
    /// before: plugins compile in the background).
    pub fn first_sync_done(&self) -> bool {
        *self.inner.first_sync_done.borrow()
    }

    /// Returns once the first read of the plugins folder has finished, or a plugin serves
    /// (whichever comes first): then a node has work to claim.
    pub async fn wait_first_serving(&self) {
        let mut done = self.inner.first_sync_done.subscribe();
        let mut serving = self.inner.serving.subscribe();
        tokio::select! {
            _ = done.wait_for(|d| *d) => {}
            _ = serving.wait_for(|s| *s) => {}
        }
    }

    /// The configuration the runtime was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The plugins folder.
    pub fn plugins_dir(&self) -> &Path {
        &self.inner.config.runtime.plugins_dir
    }

    fn loader(&self) -> Loader<'_> {
        Loader {
            engine: &self.inner.engine,
            linker: &self.inner.linker,
            cache: &self.inner.cache,
            config: &self.inner.config,
            slots: &self.inner.slots,
            process: &self.inner.process,
            grants: &self.inner.grants,
            kv: &self.inner.kv,
            secrets: &self.inner.secrets,
            protected: &self.inner.protected,
        }
    }

    /// Keeps plugin state (the `kv` capability) in `backend` from now on; until this is
    /// called it lives in this process's memory. A node calls it once, before serving.
    pub fn use_kv(&self, backend: Arc<dyn KvBackend>) {
        self.inner.kv.use_backend(backend);
    }

    /// Protects `addrs`, the node's own services (API listeners, Redis), from every plugin
    /// connection from now on, whatever the plugins' config allows.
    pub fn protect_services(&self, addrs: Vec<SocketAddr>) {
        tracing::debug!(?addrs, "plugins may not connect to these");
        self.inner.protected.set(addrs);
    }

    /// Gives plugin `id` the secrets `provider` has, besides those its config names (a
    /// node's Job Distributor does this for its delivery plugin).
    pub fn provide_secrets(&self, id: &str, provider: Arc<dyn SecretProvider>) {
        self.inner.secrets.set(id, provider);
    }

    /// The capabilities plugin `id` is granted now (from the config, unless
    /// [`Runtime::set_grants`] changed them).
    pub fn grants(&self, id: &str) -> Vec<String> {
        self.inner.grants.get(id)
    }

    /// Changes the grants of plugin `id` while the node runs. Takes effect at once for
    /// every instance, running ones included: each host call of a capability checks the
    /// grant as it stands then, so a revoked capability is denied from its next call (with
    /// an error naming it and `plugins.<id>.grants`). Instances kept between attempts
    /// (`plugins.<id>.reuse`) are not used again: their WASI context was shaped by the old
    /// grants. The next load of the plugin's file
    /// checks its imports against the new grants. Fails on a name that is not a grantable
    /// capability.
    pub fn set_grants(&self, id: &str, grants: Vec<String>) -> Result<(), String> {
        capabilities::check_grants(id, &grants)?;
        tracing::info!(plugin = %id, grants = ?grants, "plugin grants changed");
        self.inner.grants.set(id, grants);
        Ok(())
    }

    fn max_plugin_bytes(&self) -> u64 {
        self.inner.config.runtime.max_plugin_bytes
    }

    /// Loads `file` without serving it (for `jobhost plugins inspect`).
    pub async fn inspect(&self, file: &Path) -> Inspection {
        let id = plugin::plugin_id(file);
        let result = match plugin::read(file, self.max_plugin_bytes(), None) {
            Ok(bytes) => self.loader().load(file, bytes).await.map(Arc::new),
            Err(rejection) => Err(rejection),
        };
        Inspection { id, result }
    }

    /// Brings the registry in line with the plugins folder: loads new files, swaps in changed
    /// ones, unregisters removed ones. Unchanged files (same SHA-256) are skipped.
    pub async fn sync_dir(&self) -> Result<SyncReport, RuntimeError> {
        let _one_at_a_time = self.inner.sync_lock.lock().await;
        let files = wasm_files(self.plugins_dir());
        let files = match files {
            Ok(files) => files,
            Err(e) => {
                self.inner.first_sync_done.send_replace(true);
                return Err(e);
            }
        };
        let mut report = SyncReport::default();
        // Files compile side by side, `runtime.compile_concurrency` at a time (each
        // compilation is parallel too), and each serves as soon as it has compiled: a slow
        // compiler (a 17 MiB Python component takes seconds) holds up no other plugin.
        {
            use futures::StreamExt;
            let mut loads = Vec::with_capacity(files.len());
            for file in &files {
                loads.push(self.load_one(file));
            }
            let mut loads =
                futures::stream::iter(loads).buffer_unordered(self.compile_concurrency());
            while let Some(load) = loads.next().await {
                let loaded = matches!(load, FileLoad::Loaded(_));
                self.apply(load, &mut report);
                if loaded {
                    self.resolve(&mut report);
                }
            }
        }
        for id in self.inner.registry.ids() {
            if !files.iter().any(|f| plugin::plugin_id(f) == id) {
                self.inner.registry.remove(&id);
                tracing::info!(plugin = %text::printable(&id), "plugin removed");
                report.removed.push(id);
            }
        }
        // Who serves which type is decided again once all files are read, the same way
        // however they were read: a plugin that left may give a type back to another, and a
        // type two plugins claim is served by neither unless pinned.
        self.resolve(&mut report);
        self.inner.first_sync_done.send_replace(true);
        let pruned = self
            .inner
            .cache
            .prune(&self.inner.registry.cached_digests());
        if pruned > 0 {
            tracing::debug!(pruned, "removed unused compiled components from the cache");
        }
        Ok(report)
    }

    /// Loads (or reloads) the single plugin file `file` and serves it.
    pub async fn load_file(&self, file: &Path) -> SyncReport {
        let _one_at_a_time = self.inner.sync_lock.lock().await;
        let mut report = SyncReport::default();
        let load = self.load_one(file).await;
        self.apply(load, &mut report);
        self.resolve(&mut report);
        report
    }

    /// Files compiled at once: `runtime.compile_concurrency`, or one per CPU (0).
    fn compile_concurrency(&self) -> usize {
        match self.inner.config.runtime.compile_concurrency {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n as usize,
        }
    }

    async fn load_one(&self, file: &Path) -> FileLoad {
        let id = plugin::plugin_id(file);
        let folder = self.plugins_dir();
        let bytes = match plugin::read(file, self.max_plugin_bytes(), Some(folder)) {
            Ok(bytes) => bytes,
            Err(rejection) => return FileLoad::Rejected(id, file.to_owned(), rejection),
        };
        if self.inner.registry.last_digest(&id) == Some(plugin::digest(&bytes)) {
            return FileLoad::Unchanged;
        }
        self.compiling_set().insert(id.clone(), file.to_owned());
        let _compiling = Compiling {
            runtime: self,
            id: id.clone(),
        };
        match self.loader().load(file, bytes).await {
            Ok(plugin) => FileLoad::Loaded(Box::new(plugin)),
            Err(rejection) => FileLoad::Rejected(id, file.to_owned(), rejection),
        }
    }

    fn apply(&self, load: FileLoad, report: &mut SyncReport) {
        match load {
            // Whether it serves is settled by `resolve`, once every file is read.
            FileLoad::Loaded(plugin) => self.inner.registry.offer(*plugin),
            FileLoad::Rejected(id, file, rejection) => {
                self.record_rejection(&id, &file, rejection, report)
            }
            FileLoad::Unchanged => {}
        }
    }

    /// Settles who serves each job type after a sync and logs what changed.
    fn resolve(&self, report: &mut SyncReport) {
        for change in self.inner.registry.resolve() {
            match change {
                Change::Serving { plugin, replaced } => {
                    tracing::info!(
                        plugin = %text::printable(&plugin.id),
                        version = %text::printable(&plugin.info.version),
                        job_types = plugin.info.job_types.join(","),
                        digest = &plugin.digest[..12],
                        replaced,
                        "plugin loaded"
                    );
                    let ungranted = plugin.imported_not_granted();
                    if !ungranted.is_empty() {
                        tracing::info!(
                            plugin = %text::printable(&plugin.id),
                            capabilities = ungranted.join(","),
                            "imported, not granted: calls refused (grant them with plugins.{}.grants; runtime.strict_imports = true rejects such plugins)",
                            text::printable(&plugin.id)
                        );
                    }
                    if replaced {
                        report.replaced.push(plugin.id.clone());
                    } else {
                        report.loaded.push(plugin.id.clone());
                    }
                }
                Change::Blocked { id, reason } => {
                    tracing::warn!(
                        plugin = %text::printable(&id),
                        "plugin not served: {}",
                        text::printable(&reason)
                    );
                    report.rejected.push(id);
                }
            }
        }
        if !self.inner.registry.job_types().is_empty() {
            self.inner.serving.send_replace(true);
        }
    }

    fn record_rejection(
        &self,
        id: &str,
        file: &Path,
        rejection: Rejection,
        report: &mut SyncReport,
    ) {
        tracing::warn!(
            plugin = %text::printable(id),
            file = %text::printable(&file.display().to_string()),
            "plugin rejected: {}",
            text::printable(&rejection.error.to_string())
        );
        self.inner.registry.reject(RejectedFile {
            id: id.to_owned(),
            file: file.to_owned(),
            rejection,
        });
        report.rejected.push(id.to_owned());
    }

    /// Watches the plugins folder and syncs on every change (debounced). Stops when dropped.
    pub fn watch(&self) -> Result<watcher::PluginWatcher, RuntimeError> {
        watcher::PluginWatcher::start(self.clone())
    }

    /// Status of every plugin id seen in the folder: `loaded`, `rejected`, or `compiling`
    /// for a file whose first build is being compiled.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        let mut statuses = self.inner.registry.statuses();
        for (id, file) in self.compiling_set().iter() {
            if !statuses.iter().any(|s| &s.id == id) {
                statuses.push(PluginStatus {
                    id: id.clone(),
                    file: file.clone(),
                    status: "compiling",
                    info: None,
                    digest: None,
                    rejection: None,
                    imports: Vec::new(),
                });
            }
        }
        statuses.sort_by(|a, b| a.id.cmp(&b.id));
        statuses
    }

    /// Detects (and logs) the host's cgroup setup for native processes now rather than at
    /// the first process job. Returns whether processes can be confined.
    pub fn detect_sandbox(&self) -> bool {
        self.inner.process.sandbox().hierarchy().is_some()
    }

    /// The job types served by loaded plugins, sorted.
    pub fn job_types(&self) -> Vec<String> {
        self.inner.registry.job_types()
    }

    /// The plugin serving `job_type`.
    pub fn plugin_for(&self, job_type: &str) -> Option<Arc<Plugin>> {
        self.inner.registry.serving(job_type)
    }

    /// The loaded plugin with id `id`.
    pub fn plugin(&self, id: &str) -> Option<Arc<Plugin>> {
        self.inner.registry.get(id)
    }

    /// Counters.
    pub fn stats(&self) -> RuntimeStats {
        RuntimeStats {
            allocator: self.inner.allocator,
            cache: self.inner.cache.stats(),
            free_slots: self.inner.slots.available_permits(),
            slots: self.inner.config.runtime.max_instances as usize,
            kept_instances: self.inner.kept.instances(),
        }
    }

    /// Asks the plugin serving `job_type` whether `spec` is acceptable. Sandboxed like a run.
    pub async fn validate(&self, job_type: &str, spec: &str) -> Result<(), ValidateError> {
        let mut answers = self.validate_many(job_type, &[spec]).await;
        answers.pop().expect("one answer per spec")
    }

    /// Asks the plugin serving `job_type` about each of `specs`, in order: one answer per
    /// spec. The specs of one request share an instance (at most
    /// [`VALIDATE_SHARED_CALLS`] of them; one request's specs are one caller's own), so a
    /// batch pays for a fresh instance once per that many specs rather than per spec. Each
    /// call has its own deadline; a call that traps or overruns answers for its spec alone,
    /// and the next spec gets a fresh instance.
    pub async fn validate_many(
        &self,
        job_type: &str,
        specs: &[&str],
    ) -> Vec<Result<(), ValidateError>> {
        let plugin = match self.validator(job_type) {
            Ok(plugin) => plugin,
            Err(e) => return specs.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut answers = Vec::with_capacity(specs.len());
        let mut rest = specs;
        while !rest.is_empty() {
            match self.validate_permits(&plugin).await {
                Ok(_permits) => {
                    let done = self.validate_chunk(&plugin, rest, &mut answers).await;
                    rest = &rest[done..];
                }
                Err(e) => {
                    answers.extend(rest.iter().map(|_| Err(e.clone())));
                    break;
                }
            }
        }
        answers
    }

    /// The plugin that validates `job_type`'s specs, if it can.
    fn validator(&self, job_type: &str) -> Result<Arc<Plugin>, ValidateError> {
        let Some(plugin) = self.plugin_for(job_type) else {
            let compiling = self.compiling();
            return Err(if compiling.is_empty() && self.first_sync_done() {
                ValidateError::NoPlugin(job_type.to_owned())
            } else {
                ValidateError::Compiling {
                    job_type: job_type.to_owned(),
                    compiling,
                }
            });
        };
        let needs_processes = plugin
            .imports
            .iter()
            .any(|i| i.capability == Some("process"));
        if needs_processes && !self.inner.process.sandbox().can_run() {
            return Err(ValidateError::Unavailable(format!(
                "job type `{job_type}` runs native processes, but {}",
                jobhost_sandbox::SpawnError::Unconfined
                    .to_string()
                    .trim_start_matches("this ")
            )));
        }
        Ok(plugin)
    }

    /// A validation slot, and one of `plugin`'s own. Validation has slots of its own, and one
    /// plugin may hold only a few of them: a slow or spinning `validate` holds up its own
    /// submissions, not the API or jobs.
    async fn validate_permits(
        &self,
        plugin: &Plugin,
    ) -> Result<(OwnedSemaphorePermit, SemaphorePermit<'_>), ValidateError> {
        let limits = &self.inner.config.runtime;
        let permits = async {
            let own = self
                .inner
                .validation
                .per_plugin(&plugin.id, limits.validate_per_plugin);
            let own = own.acquire_owned().await.expect("never closed");
            let slot = self
                .inner
                .validation
                .slots
                .acquire()
                .await
                .expect("never closed");
            (own, slot)
        };
        tokio::time::timeout(self.validate_deadline(), permits)
            .await
            .map_err(|_| ValidateError::Busy)
    }

    fn validate_deadline(&self) -> Duration {
        Duration::from_millis(self.inner.config.runtime.validate_timeout_ms)
    }

    /// Validates the first of `specs` in turn on one instance of `plugin` (a fresh one after
    /// a call that did not return on its own), pushing one answer per spec, while the permits
    /// it was given are held no longer than [`VALIDATE_SHARED_TIME`] (so a slow `validate`
    /// holds up other requests no longer than a call) and for at most
    /// [`VALIDATE_SHARED_CALLS`] specs. Returns how many it answered (at least one).
    async fn validate_chunk(
        &self,
        plugin: &Plugin,
        specs: &[&str],
        answers: &mut Vec<Result<(), ValidateError>>,
    ) -> usize {
        let started = Instant::now();
        let call = CallSpec {
            kind: CallKind::Validate,
            timeout: plugin.policy.timeout.min(self.validate_deadline()),
            cancel: CancellationToken::new(),
            cancel_grace: Duration::ZERO,
            events: Arc::new(DiscardEvents),
            log_limit: 64 * 1024,
            process: self.inner.process.clone(),
            grants: self.inner.grants.clone(),
            kv: self.inner.kv.clone(),
            secrets: self.inner.secrets.clone(),
            protected: self.inner.protected.clone(),
        };
        let mut ready: Option<(wasmtime::Store<CallState>, bindings::JobPlugin)> = None;
        let mut done = 0;
        for spec in specs.iter().take(VALIDATE_SHARED_CALLS) {
            if done > 0 && started.elapsed() > VALIDATE_SHARED_TIME {
                break;
            }
            done += 1;
            let (mut store, context, instance) = match ready.take() {
                Some((mut store, instance)) => {
                    let context = instance::new_context(&call);
                    instance::begin_call(&mut store, context.clone(), &call);
                    (store, context, Some(instance))
                }
                None => {
                    let (store, context) =
                        instance::new_store(&self.inner.engine, &plugin.policy, &call);
                    (store, context, None)
                }
            };
            let result = instance::contained(&context, async {
                let instance = match instance {
                    Some(instance) => instance,
                    None => plugin.pre.instantiate_async(&mut store).await?,
                };
                let answer = instance.call_validate(&mut store, spec).await?;
                Ok((instance, answer))
            })
            .await;
            answers.push(match result {
                Ok((instance, answer)) => {
                    ready = Some((store, instance));
                    answer.map_err(|message| {
                        // Shown to the caller (an error answer, a gRPC status header): bounded.
                        ValidateError::Invalid(text::cut(message, MAX_VALIDATE_MESSAGE_BYTES))
                    })
                }
                // A store stopped mid-call is never used again.
                Err(Crash::Contained(_, reason)) => Err(ValidateError::Crashed(reason)),
                Err(Crash::Cancelled) => Err(ValidateError::Crashed("cancelled".into())),
            });
        }
        done
    }

    /// True while `plugin` is the build serving `job_type`: a replaced or blocked build
    /// keeps no instance for attempts it will not serve.
    fn still_serves(&self, plugin: &Arc<Plugin>, job_type: &str) -> bool {
        self.plugin_for(job_type)
            .is_some_and(|serving| Arc::ptr_eq(&serving, plugin))
    }

    /// An instance of `plugin` kept from an earlier attempt (`plugins.<id>.reuse`), if one
    /// waits and the grants it was built under still hold.
    fn take_kept(&self, plugin: &Plugin) -> Option<warm::Kept> {
        if plugin.policy.reuse <= 1 {
            return None;
        }
        let grants = self.inner.grants.generation();
        let kept = plugin.kept.take()?;
        (kept.store.data().grants_generation == grants).then_some(kept)
    }

    /// Keeps an instance that served an attempt of `job` normally for the next one, unless
    /// it served its `reuse` attempts, the attempt was cancelled, its build no longer serves
    /// or the budget has no room; otherwise drops it (which flushes the guest's last
    /// unterminated output line into the attempt's log).
    fn keep_or_drop(
        &self,
        plugin: &Arc<Plugin>,
        served: warm::Served,
        job: &JobInput,
        call: &CallSpec,
    ) {
        let warm::Served {
            mut store,
            instance,
            calls,
            place,
        } = served;
        let keep = calls < plugin.policy.reuse
            && !call.cancel.is_cancelled()
            && self.still_serves(plugin, &job.job_type);
        let place = keep
            .then(|| place.or_else(|| self.inner.kept.place(plugin.kept_places?)))
            .flatten();
        let Some(place) = place else {
            drop(store);
            return;
        };
        // Flushes this attempt's output and lets go of its log and events.
        instance::begin_call(&mut store, self.inner.between_calls.clone(), call);
        plugin.kept.put(warm::Kept {
            store,
            instance,
            calls,
            place,
        });
    }

    /// Runs one attempt of `job` in a fresh instance of the plugin serving its type (or one
    /// kept from an earlier attempt, `plugins.<id>.reuse`). Waits for a free instance slot
    /// first. Whatever the plugin does, the host is unaffected: traps, panics, deadlines and
    /// memory-limit hits become [`RunOutcome::Crashed`].
    pub async fn run(&self, job: &JobInput, options: RunOptions) -> Result<RunReport, RunError> {
        let plugin = self
            .plugin_for(&job.job_type)
            .ok_or_else(|| RunError::NoPlugin(job.job_type.clone()))?;
        let _slot = self.inner.slots.acquire().await.expect("slots never close");
        let call = CallSpec {
            kind: CallKind::Run,
            timeout: options.timeout.unwrap_or(plugin.policy.timeout),
            cancel: options.cancel.clone(),
            cancel_grace: Duration::from_millis(self.inner.config.runtime.cancel_grace_ms),
            events: options.events,
            log_limit: self.inner.config.runtime.log_limit_bytes,
            process: self.inner.process.clone(),
            grants: self.inner.grants.clone(),
            kv: self.inner.kv.clone(),
            secrets: self.inner.secrets.clone(),
            protected: self.inner.protected.clone(),
        };
        let started = Instant::now();
        let guest_job = types::Job {
            id: job.id.clone(),
            job_type: job.job_type.clone(),
            spec: job.spec.clone(),
            attempt: job.attempt,
            labels: job
                .labels
                .iter()
                .map(|(key, value)| types::Label {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        };
        let (mut store, context, ready, calls, place) = match self.take_kept(&plugin) {
            Some(mut kept) => {
                let context = instance::new_context(&call);
                instance::begin_call(&mut kept.store, context.clone(), &call);
                let ready = Some(kept.instance);
                (kept.store, context, ready, kept.calls, Some(kept.place))
            }
            None => {
                let (store, context) =
                    instance::new_store(&self.inner.engine, &plugin.policy, &call);
                (store, context, None, 0, None)
            }
        };
        let result = instance::contained(&context, async {
            let instance = match ready {
                Some(instance) => instance,
                None => plugin.pre.instantiate_async(&mut store).await?,
            };
            let outcome = instance.call_run(&mut store, &guest_job).await?;
            Ok((instance, outcome))
        })
        .await;
        let duration = started.elapsed();
        let result = match result {
            Ok((instance, outcome)) => {
                let served = warm::Served {
                    store,
                    instance,
                    calls: calls + 1,
                    place,
                };
                self.keep_or_drop(&plugin, served, job, &call);
                Ok(outcome)
            }
            // A store stopped mid-call is never used again.
            Err(crash) => {
                drop(store);
                Err(crash)
            }
        };
        let outcome = outcome(result, options.cancel.is_cancelled());
        let outcome = bounded(outcome, &self.inner.config.runtime);
        Ok(RunReport {
            outcome,
            plugin_id: plugin.id.clone(),
            plugin_version: plugin.info.version.clone(),
            plugin_digest: plugin.digest.clone(),
            duration,
            logs_dropped: context.logs_dropped(),
        })
    }
}

fn outcome(result: Result<types::Outcome, Crash>, cancelled: bool) -> RunOutcome {
    match result {
        Ok(types::Outcome::Completed(output)) => RunOutcome::Completed { output },
        // Once cancelled, anything but a finished job is a cancellation.
        Ok(_) | Err(_) if cancelled => RunOutcome::Cancelled,
        Ok(types::Outcome::Failed(reason)) => RunOutcome::Failed { reason },
        Ok(types::Outcome::Retry(retry)) => RunOutcome::Retry {
            after: Duration::from_millis(retry.after_ms),
            reason: retry.reason,
        },
        Err(Crash::Contained(kind, reason)) => RunOutcome::Crashed { kind, reason },
        Err(Crash::Cancelled) => RunOutcome::Cancelled,
    }
}

/// Most bytes of a `validate` refusal passed on to the caller; a longer one is cut.
pub const MAX_VALIDATE_MESSAGE_BYTES: usize = 4096;

/// Most specs of one request that share an instance in [`Runtime::validate_many`]: a batch
/// pays for a fresh instance once per this many.
pub const VALIDATE_SHARED_CALLS: usize = 64;

/// How long the specs of one request may keep an instance, and the validation slot it
/// takes, before the next spec queues for a slot again like any other request's.
pub const VALIDATE_SHARED_TIME: Duration = Duration::from_millis(100);

/// `outcome` within the sizes the node keeps: an output over `runtime.max_output_bytes`
/// fails the attempt (an output cut short would be a wrong result), a reason over
/// `runtime.max_reason_bytes` is cut, saying so.
fn bounded(outcome: RunOutcome, limits: &jobhost_config::RuntimeConfig) -> RunOutcome {
    let cut = |reason: String| text::cut(reason, limits.max_reason_bytes);
    match outcome {
        RunOutcome::Completed { output } if output.len() > limits.max_output_bytes => {
            RunOutcome::Failed {
                reason: format!(
                    "the plugin's output is {} bytes; the limit is {} \
                     (runtime.max_output_bytes): not stored",
                    output.len(),
                    limits.max_output_bytes
                ),
            }
        }
        RunOutcome::Failed { reason } => RunOutcome::Failed {
            reason: cut(reason),
        },
        RunOutcome::Retry { after, reason } => RunOutcome::Retry {
            after,
            reason: cut(reason),
        },
        RunOutcome::Crashed { kind, reason } => RunOutcome::Crashed {
            kind,
            reason: cut(reason),
        },
        other => other,
    }
}

/// The `.wasm` files directly in `dir`, sorted by name.
fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, RuntimeError> {
    let read = std::fs::read_dir(dir).map_err(|e| RuntimeError::PluginsDir {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm") && path.is_file())
        // Dotfiles are temporaries of editors and copy tools, not plugins.
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Starts the thread that drops the instances kept between attempts once they have waited
/// unused for `runtime.kept_idle_secs`, so an idle plugin's memory goes back to the pool;
/// it ends with the runtime.
fn start_kept_expiry(inner: &Arc<Inner>) {
    let idle = Duration::from_secs(inner.config.runtime.kept_idle_secs);
    let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let weak = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("jobhost-kept-expiry".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(inner) = weak.upgrade() else { return };
                for id in inner.registry.ids() {
                    if let Some(plugin) = inner.registry.get(&id) {
                        let dropped = plugin.kept.expire(idle);
                        if dropped > 0 {
                            tracing::debug!(plugin = %id, dropped, ?idle, "idle kept instances dropped");
                        }
                    }
                }
            }
        })
        .expect("spawning the kept-instance expiry thread");
}
