//! On-disk cache of compiled components, so a restart does not recompile.
//!
//! Entries are named `<sha256 of the .wasm>-<engine key>.cwasm`. The engine key hashes
//! everything that makes compiled code incompatible (wasmtime version, target, compiler
//! settings), so a host upgrade or a config change misses the cache instead of loading
//! code built for another engine. Writes go to a temporary file and are renamed into place.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::Component;

/// Counters of what the cache did since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Components compiled from `.wasm` (cache misses, or no cache).
    pub compiled: u64,
    /// Components loaded from the cache without compiling.
    pub hits: u64,
}

/// The compiled-component cache (or none, when `cache_dir` is unset).
pub struct ComponentCache {
    dir: Option<PathBuf>,
    engine_key: String,
    compiled: AtomicU64,
    hits: AtomicU64,
}

impl ComponentCache {
    /// A cache in `dir` for components compiled by `engine`.
    pub fn new(engine: &Engine, dir: Option<&Path>) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir: dir.map(Path::to_owned),
            engine_key: format!("{:016x}", hasher.finish()),
            compiled: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    /// The compiled form of `wasm` (whose SHA-256 is `digest`): from the cache, or compiled
    /// and stored. Blocking: call from a blocking thread.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &str,
    ) -> wasmtime::Result<Component> {
        let Some(entry) = self.entry(digest) else {
            return self.compile(engine, wasm);
        };
        if entry.exists() {
            // SAFETY: the cache folder is operator-owned, like the plugins folder, and only
            // ever written by `store` below from the output of `Component::serialize` on an
            // engine with the same compatibility key. wasmtime still checks the header and
            // refuses an incompatible or corrupt file, which we then recompile.
            match unsafe { Component::deserialize_file(engine, &entry) } {
                Ok(component) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(component);
                }
                Err(e) => tracing::warn!(
                    file = %entry.display(),
                    "ignoring unusable cache entry: {e:#}"
                ),
            }
        }
        let component = self.compile(engine, wasm)?;
        if let Err(e) = store(&entry, &component) {
            tracing::warn!(file = %entry.display(), "cannot write component cache: {e:#}");
        }
        Ok(component)
    }

    /// What the cache did since start.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            compiled: self.compiled.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
        }
    }

    /// Deletes entries this node no longer needs: those of this engine whose component is
    /// not in `in_use` (SHA-256 digests), and those of other engines (another jobhost
    /// version) untouched for [`FOREIGN_ENTRY_TTL`]. Returns how many were deleted.
    pub fn prune(&self, in_use: &HashSet<String>) -> usize {
        let Some(dir) = &self.dir else { return 0 };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Some((digest, key)) = parse_entry_name(&path) else {
                continue;
            };
            let stale = if key == self.engine_key {
                !in_use.contains(digest)
            } else {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > FOREIGN_ENTRY_TTL)
            };
            if stale && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    fn compile(&self, engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
        let component = Component::new(engine, wasm)?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        Ok(component)
    }

    fn entry(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{digest}-{}.cwasm", self.engine_key)))
    }
}

/// How long an entry compiled by another engine is kept after its last write.
pub const FOREIGN_ENTRY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// `(digest, engine key)` of a cache file name `<digest>-<key>.cwasm`.
fn parse_entry_name(path: &Path) -> Option<(&str, &str)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".cwasm")?;
    name.split_once('-')
}

fn store(entry: &Path, component: &Component) -> wasmtime::Result<()> {
    let bytes = component.serialize()?;
    let dir = entry.parent().expect("cache entries live in the cache dir");
    std::fs::create_dir_all(dir)?;
    let tmp = entry.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, entry)?;
    Ok(())
}
