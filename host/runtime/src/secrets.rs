//! Plugin secrets, by name. A plugin reads a secret only if its config maps the name to a
//! source (`plugins.<id>.secrets`, `env:` or `file:`), or if the embedding node registered a
//! [`SecretProvider`] for that plugin (a node's Job Distributor gives its delivery plugin the
//! Chainlink nodes' logins from the nodes file this way). Values are read when asked, never
//! kept by the runtime.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Secrets of one plugin beyond those of its config, looked up by name when it asks.
pub trait SecretProvider: Send + Sync {
    /// The value of secret `name`, if this provider has one.
    fn secret(&self, name: &str) -> Option<String>;
}

/// The providers registered per plugin id.
#[derive(Default)]
pub struct SecretProviders {
    by_plugin: RwLock<HashMap<String, Arc<dyn SecretProvider>>>,
}

impl SecretProviders {
    /// Registers `provider` for plugin `id` (replacing an earlier one).
    pub fn set(&self, id: &str, provider: Arc<dyn SecretProvider>) {
        let mut map = self.by_plugin.write().unwrap_or_else(|p| p.into_inner());
        map.insert(id.to_owned(), provider);
    }

    /// The provider of plugin `id`, if any.
    pub fn get(&self, id: &str) -> Option<Arc<dyn SecretProvider>> {
        let map = self.by_plugin.read().unwrap_or_else(|p| p.into_inner());
        map.get(id).cloned()
    }
}
