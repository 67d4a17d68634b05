//! The set of plugins a node serves, by id and by job type.
//!
//! Entries are swapped atomically: a job that already took an `Arc<Plugin>` finishes on that
//! version while the next job gets the new one. A rejected update keeps the previous version
//! serving and records why the new file was refused.
//!
//! Who serves a job type does not depend on the order files are read in, so a file cannot
//! take a type from another by its name: after every change the whole set is resolved again
//! ([`Registry::resolve`]). A type `job_types.<type>.plugin` pins is served by that plugin
//! only; an unpinned type claimed by two plugins is served by neither until the operator pins
//! it (both are reported); a plugin serves only if it may serve every type it claims. When a
//! claimant leaves, the others are reconsidered at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    /// The newest version of this id that loaded (compiled, linked, described).
    candidate: Option<Arc<Plugin>>,
    /// The version that serves its job types now (the candidate, as of the last resolve).
    served: Option<Arc<Plugin>>,
    /// Why the candidate does not serve (a job type it may not have), if it does not.
    conflict: Option<LoadError>,
    /// The latest file of this id that did not load, if it did not.
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
    /// `job_types.<type>.plugin` of the config: type → the only plugin id that may serve it.
    pins: HashMap<String, String>,
}

/// A change [`Registry::resolve`] made.
pub enum Change {
    /// The plugin serves now.
    Serving {
        /// The version that serves.
        plugin: Arc<Plugin>,
        /// Whether it took over from another version of the same id.
        replaced: bool,
    },
    /// The plugin no longer serves, or cannot start to: why.
    Blocked {
        /// The plugin id.
        id: String,
        /// Why.
        reason: String,
    },
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
    /// A registry whose job types `pins` (type → plugin id) may be served only by the named
    /// plugins.
    pub fn with_pins(pins: HashMap<String, String>) -> Registry {
        Registry {
            entries: RwLock::default(),
            pins,
        }
    }

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
        entries.by_id.get(id)?.served.clone()
    }

    /// The serving plugin with id `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Plugin>> {
        self.read().by_id.get(id)?.served.clone()
    }

    /// SHA-256 of the last file seen for `id`, loaded or rejected.
    pub fn last_digest(&self, id: &str) -> Option<String> {
        let entries = self.read();
        let entry = entries.by_id.get(id)?;
        match (&entry.rejected, &entry.candidate) {
            (Some(r), _) => r.rejection.digest.clone(),
            (None, Some(p)) => Some(p.digest.clone()),
            (None, None) => None,
        }
    }

    /// Digests of every plugin that loaded, serving or waiting for a job type: what the
    /// compiled-component cache keeps.
    /// Digests whose compiled form is worth keeping: every build that loaded, and files
    /// rejected for a reason that is not their code (a missing grant under
    /// `runtime.strict_imports`), which load unchanged once the config changes.
    pub fn cached_digests(&self) -> std::collections::HashSet<String> {
        let mut digests = self.loaded_digests();
        for entry in self.read().by_id.values() {
            if let Some(rejected) = &entry.rejected
                && rejected.rejection.error.is_config_caused()
                && let Some(digest) = &rejected.rejection.digest
            {
                digests.insert(digest.clone());
            }
        }
        digests
    }

    /// Digests of every build that loaded.
    pub fn loaded_digests(&self) -> std::collections::HashSet<String> {
        self.read()
            .by_id
            .values()
            .filter_map(|e| e.candidate.as_ref().map(|p| p.digest.clone()))
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

    /// Offers `plugin`, a version of its id that loaded, to serve; [`Registry::resolve`]
    /// decides whether it does.
    pub fn offer(&self, plugin: Plugin) {
        let mut entries = self.write();
        let entry = entries.by_id.entry(plugin.id.clone()).or_default();
        entry.candidate = Some(Arc::new(plugin));
        entry.rejected = None;
    }

    /// Records that the latest file of `rejected.id` was refused (a version that loaded
    /// before keeps its place).
    pub fn reject(&self, rejected: RejectedFile) {
        let mut entries = self.write();
        let entry = entries.by_id.entry(rejected.id.clone()).or_default();
        entry.rejected = Some(Arc::new(rejected));
    }

    /// Forgets `id` entirely (its file is gone). Running jobs keep their `Arc`.
    pub fn remove(&self, id: &str) -> Option<Arc<Plugin>> {
        let mut entries = self.write();
        let entry = entries.by_id.remove(id)?;
        entries.by_type.retain(|_, owner| owner != id);
        entry.served
    }

    /// Decides again who serves each job type, from every plugin that loaded and the pins
    /// (the rule is in the module docs), and returns what changed.
    pub fn resolve(&self) -> Vec<Change> {
        let mut entries = self.write();
        let mut claimants: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for (id, entry) in &entries.by_id {
            for job_type in entry.candidate.iter().flat_map(|p| &p.info.job_types) {
                claimants.entry(job_type).or_default().insert(id);
            }
        }
        let verdicts: Vec<(String, Option<LoadError>)> = entries
            .by_id
            .iter()
            .filter_map(|(id, entry)| {
                let plugin = entry.candidate.as_ref()?;
                let conflict = plugin.info.job_types.iter().find_map(|job_type| {
                    self.conflict(id, job_type, &claimants[job_type.as_str()])
                });
                Some((id.clone(), conflict))
            })
            .collect();
        let mut changes = Vec::new();
        let mut by_type = HashMap::new();
        for (id, conflict) in verdicts {
            let entry = entries.by_id.get_mut(&id).expect("listed above");
            let plugin = entry.candidate.clone().expect("listed above");
            match conflict {
                None => {
                    for job_type in &plugin.info.job_types {
                        by_type.insert(job_type.clone(), id.clone());
                    }
                    let already = entry
                        .served
                        .as_ref()
                        .is_some_and(|s| Arc::ptr_eq(s, &plugin));
                    if !already {
                        changes.push(Change::Serving {
                            plugin: plugin.clone(),
                            replaced: entry.served.is_some(),
                        });
                        // The build it replaces serves no more attempts.
                        if let Some(old) = &entry.served {
                            old.kept.clear();
                        }
                    }
                    entry.served = Some(plugin);
                    entry.conflict = None;
                }
                Some(conflict) => {
                    let reason = conflict.to_string();
                    let known = entry.conflict.as_ref().map(ToString::to_string);
                    if entry.served.is_some() || known.as_deref() != Some(reason.as_str()) {
                        changes.push(Change::Blocked { id, reason });
                    }
                    // A blocked build serves no attempts, so it keeps no instances.
                    if let Some(old) = entry.served.take() {
                        old.kept.clear();
                    }
                    plugin.kept.clear();
                    entry.conflict = Some(conflict);
                }
            }
        }
        entries.by_type = by_type;
        changes
    }

    /// Why plugin `id` may not serve `job_type`, which `claimants` claim, if it may not.
    fn conflict(&self, id: &str, job_type: &str, claimants: &BTreeSet<&str>) -> Option<LoadError> {
        match self.pins.get(job_type) {
            Some(owner) if owner == id => None,
            Some(owner) => Some(LoadError::JobTypePinned {
                job_type: job_type.to_owned(),
                owner: owner.clone(),
            }),
            None if claimants.len() > 1 => Some(LoadError::JobTypeContested {
                job_type: job_type.to_owned(),
                others: claimants
                    .iter()
                    .filter(|other| **other != id)
                    .map(|other| other.to_string())
                    .collect(),
            }),
            None => None,
        }
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
    let file_rejection = entry
        .rejected
        .as_ref()
        .map(|r| r.rejection.error.to_string());
    if let Some(plugin) = &entry.served {
        return PluginStatus {
            id: id.to_owned(),
            file: plugin.file.clone(),
            status: "loaded",
            info: Some(plugin.info.clone()),
            digest: Some(plugin.digest.clone()),
            rejection: file_rejection,
            imports: plugin.imports.clone(),
        };
    }
    match (&entry.rejected, &entry.candidate) {
        (Some(rejected), _) => PluginStatus {
            id: id.to_owned(),
            file: rejected.file.clone(),
            status: "rejected",
            info: None,
            digest: rejected.rejection.digest.clone(),
            rejection: file_rejection,
            imports: rejected.rejection.imports.clone(),
        },
        // Loaded, but a job type it claims is another's (or contested).
        (None, Some(plugin)) => PluginStatus {
            id: id.to_owned(),
            file: plugin.file.clone(),
            status: "rejected",
            info: None,
            digest: Some(plugin.digest.clone()),
            rejection: entry.conflict.as_ref().map(ToString::to_string),
            imports: plugin.imports.clone(),
        },
        (None, None) => unreachable!("an entry always holds a plugin or a rejection"),
    }
}
