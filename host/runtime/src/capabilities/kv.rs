//! `jobhost:plugin/kv`: a small key-value scope for plugin state (grant: `kv`).
//!
//! Each plugin sees only its own keys: the scope is the plugin id, which comes from the
//! host (the file name), never from the guest. Where the state lives is a [`KvBackend`]: on a
//! node (`jobhost serve`) the node's Redis store, shared by every node and kept across
//! restarts and plugin updates; without one (`jobhost run-local`, `plugins inspect`) the
//! process's memory, starting empty.
//!
//! Limits: keys of 1 to [`MAX_KEY_BYTES`] bytes; values up to
//! `plugins.<id>.kv_max_value_bytes`; at most `plugins.<id>.kv_max_keys` keys (checked
//! atomically with the write). `describe` may not use the store at all and `validate` may
//! only read it (both must be free of side effects). Every refusal is an `err` for the
//! guest that names the limit and its config key.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use futures::future::BoxFuture;
use jobhost_config::PluginConfig;
use wasmtime::component::Linker;

use super::CallState;
use super::Capability;
use crate::bindings::jobhost::plugin::kv;
use crate::context::CallKind;

/// The `kv` capability.
pub struct Kv;

impl Capability for Kv {
    fn name(&self) -> &'static str {
        "kv"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["jobhost:plugin/kv@"]
    }
    fn check(&self, id: &str, plugin: &PluginConfig) -> Result<(), String> {
        KvLimits::of(plugin).check(id)
    }
    fn link(&self, _linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        // Linked with the rest of the jobhost:plugin world (see `host.rs`); a plugin only
        // imports it, and so only needs the grant, if it calls one of its functions.
        Ok(())
    }
}

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// The limits of one plugin's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Most keys (`plugins.<id>.kv_max_keys`).
    pub max_keys: u64,
    /// Largest value in bytes (`plugins.<id>.kv_max_value_bytes`).
    pub max_value_bytes: u64,
}

/// Keys a plugin may keep unless `plugins.<id>.kv_max_keys` says.
pub const DEFAULT_MAX_KEYS: u64 = 1000;
/// Largest value unless `plugins.<id>.kv_max_value_bytes` says (64 KiB).
pub const DEFAULT_MAX_VALUE_BYTES: u64 = 64 * 1024;
/// Upper bound of `plugins.<id>.kv_max_keys`.
pub const MAX_KEYS_LIMIT: u64 = 1_000_000;
/// Upper bound of `plugins.<id>.kv_max_value_bytes` (16 MiB): a value passes through the
/// plugin's memory and one Redis command.
pub const MAX_VALUE_BYTES_LIMIT: u64 = 16 * 1024 * 1024;

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_keys: DEFAULT_MAX_KEYS,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

impl KvLimits {
    /// The limits `plugin`'s config sets, defaults where it is silent.
    pub fn of(plugin: &PluginConfig) -> KvLimits {
        KvLimits {
            max_keys: plugin.kv_max_keys.unwrap_or(DEFAULT_MAX_KEYS),
            max_value_bytes: plugin.kv_max_value_bytes.unwrap_or(DEFAULT_MAX_VALUE_BYTES),
        }
    }

    /// Checks both limits are in range; the message names the knob of plugin `id`.
    fn check(&self, id: &str) -> Result<(), String> {
        if !(1..=MAX_KEYS_LIMIT).contains(&self.max_keys) {
            return Err(format!(
                "plugins.{id}.kv_max_keys must be between 1 and {MAX_KEYS_LIMIT}, got {}",
                self.max_keys
            ));
        }
        if !(1..=MAX_VALUE_BYTES_LIMIT).contains(&self.max_value_bytes) {
            return Err(format!(
                "plugins.{id}.kv_max_value_bytes must be between 1 and {MAX_VALUE_BYTES_LIMIT}, got {}",
                self.max_value_bytes
            ));
        }
        Ok(())
    }
}

/// A failure of the place plugin state is kept.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct KvError {
    /// What went wrong (for the node log; the guest gets a summary).
    pub message: String,
    /// True when the state store is unreachable (worth trying again later).
    pub unavailable: bool,
}

/// What a [`KvBackend::set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvWrite {
    /// The value was stored.
    Stored,
    /// The key is new and the plugin already has this many keys, its limit: nothing stored.
    Full(u64),
}

/// Where plugin state is kept, scoped by plugin id. A node keeps it in its Redis store
/// (shared by every node, kept across restarts); one-shot commands in memory.
pub trait KvBackend: Send + Sync + 'static {
    /// The value of `key` in `plugin`'s state.
    fn get<'a>(&'a self, plugin: &'a str, key: &'a str)
    -> BoxFuture<'a, KvResult<Option<Vec<u8>>>>;
    /// Stores `value` under `key`, unless the key is new and `plugin` already has
    /// `max_keys` keys (checked atomically with the write).
    fn set<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        value: &'a [u8],
        max_keys: u64,
    ) -> BoxFuture<'a, KvResult<KvWrite>>;
    /// Removes `key`; true if it was there.
    fn delete<'a>(&'a self, plugin: &'a str, key: &'a str) -> BoxFuture<'a, KvResult<bool>>;
    /// The keys of `plugin`'s state that start with `prefix`.
    fn keys<'a>(&'a self, plugin: &'a str, prefix: &'a str)
    -> BoxFuture<'a, KvResult<Vec<String>>>;
}

/// The result of a [`KvBackend`] operation.
pub type KvResult<T> = Result<T, KvError>;

/// Where plugin state lives: process memory until [`KvHost::use_backend`] moves it.
pub struct KvHost {
    backend: RwLock<Arc<dyn KvBackend>>,
}

impl Default for KvHost {
    fn default() -> Self {
        KvHost::in_memory()
    }
}

impl KvHost {
    /// State in this process's memory (for `run-local` and one-shot commands).
    pub fn in_memory() -> Self {
        KvHost {
            backend: RwLock::new(Arc::new(MemoryKv::default())),
        }
    }

    /// Keeps state in `backend` from now on.
    pub fn use_backend(&self, backend: Arc<dyn KvBackend>) {
        *self.backend.write().unwrap_or_else(|p| p.into_inner()) = backend;
    }

    fn backend(&self) -> Arc<dyn KvBackend> {
        self.backend
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Plugin state in memory: plugin id → key → value.
#[derive(Default)]
struct MemoryKv {
    plugins: Mutex<HashMap<String, BTreeMap<String, Vec<u8>>>>,
}

impl MemoryKv {
    fn with<T>(&self, plugin: &str, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> T) -> T {
        let mut plugins = self.plugins.lock().unwrap_or_else(|p| p.into_inner());
        f(plugins.entry(plugin.to_owned()).or_default())
    }
}

impl KvBackend for MemoryKv {
    fn get<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, KvResult<Option<Vec<u8>>>> {
        let value = self.with(plugin, |map| map.get(key).cloned());
        Box::pin(std::future::ready(Ok(value)))
    }

    fn set<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        value: &'a [u8],
        max_keys: u64,
    ) -> BoxFuture<'a, KvResult<KvWrite>> {
        let written = self.with(plugin, |map| {
            let keys = map.len() as u64;
            if !map.contains_key(key) && keys >= max_keys {
                return KvWrite::Full(keys);
            }
            map.insert(key.to_owned(), value.to_vec());
            KvWrite::Stored
        });
        Box::pin(std::future::ready(Ok(written)))
    }

    fn delete<'a>(&'a self, plugin: &'a str, key: &'a str) -> BoxFuture<'a, KvResult<bool>> {
        let removed = self.with(plugin, |map| map.remove(key).is_some());
        Box::pin(std::future::ready(Ok(removed)))
    }

    fn keys<'a>(
        &'a self,
        plugin: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, KvResult<Vec<String>>> {
        let keys = self.with(plugin, |map| {
            map.keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect()
        });
        Box::pin(std::future::ready(Ok(keys)))
    }
}

/// Why `key` is not acceptable, if it is not.
fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("kv: the key is empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "kv: key of {} bytes is over the limit of {MAX_KEY_BYTES} bytes",
            key.len()
        ));
    }
    Ok(())
}

/// The guest's message for a store failure (the node log gets the details).
fn store_failed(plugin: &str, operation: &str, error: &KvError) -> String {
    tracing::warn!(plugin, operation, "kv: {error}");
    if error.unavailable {
        format!("kv.{operation}: the state store is unreachable; try again later")
    } else {
        format!("kv.{operation}: the state store failed: {error}")
    }
}

impl CallState {
    /// Checks that this call may do `operation` (`writes`: changes state) on the plugin's
    /// state: the `kv` grant now, and the call kind (describe: nothing; validate: reads).
    fn kv_access(&self, operation: &str, writes: bool) -> Result<(), String> {
        self.grants().require("kv")?;
        let refusal = match self.call_kind() {
            CallKind::Run => return Ok(()),
            CallKind::Validate if !writes => return Ok(()),
            CallKind::Validate => format!(
                "kv.{operation} is not allowed in validate(): validate must have no side \
                 effects (kv.get and kv.list-keys are)"
            ),
            CallKind::Describe => {
                format!(
                    "kv.{operation} is not allowed in describe(): it runs at load, not for a job"
                )
            }
        };
        self.grants().deny("kv", &refusal);
        Err(refusal)
    }
}

impl kv::Host for CallState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        self.kv_access("get", false)?;
        check_key(&key)?;
        let (plugin, _) = self.kv_scope();
        self.kv_host()
            .backend()
            .get(&plugin, &key)
            .await
            .map_err(|e| store_failed(&plugin, "get", &e))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        self.kv_access("set", true)?;
        check_key(&key)?;
        let (plugin, limits) = self.kv_scope();
        if value.len() as u64 > limits.max_value_bytes {
            return Err(format!(
                "kv: value of {} bytes is over the limit of {} bytes \
                 (plugins.{plugin}.kv_max_value_bytes)",
                value.len(),
                limits.max_value_bytes
            ));
        }
        let result = self
            .kv_host()
            .backend()
            .set(&plugin, &key, &value, limits.max_keys)
            .await
            .map_err(|e| store_failed(&plugin, "set", &e))?;
        match result {
            KvWrite::Stored => Ok(()),
            KvWrite::Full(keys) => Err(format!(
                "kv: plugin {plugin:?} already has {keys} keys, the most \
                 plugins.{plugin}.kv_max_keys allows ({}): delete some first",
                limits.max_keys
            )),
        }
    }

    async fn delete(&mut self, key: String) -> Result<bool, String> {
        self.kv_access("delete", true)?;
        check_key(&key)?;
        let (plugin, _) = self.kv_scope();
        self.kv_host()
            .backend()
            .delete(&plugin, &key)
            .await
            .map_err(|e| store_failed(&plugin, "delete", &e))
    }

    async fn list_keys(&mut self, prefix: String) -> Result<Vec<String>, String> {
        self.kv_access("list-keys", false)?;
        let (plugin, _) = self.kv_scope();
        self.kv_host()
            .backend()
            .keys(&plugin, &prefix)
            .await
            .map_err(|e| store_failed(&plugin, "list-keys", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(check_key("a").is_ok());
        assert_eq!(check_key("").unwrap_err(), "kv: the key is empty");
        assert!(check_key(&"k".repeat(MAX_KEY_BYTES)).is_ok());
        let long = check_key(&"k".repeat(MAX_KEY_BYTES + 1)).unwrap_err();
        assert_eq!(long, "kv: key of 257 bytes is over the limit of 256 bytes");
    }

    #[tokio::test]
    async fn memory_state_is_scoped_and_bounded() {
        let host = KvHost::in_memory();
        let b = host.backend();
        assert_eq!(b.set("a", "k", b"1", 2).await.unwrap(), KvWrite::Stored);
        assert_eq!(b.set("a", "j", b"2", 2).await.unwrap(), KvWrite::Stored);
        assert_eq!(b.set("a", "x", b"3", 2).await.unwrap(), KvWrite::Full(2));
        assert_eq!(b.set("a", "k", b"4", 2).await.unwrap(), KvWrite::Stored);
        assert_eq!(b.get("a", "k").await.unwrap().as_deref(), Some(&b"4"[..]));
        assert_eq!(b.get("b", "k").await.unwrap(), None);
        assert_eq!(b.keys("a", "").await.unwrap(), ["j", "k"]);
        assert!(b.delete("a", "k").await.unwrap());
        assert!(!b.delete("a", "k").await.unwrap());
    }
}
