//! `jobhost:plugin/kv`: a small key-value scope for plugin state (grant: `kv`).
//!
//! Each plugin sees only its own keys: the scope is the plugin id, which comes from the
//! host (the file name), never from the guest. On a node (`jobhost serve`) the state lives
//! in Redis (`store/kv.rs`), shared by every node and kept across restarts and plugin
//! updates; without Redis (`jobhost run-local`, `plugins inspect`) it lives in the process's
//! memory and starts empty.
//!
//! Limits: keys of 1 to [`MAX_KEY_BYTES`] bytes; values up to
//! `plugins.<id>.kv_max_value_bytes`; at most `plugins.<id>.kv_max_keys` keys (checked
//! atomically with the write). `describe` may not use the store at all and `validate` may
//! only read it (both must be free of side effects). Every refusal is an `err` for the
//! guest that names the limit and its config key.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use wasmtime::component::Linker;

use super::Capability;
use crate::runtime::bindings::jobhost::plugin::kv;
use crate::runtime::instance::{CallKind, JobState};
use crate::store::{KvSet, Store, StoreError};

/// The `kv` capability.
pub struct Kv;

impl Capability for Kv {
    fn name(&self) -> &'static str {
        "kv"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &["jobhost:plugin/kv@"]
    }
    fn link(&self, _linker: &mut Linker<JobState>) -> wasmtime::Result<()> {
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

impl Default for KvLimits {
    fn default() -> Self {
        KvLimits {
            max_keys: crate::config::KV_DEFAULT_MAX_KEYS,
            max_value_bytes: crate::config::KV_DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

/// Where plugin state lives: process memory until [`KvHost::use_store`] moves it to Redis.
pub struct KvHost {
    backend: RwLock<Backend>,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<MemoryKv>),
    Redis(Arc<Store>),
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
            backend: RwLock::new(Backend::Memory(Arc::default())),
        }
    }

    /// Keeps state in `store` (Redis) from now on.
    pub fn use_store(&self, store: Store) {
        *self.backend.write().unwrap_or_else(|p| p.into_inner()) = Backend::Redis(Arc::new(store));
    }

    /// True once state lives in Redis.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend(), Backend::Redis(_))
    }

    fn backend(&self) -> Backend {
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

impl Backend {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Backend::Memory(m) => Ok(m.with(plugin, |map| map.get(key).cloned())),
            Backend::Redis(store) => store.kv_get(plugin, key).await,
        }
    }

    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        max_keys: u64,
    ) -> Result<KvSet, StoreError> {
        match self {
            Backend::Memory(m) => Ok(m.with(plugin, |map| {
                let keys = map.len() as u64;
                if !map.contains_key(key) && keys >= max_keys {
                    return KvSet::Full(keys);
                }
                map.insert(key.to_owned(), value.to_vec());
                KvSet::Stored
            })),
            Backend::Redis(store) => store.kv_set(plugin, key, value, max_keys).await,
        }
    }

    async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError> {
        match self {
            Backend::Memory(m) => Ok(m.with(plugin, |map| map.remove(key).is_some())),
            Backend::Redis(store) => store.kv_delete(plugin, key).await,
        }
    }

    async fn keys(&self, plugin: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Backend::Memory(m) => Ok(m.with(plugin, |map| {
                map.keys()
                    .filter(|k| k.starts_with(prefix))
                    .cloned()
                    .collect()
            })),
            Backend::Redis(store) => store.kv_keys(plugin, prefix).await,
        }
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
fn store_failed(plugin: &str, operation: &str, error: &StoreError) -> String {
    tracing::warn!(plugin, operation, "kv: {error}");
    if error.is_unavailable() {
        format!("kv.{operation}: the state store is unreachable; try again later")
    } else {
        format!("kv.{operation}: the state store failed: {error}")
    }
}

impl JobState {
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

impl kv::Host for JobState {
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
            KvSet::Stored => Ok(()),
            KvSet::Full(keys) => Err(format!(
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
        assert_eq!(b.set("a", "k", b"1", 2).await.unwrap(), KvSet::Stored);
        assert_eq!(b.set("a", "j", b"2", 2).await.unwrap(), KvSet::Stored);
        assert_eq!(b.set("a", "x", b"3", 2).await.unwrap(), KvSet::Full(2));
        assert_eq!(b.set("a", "k", b"4", 2).await.unwrap(), KvSet::Stored);
        assert_eq!(b.get("a", "k").await.unwrap().as_deref(), Some(&b"4"[..]));
        assert_eq!(b.get("b", "k").await.unwrap(), None);
        assert_eq!(b.keys("a", "").await.unwrap(), ["j", "k"]);
        assert!(b.delete("a", "k").await.unwrap());
        assert!(!b.delete("a", "k").await.unwrap());
        assert!(!host.is_shared());
    }
}
