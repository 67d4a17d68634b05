//! The set of plugins a node serves, by id and by job type.
//!
//! Entries are swapped atomically: a job that already took an `Arc<Plugin>` finishes on that
//! version while the next job gets the new one. A rejected update keeps the previous version
//! serving and records why the new file was refused.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::plugin::{ImportCheck, LoadError, Plugin, PluginInfo, Rejection};

/// A file that could not be loaded.
#[derive(Debug, Clone)]
pub struct RejectedFile {
    /// Plugin id (file stem).
    pub id: String,
    /// The file.
    pub file: PathBuf,
    /// Why, and what was learned first.
    pub rejection: Rejection,
}

#[derive(Default, Clone)]
struct Entry {
    loaded: Option<Arc<Plugin>>,
    rejected: Option<Arc<RejectedFile>>,
}

#[derive(Default)]
struct Entries {
    by_id: BTreeMap<String, Entry>,
    by_type: HashMap<String, String>,
}

/// The plugin registry.
#[derive(Default)]
pub struct Registry {
    entries: RwLock<Entries>,
}

/// A row of `plugins list`: what one plugin id currently is.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    /// Plugin id (file stem; config section `plugins.<id>`).
    pub id: String,
    /// File it came from.
    pub file: PathBuf,
    /// `loaded`, or `rejected` if no version of it is serving.
    pub status: &'static str,
    /// Description of the serving version.
    pub info: Option<PluginInfo>,
    /// SHA-256 of the serving version (or of the rejected file).
    pub digest: Option<String>,
    /// Why the latest file was refused, if it was (the previous version may still serve).
    pub rejection: Option<String>,
    /// Imports and grants.
    pub imports: Vec<ImportCheck>,
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The plugin serving `job_type`, if any.
    pub fn serving(&self, job_type: &str) -> Option<Arc<Plugin>> {
        let entries = self.read();
        let id = entries.by_type.get(job_type)?;
        entries.by_id.get(id)?.loaded.clone()
    }

    /// The loaded plugin with id `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Plugin>> {
        self.read().by_id.get(id)?.loaded.clone()
    }

    /// SHA-256 of the last file seen for `id`, loaded or rejected.
    pub fn last_digest(&self, id: &str) -> Option<String> {
        let entries = self.read();
        let entry = entries.by_id.get(id)?;
        match (&entry.rejected, &entry.loaded) {
            (Some(r), _) => r.rejection.digest.clone(),
            (None, Some(p)) => Some(p.digest.clone()),
            (None, None) => None,
        }
    }

    /// Digests of every loaded plugin.
    pub fn loaded_digests(&self) -> std::collections::HashSet<String> {
        self.read()
            .by_id
            .values()
            .filter_map(|e| e.loaded.as_ref().map(|p| p.digest.clone()))
            .collect()
    }

    /// The job types served now, sorted.
    pub fn job_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self.read().by_type.keys().cloned().collect();
        types.sort();
        types
    }

    /// Every known plugin id.
    pub fn ids(&self) -> Vec<String> {
        self.read().by_id.keys().cloned().collect()
    }

    /// Serves `plugin`, replacing any previous version of the same id. Fails if another
    /// plugin already serves one of its job types.
    pub fn insert(&self, plugin: Plugin) -> Result<Option<Arc<Plugin>>, LoadError> {
        let mut entries = self.write();
        for job_type in &plugin.info.job_types {
            if let Some(other) = entries.by_type.get(job_type)
                && *other != plugin.id
            {
                return Err(LoadError::JobTypeTaken {
                    job_type: job_type.clone(),
                    other: other.clone(),
                });
            }
        }
        let plugin = Arc::new(plugin);
        let entry = entries.by_id.entry(plugin.id.clone()).or_default();
        let previous = entry.loaded.replace(plugin.clone());
        entry.rejected = None;
        if let Some(old) = &previous {
            for job_type in &old.info.job_types {
                entries.by_type.remove(job_type);
            }
        }
        for job_type in &plugin.info.job_types {
            entries.by_type.insert(job_type.clone(), plugin.id.clone());
        }
        Ok(previous)
    }

    /// Records that the latest file of `rejected.id` was refused.
    pub fn reject(&self, rejected: RejectedFile) {
        let mut entries = self.write();
        let entry = entries.by_id.entry(rejected.id.clone()).or_default();
        entry.rejected = Some(Arc::new(rejected));
    }

    /// Forgets `id` entirely (its file is gone). Running jobs keep their `Arc`.
    pub fn remove(&self, id: &str) -> Option<Arc<Plugin>> {
        let mut entries = self.write();
        let entry = entries.by_id.remove(id)?;
        if let Some(plugin) = &entry.loaded {
            for job_type in &plugin.info.job_types {
                entries.by_type.remove(job_type);
            }
        }
        entry.loaded
    }

    /// Status of every plugin, by id.
    pub fn statuses(&self) -> Vec<PluginStatus> {
        self.read()
            .by_id
            .iter()
            .map(|(id, entry)| status(id, entry))
            .collect()
    }
}

fn status(id: &str, entry: &Entry) -> PluginStatus {
    let rejection = entry
        .rejected
        .as_ref()
        .map(|r| r.rejection.error.to_string());
    match (&entry.loaded, &entry.rejected) {
        (Some(plugin), _) => PluginStatus {
            id: id.to_owned(),
            file: plugin.file.clone(),
            status: "loaded",
            info: Some(plugin.info.clone()),
            digest: Some(plugin.digest.clone()),
            rejection,
            imports: plugin.imports.clone(),
        },
        (None, Some(rejected)) => PluginStatus {
            id: id.to_owned(),
            file: rejected.file.clone(),
            status: "rejected",
            info: None,
            digest: rejected.rejection.digest.clone(),
            rejection,
            imports: rejected.rejection.imports.clone(),
        },
        (None, None) => unreachable!("an entry always holds a plugin or a rejection"),
    }
}
