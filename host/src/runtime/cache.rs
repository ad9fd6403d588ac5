//! Compiled components on disk, keyed by the component's digest and the
//! engine's compatibility hash, so that a restart loads in a fraction of a
//! millisecond instead of compiling again.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::disk_budget;

/// The on-disk cache of compiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
    budget_bytes: u64,
}

impl CompileCache {
    /// A cache in `dir` of at most `budget_bytes` (least recently used
    /// entries go first, entries of other engines among them), or none at
    /// all when `dir` is `None`.
    pub fn new(engine: &Engine, dir: Option<PathBuf>, budget_bytes: u64) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir,
            engine_key: format!("engine-{:016x}", hasher.finish()),
            budget_bytes,
        }
    }

    fn path_for(&self, digest_hex: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{digest_hex}-{}.cwasm", self.engine_key)))
    }

    /// The compiled component: from the cache when present and loadable,
    /// else compiled and written back. A cache that cannot be written only
    /// costs the next start a compile.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest_hex: &str,
    ) -> wasmtime::Result<(Component, bool)> {
        if let Some(path) = self.path_for(digest_hex) {
            if path.exists() {
                // SAFETY-relevant: the file is one this host wrote, named by
                // the digest of its source and the engine's compatibility
                // hash; wasmtime still checks its header and refuses a
                // mismatched artifact, in which case we recompile.
                match load_compiled(engine, &path) {
                    Ok(component) => {
                        disk_budget::touch(&path);
                        return Ok((component, true));
                    }
                    Err(error) => {
                        tracing::warn!(%error, path = %path.display(), "ignoring unusable compiled component")
                    }
                }
            }
            let compiled = engine.precompile_component(bytes)?;
            match write_atomically(&path, &compiled) {
                Ok(()) => {
                    if let Some(dir) = path.parent() {
                        disk_budget::prune(dir, self.budget_bytes, &path);
                    }
                }
                Err(error) => tracing::warn!(%error, path = %path.display(), "cannot write the compile cache"),
            }
            // SAFETY: `compiled` was produced by this engine just now.
            #[allow(unsafe_code)]
            let component = unsafe { Component::deserialize(engine, &compiled)? };
            return Ok((component, false));
        }
        Ok((Component::from_binary(engine, bytes)?, false))
    }
}

#[allow(unsafe_code)]
fn load_compiled(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: see `load_or_compile`; the cache directory belongs to the host.
    unsafe { Component::deserialize_file(engine, path) }
}

/// Writes a file by rename, so that a reader (another replica, the next
/// start) never sees it half-written.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_change_with_the_digest() {
        let engine = Engine::default();
        let cache = CompileCache::new(&engine, Some(PathBuf::from("/cache")), u64::MAX);
        let a = cache.path_for("aa").expect("path");
        let b = cache.path_for("bb").expect("path");
        assert_ne!(a, b);
        assert!(a.to_string_lossy().contains(&cache.engine_key));
    }

    #[test]
    fn a_new_entry_pushes_the_least_recently_used_out_of_the_budget() {
        // The empty component: magic, then the component layer's version.
        let empty = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
        let engine = Engine::default();
        let dir = std::env::temp_dir().join(format!("compile-cache-budget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let size = engine.precompile_component(&empty).expect("compile").len() as u64;
        let cache = CompileCache::new(&engine, Some(dir.clone()), size + size / 2);
        let (_, cached) = cache.load_or_compile(&engine, &empty, "aa").expect("first");
        assert!(!cached);
        let (_, cached) = cache.load_or_compile(&engine, &empty, "aa").expect("again");
        assert!(cached, "a second load comes from the cache");
        cache.load_or_compile(&engine, &empty, "bb").expect("another digest");
        let (a, b) = (cache.path_for("aa").expect("path"), cache.path_for("bb").expect("path"));
        assert!(!a.exists() && b.exists(), "the older entry went, the new one stayed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
