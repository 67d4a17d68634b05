//! Plugin state (the runtime's `kv` capability) kept in the node's store, so every node of
//! a deployment sees the same state and it outlives restarts and plugin updates. The
//! runtime knows only its [`KvBackend`] trait; the store only its `kv_*` queries; this
//! adapter is the one place that joins them.

use futures::future::BoxFuture;
use jobhost_runtime::{KvBackend, KvError, KvResult, KvWrite};
use jobhost_store::{KvSet, Store, StoreError};

/// The store as the runtime's plugin-state backend.
pub struct StoreKv(pub Store);

fn kv_error(error: StoreError) -> KvError {
    KvError {
        unavailable: error.is_unavailable(),
        message: error.to_string(),
    }
}

impl KvBackend for StoreKv {
    fn get<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, KvResult<Option<Vec<u8>>>> {
        Box::pin(async move { self.0.kv_get(plugin, key).await.map_err(kv_error) })
    }

    fn set<'a>(
        &'a self,
        plugin: &'a str,
        key: &'a str,
        value: &'a [u8],
        max_keys: u64,
    ) -> BoxFuture<'a, KvResult<KvWrite>> {
        Box::pin(async move {
            let stored = self.0.kv_set(plugin, key, value, max_keys).await;
            Ok(match stored.map_err(kv_error)? {
                KvSet::Stored => KvWrite::Stored,
                KvSet::Full(keys) => KvWrite::Full(keys),
            })
        })
    }

    fn delete<'a>(&'a self, plugin: &'a str, key: &'a str) -> BoxFuture<'a, KvResult<bool>> {
        Box::pin(async move { self.0.kv_delete(plugin, key).await.map_err(kv_error) })
    }

    fn keys<'a>(
        &'a self,
        plugin: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, KvResult<Vec<String>>> {
        Box::pin(async move { self.0.kv_keys(plugin, prefix).await.map_err(kv_error) })
    }
}
