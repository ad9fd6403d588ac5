//! Which component serves which kind, with atomic hot swap.
//!
//! A new version is loaded and checked (it must compile, link, describe
//! itself and serve the same kind) before it replaces the current one in a
//! single atomic store. Reconciles in flight keep the `Arc` of the version
//! they started with and finish on it. A version that fails to load never
//! replaces a working one; the replaced version is kept for rollback.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::broadcast;

use super::component::{LoadError, LoadedComponent, Runtime};
use super::model::Capability;
use crate::metrics::Metrics;

/// The component serving one kind.
pub struct Slot {
    current: ArcSwap<LoadedComponent>,
    previous: ArcSwapOption<LoadedComponent>,
}

impl Slot {
    /// The version serving now.
    pub fn current(&self) -> Arc<LoadedComponent> {
        self.current.load_full()
    }

    /// The version it replaced, if any.
    pub fn previous(&self) -> Option<Arc<LoadedComponent>> {
        self.previous.load_full()
    }
}

/// What a refresh did.
#[derive(Debug)]
pub enum Refresh {
    /// The file holds the version already serving.
    Unchanged,
    /// A new version serves now.
    Swapped {
        /// Kind served.
        kind: String,
        /// Old `name@version digest`.
        from: String,
        /// New `name@version digest`.
        to: String,
    },
    /// A kind served for the first time.
    Added {
        /// Kind served.
        kind: String,
    },
    /// The new version was refused; the old one keeps serving.
    Rejected(String),
}

/// Every kind's slot.
pub struct Registry {
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    sources: RwLock<BTreeMap<PathBuf, String>>,
    swaps: broadcast::Sender<String>,
}

fn describe(c: &LoadedComponent) -> String {
    format!("{} ({})", c.label(), c.digest)
}

impl Registry {
    /// An empty registry.
    pub fn new(runtime: Arc<Runtime>, metrics: Arc<Metrics>) -> Self {
        Registry {
            runtime,
            metrics,
            slots: RwLock::new(BTreeMap::new()),
            sources: RwLock::new(BTreeMap::new()),
            swaps: broadcast::channel(64).0,
        }
    }

    /// Kinds whose component was just swapped, so their resources can be
    /// reconciled by the new version without waiting for a resync.
    pub fn subscribe_swaps(&self) -> broadcast::Receiver<String> {
        self.swaps.subscribe()
    }

    /// The slot of a kind (`group/Kind`).
    pub fn slot(&self, kind: &str) -> Option<Arc<Slot>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner()).get(kind).cloned()
    }

    /// Every kind and its slot.
    pub fn kinds(&self) -> Vec<(String, Arc<Slot>)> {
        self.slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect()
    }

    fn publish_info(&self, kind: &str, old: Option<&LoadedComponent>, new: &LoadedComponent) {
        if let Some(old) = old {
            let _ = self.metrics.component_info.remove_label_values(&[
                kind,
                &old.description.name,
                &old.description.version,
                &old.digest,
            ]);
        }
        self.metrics
            .component_info
            .with_label_values(&[kind, &new.description.name, &new.description.version, &new.digest])
            .set(1);
    }

    /// Loads the component in `path` and installs it: for a new kind, or as
    /// a new version of the kind the file served before.
    pub async fn refresh(&self, path: &Path, grants: &[Capability]) -> Refresh {
        let grants: BTreeSet<Capability> = grants.iter().copied().collect();
        let loaded = match self.runtime.load(path, &grants).await {
            Ok(loaded) => loaded,
            Err(error) => return self.reject(path, &error),
        };
        let kind = loaded.description.kind_key();
        let previous_kind = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned();
        if let Some(previous_kind) = &previous_kind
            && previous_kind != &kind
        {
            let message = format!(
                "{} now describes kind {kind} but served {previous_kind}; a component keeps its kind, so the old version stays",
                path.display()
            );
            self.metrics
                .component_swaps
                .with_label_values(&[previous_kind, "rejected"])
                .inc();
            tracing::error!(%message, "component swap rejected");
            return Refresh::Rejected(message);
        }
        self.metrics.component_loads.with_label_values(&[&kind, "loaded"]).inc();
        let loaded = Arc::new(loaded);
        let existing = self.slot(&kind);
        let outcome = match existing {
            Some(slot) => {
                let current = slot.current();
                if current.digest == loaded.digest {
                    return Refresh::Unchanged;
                }
                // The swap: one atomic store. In-flight calls hold the old Arc.
                let old = slot.current.swap(loaded.clone());
                slot.previous.store(Some(old.clone()));
                self.publish_info(&kind, Some(&old), &loaded);
                self.metrics
                    .component_swaps
                    .with_label_values(&[&kind, "swapped"])
                    .inc();
                tracing::info!(kind, from = %describe(&old), to = %describe(&loaded), "component swapped");
                let _ = self.swaps.send(kind.clone());
                Refresh::Swapped {
                    kind: kind.clone(),
                    from: describe(&old),
                    to: describe(&loaded),
                }
            }
            None => {
                self.publish_info(&kind, None, &loaded);
                tracing::info!(kind, component = %describe(&loaded), cached = loaded.from_cache, "component loaded");
                self.slots.write().unwrap_or_else(|p| p.into_inner()).insert(
                    kind.clone(),
                    Arc::new(Slot {
                        current: ArcSwap::new(loaded),
                        previous: ArcSwapOption::empty(),
                    }),
                );
                Refresh::Added { kind: kind.clone() }
            }
        };
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned(), kind);
        outcome
    }

    fn reject(&self, path: &Path, error: &LoadError) -> Refresh {
        let kind = self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        self.metrics.component_loads.with_label_values(&[&kind, "failed"]).inc();
        if kind != "unknown" {
            self.metrics
                .component_swaps
                .with_label_values(&[&kind, "rejected"])
                .inc();
        }
        tracing::error!(%error, path = %path.display(), "component not loaded; the serving version (if any) stays");
        Refresh::Rejected(error.to_string())
    }
}
