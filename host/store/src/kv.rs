//! Plugin state for the `kv` capability: one hash per plugin id, so a plugin can only ever
//! address its own keys, and every node of a deployment sees the same state.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `kv:<plugin id>` | hash | the plugin's keys → values (bytes) |
//!
//! Sizes are checked by the capability (`runtime::capabilities::kv`); the key limit is
//! checked here, atomically with the write, so concurrent attempts cannot overshoot it.

use std::sync::LazyLock;

use redis::{AsyncCommands, Script};

use super::{Result, Store};

static SET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/kv_set.lua")));

/// What [`Store::kv_set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvSet {
    /// The value was stored.
    Stored,
    /// The key is new and the plugin already has this many keys, its limit: nothing stored.
    Full(u64),
}

impl Store {
    /// The hash holding plugin `plugin`'s state.
    pub fn kv_key(&self, plugin: &str) -> String {
        format!("{}kv:{plugin}", self.keys.prefix())
    }

    /// The value of `key` in `plugin`'s state.
    pub async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let mut conn = self.conn();
        Ok(conn.hget(self.kv_key(plugin), key).await?)
    }

    /// Sets `key` to `value` in `plugin`'s state, unless the key is new and the plugin
    /// already has `max_keys` keys.
    pub async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        max_keys: u64,
    ) -> Result<KvSet> {
        let mut invocation = SET.prepare_invoke();
        invocation
            .key(self.kv_key(plugin))
            .arg(key)
            .arg(value)
            .arg(max_keys);
        let mut conn = self.conn();
        let answer: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(match u64::try_from(answer) {
            Ok(keys) => KvSet::Full(keys),
            Err(_) => KvSet::Stored,
        })
    }

    /// Removes `key` from `plugin`'s state; true if it was there.
    pub async fn kv_delete(&self, plugin: &str, key: &str) -> Result<bool> {
        let mut conn = self.conn();
        let removed: u64 = conn.hdel(self.kv_key(plugin), key).await?;
        Ok(removed > 0)
    }

    /// Every key of `plugin`'s state with the size of its value in bytes, sorted by key
    /// (for operators: `jobhost plugins state`).
    pub async fn kv_sizes(&self, plugin: &str) -> Result<Vec<(String, u64)>> {
        let keys = self.kv_keys(plugin, "").await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let hash = self.kv_key(plugin);
        let mut sizes = redis::pipe();
        for key in &keys {
            sizes.cmd("HSTRLEN").arg(&hash).arg(key);
        }
        let mut conn = self.conn();
        let sizes: Vec<u64> = sizes.query_async(&mut conn).await?;
        Ok(keys.into_iter().zip(sizes).collect())
    }

    /// Removes all of `plugin`'s state; answers how many keys it had.
    pub async fn kv_clear(&self, plugin: &str) -> Result<u64> {
        let hash = self.kv_key(plugin);
        let mut conn = self.conn();
        let (count, _): (u64, u64) = redis::pipe()
            .atomic()
            .hlen(&hash)
            .del(&hash)
            .query_async(&mut conn)
            .await?;
        Ok(count)
    }

    /// `plugin`'s keys starting with `prefix`, sorted.
    pub async fn kv_keys(&self, plugin: &str, prefix: &str) -> Result<Vec<String>> {
        let mut conn = self.conn();
        // The key limit bounds the hash, so reading every field is cheap.
        let mut keys: Vec<String> = conn.hkeys(self.kv_key(plugin)).await?;
        keys.retain(|k| k.starts_with(prefix));
        keys.sort();
        Ok(keys)
    }
}
