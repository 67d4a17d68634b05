//! One plugin: a `.wasm` file checked, compiled, linked and described.
//!
//! Loading goes: read -> classify the bytes -> compile (or load from the cache) -> check every
//! import against the plugin's grants -> pre-instantiate -> call `describe` once, sandboxed.
//! Any step can reject the file with a [`LoadError`] whose message says what to do.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};

use super::bindings::{self, JobPluginPre};
use super::capabilities;
use super::capabilities::CallState;
use super::capabilities::kv::KvHost;
use super::capabilities::{GrantTable, is_grantable};
use super::context::{CallKind, Crash};
use super::instance::{self, CallSpec};
use super::job::DiscardEvents;
use super::policy::PluginPolicy;
use super::secrets::SecretProviders;
use super::warm::{self, Shelf};
use jobhost_config::Config;
pub use jobhost_config::is_valid_job_type;

/// Why a plugin file was not loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read file: {0}")]
    Read(String),
    /// The file is larger than `runtime.max_plugin_bytes`; it was not read.
    #[error("the file is {size} bytes; the limit is {limit} (runtime.max_plugin_bytes)")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A symbolic link in the plugins folder that leads out of it.
    #[error(
        "a symbolic link to {0}, outside the plugins folder: only files in the folder, or \
         links to files in it, load (copy the file in instead)"
    )]
    OutsideFolder(String),
    /// Not WebAssembly at all.
    #[error("not a WebAssembly file (no `\\0asm` header)")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "is a core WebAssembly module, not a component: build it for wasm32-wasip2 \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component does not compile.
    #[error("not a valid component: {0}")]
    Invalid(String),
    /// Imports an interface no capability provides.
    #[error("imports {0}, which this host does not provide")]
    UnknownImport(String),
    /// Built against a contract version this host cannot serve.
    #[error("needs {interface}, but this host serves jobhost:plugin@{major}.{minor}.x")]
    UnsupportedVersion {
        /// The import, with its version.
        interface: String,
        /// Served major version.
        major: u64,
        /// Served minor version.
        minor: u64,
    },
    /// Imports an interface whose capability the plugin is not granted
    /// (`runtime.strict_imports`).
    #[error(
        "imports {interface}, which needs the `{capability}` capability: grant it with \
         `plugins.{id}.grants = [\"{capability}\"]` in the config (runtime.strict_imports \
         rejects such plugins; without it they load and those calls are refused)"
    )]
    NotGranted {
        /// The import.
        interface: String,
        /// The capability that provides it.
        capability: &'static str,
        /// The plugin id (config section).
        id: String,
    },
    /// Does not export the `job-plugin` world.
    #[error(
        "does not implement world jobhost:plugin/job-plugin@{version}: {0}",
        version = bindings::WIT_PACKAGE_VERSION
    )]
    WrongWorld(String),
    /// `describe()` trapped or timed out.
    #[error("describe() failed: {0}")]
    Describe(String),
    /// `describe()` returned something unusable.
    #[error("describe() returned an invalid description: {0}")]
    BadDescription(String),
    /// One of its job types is pinned to another plugin (`job_types.<type>.plugin`).
    #[error(
        "job type `{job_type}` is served by plugin `{owner}` only (job_types.{job_type}.plugin)"
    )]
    JobTypePinned {
        /// The job type.
        job_type: String,
        /// The plugin the config gives it to.
        owner: String,
    },
    /// Another plugin claims one of its job types too, and the config does not say whose it
    /// is: neither serves it.
    #[error(
        "job type `{job_type}` is also claimed by plugin {}: neither serves it until the config \
         names its plugin (job_types.{job_type}.plugin = \"<id>\")",
        others.iter().map(|o| format!("`{o}`")).collect::<Vec<_>>().join(", ")
    )]
    JobTypeContested {
        /// The job type.
        job_type: String,
        /// The other plugins that claim it.
        others: Vec<String>,
    },
}

impl LoadError {
    /// Whether the file was refused for what the config says, not for its code: it
    /// compiled, and loads unchanged once the config changes.
    pub fn is_config_caused(&self) -> bool {
        matches!(
            self,
            LoadError::NotGranted { .. }
                | LoadError::JobTypePinned { .. }
                | LoadError::JobTypeContested { .. }
        )
    }
}

/// What a plugin says about itself (from `describe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// Job types served.
    pub job_types: Vec<String>,
    /// One-line description.
    pub description: String,
    /// Capabilities the plugin asks for (informational).
    pub capabilities: Vec<String>,
    /// JSON Schema of the spec, if published.
    pub spec_schema: Option<String>,
}

/// One import of a component and whether the plugin may have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportCheck {
    /// WIT interface, e.g. `wasi:sockets/tcp@0.2.3`.
    pub interface: String,
    /// The capability providing it, if the host has one.
    pub capability: Option<&'static str>,
    /// True if the plugin may link it.
    pub granted: bool,
}

/// How one capability stands for a plugin: what it asks for against what it is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapabilityUse {
    /// Capability name, as in grants.
    pub capability: String,
    /// The component imports an interface of it (calls there need the grant).
    pub imported: bool,
    /// The plugin lists it in `describe()` (informational).
    pub declared: bool,
    /// The config grants it.
    pub granted: bool,
    /// What follows.
    pub status: CapabilityStatus,
}

/// The verdict of a [`CapabilityUse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapabilityStatus {
    /// Asked for and granted.
    Ok,
    /// Imported but not granted, with `runtime.strict_imports`: rejected at load.
    MissingGrant,
    /// Imported but not granted: the plugin loads, and each call there is refused.
    ImportedNotGranted,
    /// Declared in `describe()` but neither imported nor granted: the plugin loads, and
    /// could not use it anyway.
    DeclaredNotGranted,
    /// Granted but neither imported nor declared: the grant could be removed.
    GrantedUnused,
    /// Declared in `describe()`, but this host has no capability of that name.
    Unknown,
}

impl CapabilityStatus {
    /// A short phrase for people.
    pub fn phrase(self) -> &'static str {
        match self {
            CapabilityStatus::Ok => "ok",
            CapabilityStatus::MissingGrant => "missing grant → rejected (strict_imports)",
            CapabilityStatus::ImportedNotGranted => "imported, not granted: calls refused",
            CapabilityStatus::DeclaredNotGranted => "declared, not granted (not imported)",
            CapabilityStatus::GrantedUnused => "granted, unused",
            CapabilityStatus::Unknown => "unknown capability",
        }
    }
}

/// Requested against granted, for every grantable capability a plugin imports, declares in
/// `describe()` (`declared`), or is granted (`grants`); then declared names this host does
/// not know. Always-granted capabilities are left out. `strict`: `runtime.strict_imports`
/// (an import without its grant rejects the plugin).
pub fn capability_report(
    imports: &[ImportCheck],
    declared: &[String],
    grants: &[String],
    strict: bool,
) -> Vec<CapabilityUse> {
    let mut rows = Vec::new();
    for cap in capabilities::ALL.iter().filter(|c| !c.always_granted()) {
        let name = cap.name();
        let imported = imports.iter().any(|i| i.capability == Some(name));
        let is_declared = declared.iter().any(|d| d == name);
        let granted = grants.iter().any(|g| g == name);
        let status = match (imported, is_declared, granted) {
            (false, false, false) => continue,
            (true, _, false) if strict => CapabilityStatus::MissingGrant,
            (true, _, false) => CapabilityStatus::ImportedNotGranted,
            (false, true, false) => CapabilityStatus::DeclaredNotGranted,
            (false, false, true) => CapabilityStatus::GrantedUnused,
            (_, _, true) => CapabilityStatus::Ok,
        };
        rows.push(CapabilityUse {
            capability: name.to_owned(),
            imported,
            declared: is_declared,
            granted,
            status,
        });
    }
    for name in declared {
        if is_grantable(name)
            || capabilities::is_always_granted(name)
            || rows.iter().any(|r| &r.capability == name)
        {
            continue;
        }
        rows.push(CapabilityUse {
            capability: name.clone(),
            imported: false,
            declared: true,
            granted: false,
            status: CapabilityStatus::Unknown,
        });
    }
    rows
}

/// A loaded plugin, ready to instantiate. Cheap to share; a running job keeps its own
/// `Arc`, so a hot-reloaded replacement never disturbs it.
pub struct Plugin {
    /// Plugin id: the file name without `.wasm`; also its config section.
    pub id: String,
    /// The file it was loaded from.
    pub file: PathBuf,
    /// SHA-256 of the file (hex).
    pub digest: String,
    /// What the plugin says about itself.
    pub info: PluginInfo,
    /// Its imports and their grants.
    pub imports: Vec<ImportCheck>,
    /// Grants and limits.
    pub policy: PluginPolicy,
    pub(crate) pre: JobPluginPre<CallState>,
    /// Instances of this build kept between attempts (`plugins.<id>.reuse`).
    pub(crate) kept: Shelf,
    /// The places one kept instance takes in the budget of kept instances (`None`: its
    /// needs are unknown, so none is kept).
    pub(crate) kept_places: Option<usize>,
}

impl Plugin {
    /// Instances of this build waiting for their next attempt (`plugins.<id>.reuse`).
    pub fn kept_instances(&self) -> usize {
        self.kept.len()
    }

    /// How many of the `runtime.max_instances` places for kept instances one instance of
    /// this build takes: one per pool slot's share of core instances, memories and tables it
    /// needs (`None`: unknown, so none is kept).
    pub fn kept_places(&self) -> Option<usize> {
        self.kept_places
    }

    /// True if the capability `name` is granted.
    pub fn is_granted(&self, name: &str) -> bool {
        self.policy.is_granted(name)
    }

    /// Capabilities whose interfaces the component imports without their grant: it loaded
    /// (an import is not a use), and each call there is refused.
    pub fn imported_not_granted(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .imports
            .iter()
            .filter(|i| !i.granted)
            .filter_map(|i| i.capability)
            .collect();
        names.dedup();
        names
    }
}

/// A file that could not be loaded, with what was learned before it failed.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Why.
    pub error: LoadError,
    /// SHA-256 of the file, if it could be read.
    pub digest: Option<String>,
    /// Its imports, if it compiled.
    pub imports: Vec<ImportCheck>,
}

impl Rejection {
    fn new(error: LoadError) -> Self {
        Rejection {
            error,
            digest: None,
            imports: Vec::new(),
        }
    }
}

/// The plugin id for a file: its name without `.wasm`.
pub fn plugin_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// SHA-256 of `bytes`, hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Everything needed to turn bytes into a [`Plugin`].
pub(crate) struct Loader<'a> {
    pub engine: &'a wasmtime::Engine,
    pub linker: &'a Linker<CallState>,
    pub cache: &'a Arc<super::cache::ComponentCache>,
    pub config: &'a Config,
    /// Instance slots: `describe` takes one like any call.
    pub slots: &'a tokio::sync::Semaphore,
    /// Native-process support, for the stores it creates.
    pub process: &'a std::sync::Arc<super::capabilities::process::ProcessHost>,
    /// Current grants: imports are checked against them, not the config's.
    pub grants: &'a Arc<GrantTable>,
    /// Plugin state, for the stores it creates.
    pub kv: &'a Arc<KvHost>,
    /// Secrets the node provides, for the stores it creates.
    pub secrets: &'a Arc<SecretProviders>,
    /// The node's own services, for the stores it creates.
    pub protected: &'a Arc<super::capabilities::destinations::ProtectedServices>,
}

/// How long `describe` may take.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Loader<'_> {
    /// Loads `bytes` read from `file`. Compilation runs on a blocking thread.
    pub async fn load(&self, file: &Path, bytes: Arc<[u8]>) -> Result<Plugin, Rejection> {
        let id = plugin_id(file);
        let digest = digest(&bytes);
        let with_digest = |error| Rejection {
            error,
            digest: Some(digest.clone()),
            imports: Vec::new(),
        };
        classify(&bytes).map_err(with_digest)?;
        let component = {
            let (engine, cache) = (self.engine.clone(), self.cache.clone());
            let (bytes, d) = (bytes.clone(), digest.clone());
            tokio::task::spawn_blocking(move || cache.get_or_compile(&engine, &bytes, &d))
                .await
                .map_err(|e| with_digest(LoadError::Invalid(format!("compiler crashed: {e}"))))?
                .map_err(|e| with_digest(LoadError::Invalid(hint(format!("{e:#}")))))?
        };
        let kept_places = warm::places_for(&component, &bytes);
        let mut policy = PluginPolicy::from_config(self.config, &id);
        policy.grants = self.grants.get(&id);
        let imports = check_imports(self.engine, &component, &policy);
        let reject = |error| Rejection {
            error,
            digest: Some(digest.clone()),
            imports: imports.clone(),
        };
        first_import_error(&imports, &id, self.config.runtime.strict_imports).map_err(reject)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(JobPluginPre::new)
            .map_err(|e| reject(LoadError::WrongWorld(hint(format!("{e:#}")))))?;
        let info = {
            let _slot = self.slots.acquire().await.expect("slots never close");
            let spec = CallSpec {
                kind: CallKind::Describe,
                timeout: DESCRIBE_TIMEOUT,
                cancel: Default::default(),
                cancel_grace: Duration::ZERO,
                events: Arc::new(DiscardEvents),
                log_limit: 64 * 1024,
                process: self.process.clone(),
                grants: self.grants.clone(),
                kv: self.kv.clone(),
                secrets: self.secrets.clone(),
                protected: self.protected.clone(),
            };
            describe(self.engine, &pre, &policy, &spec)
                .await
                .map_err(reject)?
        };
        Ok(Plugin {
            id,
            file: file.to_owned(),
            digest,
            info,
            imports,
            policy,
            pre,
            kept: Shelf::default(),
            kept_places,
        })
    }
}

/// Reads a plugin file of at most `limit` bytes. With `folder` (the plugins folder), a
/// symbolic link is followed only to a file inside that folder, so that a link cannot make
/// the node load (or read) a file the operator did not put there.
pub fn read(file: &Path, limit: u64, folder: Option<&Path>) -> Result<Arc<[u8]>, Rejection> {
    use std::io::Read;
    let fail = |error| Err(Rejection::new(error));
    let io = |e: std::io::Error| Rejection::new(LoadError::Read(e.to_string()));
    if let Some(folder) = folder
        && std::fs::symlink_metadata(file).map_err(io)?.is_symlink()
    {
        let target = std::fs::canonicalize(file).map_err(io)?;
        let inside = std::fs::canonicalize(folder).is_ok_and(|f| target.starts_with(f));
        if !inside {
            return fail(LoadError::OutsideFolder(target.display().to_string()));
        }
    }
    let opened = std::fs::File::open(file).map_err(io)?;
    let size = opened.metadata().map_err(io)?.len();
    if size > limit {
        return fail(LoadError::TooLarge { size, limit });
    }
    // Read no more than the limit, even if the file grows meanwhile.
    let mut bytes = Vec::with_capacity(size as usize);
    opened.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return fail(LoadError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(Arc::from(bytes))
}

/// `message` with what to do about it, where a knob or a build flag decides: the pooling
/// allocator's per-component maxima, and the component-model async feature this host
/// does not run.
fn hint(message: String) -> String {
    let knob = if message.contains("core module instances") {
        Some("runtime.max_core_instances_per_component")
    } else if message.contains("tables") && message.contains("pooling") {
        Some("runtime.max_tables_per_component")
    } else if message.contains("memories") && message.contains("pooling") {
        Some("runtime.max_memories_per_component")
    } else {
        None
    };
    if let Some(knob) = knob {
        return format!("{message} (raise {knob})");
    }
    if message.contains("component model async") || message.contains("component-model-async") {
        return format!(
            "{message} (this host does not run component-model async: build the plugin \
             without it, e.g. `jco componentize --backend qjs --backend-qjs-disable-async`, \
             or `componentize-qjs --sync`)"
        );
    }
    message
}

fn classify(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotWasm);
    }
    if bytes[4..8] == CORE_VERSION {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

fn check_imports(
    engine: &wasmtime::Engine,
    component: &Component,
    policy: &PluginPolicy,
) -> Vec<ImportCheck> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| {
            let capability = capabilities::providing(name);
            ImportCheck {
                interface: name.to_owned(),
                capability: capability.map(|c| c.name()),
                granted: capability.is_some_and(|c| policy.is_granted(c.name())),
            }
        })
        .collect()
}

/// The first import that stops a load: one this host does not provide, one of a contract
/// version it does not serve, or (with `strict`, `runtime.strict_imports`) one of a
/// capability the plugin is not granted. Without `strict` an import is not a use: the
/// plugin loads, and each call it makes there is refused, naming the grant.
fn first_import_error(imports: &[ImportCheck], id: &str, strict: bool) -> Result<(), LoadError> {
    for import in imports {
        let Some(capability) = import.capability else {
            return Err(LoadError::UnknownImport(import.interface.clone()));
        };
        check_contract_version(&import.interface)?;
        if strict && !import.granted {
            return Err(LoadError::NotGranted {
                interface: import.interface.clone(),
                capability,
                id: id.to_owned(),
            });
        }
    }
    Ok(())
}

/// Rejects `jobhost:plugin/...@X.Y.Z` imports outside the served `0.1.x` line.
fn check_contract_version(interface: &str) -> Result<(), LoadError> {
    let Some(rest) = interface.strip_prefix(bindings::WIT_PACKAGE) else {
        return Ok(());
    };
    let version = rest.rsplit_once('@').map(|(_, v)| v).unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
    let (major, minor) = bindings::WIT_VERSION;
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(ma), Some(mi)) if ma == major && mi == minor => Ok(()),
        _ => Err(LoadError::UnsupportedVersion {
            interface: interface.to_owned(),
            major,
            minor,
        }),
    }
}

async fn describe(
    engine: &wasmtime::Engine,
    pre: &JobPluginPre<CallState>,
    policy: &PluginPolicy,
    spec: &CallSpec,
) -> Result<PluginInfo, LoadError> {
    let (mut store, context) = instance::new_store(engine, policy, spec);
    let call = async {
        let plugin = pre.instantiate_async(&mut store).await?;
        plugin.call_describe(&mut store).await
    };
    let info = instance::contained(&context, call)
        .await
        .map_err(|crash| match crash {
            Crash::Contained(_, reason) => LoadError::Describe(reason),
            Crash::Cancelled => LoadError::Describe("cancelled".into()),
        })?;
    let info = PluginInfo {
        name: info.name,
        version: info.version,
        job_types: info.job_types,
        description: info.description,
        capabilities: info.capabilities,
        spec_schema: info.spec_schema,
    };
    check_info(&info)?;
    Ok(info)
}

/// Most bytes of a plugin's name, and of its version.
pub const MAX_NAME_BYTES: usize = 128;
/// Most bytes of a plugin's description.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Most bytes of a plugin's spec JSON Schema.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// Most job types one plugin may serve, and most capabilities it may list.
pub const MAX_JOB_TYPES: usize = 64;

/// What `describe()` may say: what a node stores and shows of a plugin is bounded, so a
/// plugin that describes too much is rejected at load, naming the limit.
fn check_info(info: &PluginInfo) -> Result<(), LoadError> {
    let bad = |m: String| Err(LoadError::BadDescription(m));
    let too_long = |what: &str, len: usize, max: usize| {
        bad(format!("{what} is {len} bytes; the limit is {max}"))
    };
    if info.name.trim().is_empty() {
        return bad("empty name".into());
    }
    if info.name.len() > MAX_NAME_BYTES {
        return too_long("the name", info.name.len(), MAX_NAME_BYTES);
    }
    if info.version.len() > MAX_NAME_BYTES {
        return too_long("the version", info.version.len(), MAX_NAME_BYTES);
    }
    if info.description.len() > MAX_DESCRIPTION_BYTES {
        return too_long(
            "the description",
            info.description.len(),
            MAX_DESCRIPTION_BYTES,
        );
    }
    if let Some(schema) = &info.spec_schema
        && schema.len() > MAX_SCHEMA_BYTES
    {
        return too_long("the spec schema", schema.len(), MAX_SCHEMA_BYTES);
    }
    if info.job_types.is_empty() {
        return bad("no job types".into());
    }
    if info.job_types.len() > MAX_JOB_TYPES {
        return bad(format!(
            "{} job types; the limit is {MAX_JOB_TYPES}",
            info.job_types.len()
        ));
    }
    if info.capabilities.len() > MAX_JOB_TYPES
        || info.capabilities.iter().any(|c| c.len() > MAX_NAME_BYTES)
    {
        return bad(format!(
            "the capability list is too long: at most {MAX_JOB_TYPES} names of {MAX_NAME_BYTES} bytes"
        ));
    }
    for job_type in &info.job_types {
        if !is_valid_job_type(job_type) {
            let shown: String = job_type.chars().take(80).collect();
            return bad(format!(
                "job type {shown:?} must be 1-64 characters of a-z, 0-9, '-', '_', '.'"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_headers() {
        assert_eq!(classify(b"hello world"), Err(LoadError::NotWasm));
        assert_eq!(classify(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule));
        assert_eq!(classify(b"\0asm\x0d\0\x01\0"), Ok(()));
    }

    #[test]
    fn contract_versions() {
        assert!(check_contract_version("jobhost:plugin/host@0.1.0").is_ok());
        assert!(check_contract_version("jobhost:plugin/host@0.1.7").is_ok());
        assert!(check_contract_version("jobhost:plugin/host@0.2.0").is_err());
        assert!(check_contract_version("jobhost:plugin/host").is_err());
        assert!(check_contract_version("wasi:io/streams@0.2.0").is_ok());
    }

    #[test]
    fn capability_report_sets_requested_against_granted() {
        let import = |cap: &'static str| ImportCheck {
            interface: format!("x:{cap}/y"),
            capability: Some(cap),
            granted: false,
        };
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let imports = [import("kv"), import("http"), import("wasi")];
        let declared = names(&["http", "process", "teleport", "wasi"]);
        let grants = names(&["http", "network"]);
        let rows = capability_report(&imports, &declared, &grants, true);
        let got: Vec<(&str, CapabilityStatus)> = rows
            .iter()
            .map(|r| (r.capability.as_str(), r.status))
            .collect();
        assert_eq!(
            got,
            [
                ("network", CapabilityStatus::GrantedUnused),
                ("http", CapabilityStatus::Ok),
                ("process", CapabilityStatus::DeclaredNotGranted),
                ("kv", CapabilityStatus::MissingGrant),
                ("teleport", CapabilityStatus::Unknown),
            ]
        );
        // An import is not a use: without strict_imports it loads, its calls refused.
        let lenient = capability_report(&imports, &declared, &grants, false);
        let kv = lenient.iter().find(|r| r.capability == "kv").unwrap();
        assert_eq!(kv.status, CapabilityStatus::ImportedNotGranted);
        assert_eq!(kv.status.phrase(), "imported, not granted: calls refused");
    }

    #[test]
    fn limits_and_async_failures_name_what_to_change() {
        let core = hint("The component transitively contains 38 core module instances, which exceeds the configured maximum of 16 in the pooling allocator".into());
        assert!(
            core.ends_with("(raise runtime.max_core_instances_per_component)"),
            "{core}"
        );
        let tables =
            hint("component has 40 tables, which exceeds the pooling allocator's limit".into());
        assert!(
            tables.contains("runtime.max_tables_per_component"),
            "{tables}"
        );
        let async_ = hint("`task.cancel` requires the component model async feature".into());
        assert!(async_.contains("--backend-qjs-disable-async"), "{async_}");
        assert_eq!(hint("other".into()), "other");
    }

    #[test]
    fn bad_job_types_are_named() {
        let mut info = PluginInfo {
            name: "x".into(),
            version: "1".into(),
            job_types: vec!["has space".into()],
            description: String::new(),
            capabilities: vec![],
            spec_schema: None,
        };
        let err = check_info(&info).unwrap_err().to_string();
        assert!(err.contains("has space"), "{err}");
        info.job_types = vec!["Noop".into()];
        let err = check_info(&info).unwrap_err().to_string();
        assert!(
            err.contains("\"Noop\" must be 1-64 characters of a-z"),
            "{err}"
        );
        info.job_types.clear();
        assert!(check_info(&info).is_err());
        info.job_types = (0..=MAX_JOB_TYPES).map(|i| format!("t{i}")).collect();
        let err = check_info(&info).unwrap_err().to_string();
        assert!(err.contains("65 job types; the limit is 64"), "{err}");
        info.job_types = vec!["ok".into()];
        assert!(check_info(&info).is_ok());
    }

    #[test]
    fn oversized_descriptions_are_rejected_naming_the_limit() {
        let base = PluginInfo {
            name: "x".into(),
            version: "1".into(),
            job_types: vec!["x".into()],
            description: String::new(),
            capabilities: vec![],
            spec_schema: None,
        };
        let mut info = base.clone();
        info.description = "d".repeat(MAX_DESCRIPTION_BYTES + 1);
        let err = check_info(&info).unwrap_err().to_string();
        assert!(
            err.contains("the description is 4097 bytes; the limit is 4096"),
            "{err}"
        );
        let mut info = base.clone();
        info.spec_schema = Some("s".repeat(MAX_SCHEMA_BYTES + 1));
        assert!(check_info(&info).is_err());
        let mut info = base.clone();
        info.name = "n".repeat(MAX_NAME_BYTES + 1);
        assert!(check_info(&info).is_err());
        let mut info = base;
        info.capabilities = vec!["c".into(); MAX_JOB_TYPES + 1];
        assert!(check_info(&info).is_err());
    }
}
