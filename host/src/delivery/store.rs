//! Pulled components on disk, keyed by the manifest digest they were pinned
//! by, so that a rollback (or a restart) needs no registry.
//!
//! Each entry is the component's bytes and its layer digest; a read checks
//! the bytes against that digest, so a damaged file is pulled again rather
//! than run.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::oci::PulledComponent;
use crate::runtime::cache::write_atomically;
use crate::runtime::disk_budget;

/// The store; without a directory it holds nothing.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    dir: Option<PathBuf>,
    budget_bytes: u64,
}

impl ArtifactStore {
    /// A store in `dir` (created on first write) of at most `budget_bytes`,
    /// or none.
    pub fn new(dir: Option<PathBuf>, budget_bytes: u64) -> Self {
        ArtifactStore { dir, budget_bytes }
    }

    fn paths(&self, manifest_digest: &str) -> Option<(PathBuf, PathBuf)> {
        let hex = manifest_digest.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let dir = self.dir.as_ref()?;
        Some((dir.join(format!("{hex}.wasm")), dir.join(format!("{hex}.layer-digest"))))
    }

    /// The component pinned by `manifest_digest`, if stored and intact.
    pub fn get(&self, manifest_digest: &str) -> Option<PulledComponent> {
        let (bytes_path, digest_path) = self.paths(manifest_digest)?;
        let layer_digest = std::fs::read_to_string(&digest_path).ok()?.trim().to_owned();
        let bytes = std::fs::read(&bytes_path).ok()?;
        disk_budget::touch(&bytes_path);
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != layer_digest {
            tracing::warn!(path = %bytes_path.display(), "stored component does not match its digest; pulling it again");
            return None;
        }
        Some(PulledComponent { bytes, layer_digest })
    }

    /// Keeps `component` under `manifest_digest`. A store that cannot be
    /// written only costs a pull later.
    pub fn put(&self, manifest_digest: &str, component: &PulledComponent) {
        let Some((bytes_path, digest_path)) = self.paths(manifest_digest) else {
            return;
        };
        let written = write_atomically(&bytes_path, &component.bytes)
            .and_then(|()| write_atomically(&digest_path, component.layer_digest.as_bytes()));
        match written {
            // A pruned component loses its digest file with it at the next
            // pruning (it is older still); either alone only costs a pull.
            Ok(()) => {
                if let Some(dir) = bytes_path.parent() {
                    disk_budget::prune(dir, self.budget_bytes, &bytes_path);
                }
            }
            Err(error) => {
                tracing::warn!(%error, path = %bytes_path.display(), "cannot keep the pulled component on disk")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_component_comes_back_and_a_damaged_one_does_not() {
        let dir = std::env::temp_dir().join(format!("artifact-store-{}", std::process::id()));
        let store = ArtifactStore::new(Some(dir.clone()), u64::MAX);
        let digest = format!("sha256:{}", "ab".repeat(32));
        let bytes = b"\0asm component".to_vec();
        let component = PulledComponent {
            layer_digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            bytes,
        };
        assert!(store.get(&digest).is_none());
        store.put(&digest, &component);
        assert_eq!(store.get(&digest).map(|c| c.bytes), Some(component.bytes.clone()));
        std::fs::write(dir.join(format!("{}.wasm", "ab".repeat(32))), b"tampered").expect("write");
        assert!(store.get(&digest).is_none());
        assert!(store.get("sha256:../../etc/passwd").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
