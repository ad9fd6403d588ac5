//! Which component serves which kind, with atomic hot swap.
//!
//! A kind is served by its built-in component (a file named in the host's
//! configuration, shipped with the operator) unless a `ReconcilerComponent`
//! declares another; removing the declaration returns the kind to its
//! built-in, or stops serving a kind that has none.
//!
//! A new version is loaded and checked (it must compile, link, describe
//! itself and serve the same kind) before it replaces the current one in a
//! single atomic store. Reconciles in flight keep the `Arc` of the version
//! they started with and finish on it. A version that fails to load never
//! replaces a working one; the replaced version is kept for rollback.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio::sync::broadcast;

use super::component::{LoadError, LoadedComponent, Policy, Runtime};
use crate::metrics::Metrics;

/// Where the version serving a kind came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Shipped with the operator: a file named in its configuration.
    BuiltIn,
    /// Declared by a `ReconcilerComponent`.
    Declared {
        /// The `ReconcilerComponent`'s name.
        by: String,
        /// The OCI reference it was pulled from, pinned by digest.
        oci: String,
    },
}

impl Origin {
    /// `built-in`, or the OCI reference.
    pub fn label(&self) -> &str {
        match self {
            Origin::BuiltIn => "built-in",
            Origin::Declared { oci, .. } => oci,
        }
    }

    /// The OCI reference of a declared version.
    pub fn oci(&self) -> Option<&str> {
        match self {
            Origin::BuiltIn => None,
            Origin::Declared { oci, .. } => Some(oci),
        }
    }
}

/// A version of a component, where it came from.
pub struct Version {
    /// The loaded component.
    pub component: Arc<LoadedComponent>,
    /// Where it came from.
    pub origin: Origin,
}

impl Version {
    fn new(component: Arc<LoadedComponent>, origin: Origin) -> Arc<Self> {
        Arc::new(Version { component, origin })
    }
}

/// The component serving one kind, the version it replaced, its built-in
/// and the candidate tried beside it.
pub struct Slot {
    current: ArcSwap<Version>,
    previous: ArcSwapOption<Version>,
    builtin: ArcSwapOption<LoadedComponent>,
    candidate: ArcSwapOption<Version>,
    /// Resources each version (by digest) reconciled, for the status of the
    /// `ReconcilerComponent`.
    reconciled: Mutex<HashMap<String, HashSet<String>>>,
}

impl Slot {
    fn new(current: Arc<Version>, builtin: Option<Arc<LoadedComponent>>) -> Self {
        Slot {
            current: ArcSwap::new(current),
            previous: ArcSwapOption::empty(),
            builtin: ArcSwapOption::new(builtin),
            candidate: ArcSwapOption::empty(),
            reconciled: Mutex::new(HashMap::new()),
        }
    }

    /// The version serving now.
    pub fn current(&self) -> Arc<LoadedComponent> {
        self.current.load().component.clone()
    }

    /// The version serving now, with its origin.
    pub fn serving(&self) -> Arc<Version> {
        self.current.load_full()
    }

    /// The version it replaced, if any.
    pub fn previous(&self) -> Option<Arc<Version>> {
        self.previous.load_full()
    }

    /// The candidate tried beside the serving version, if any.
    pub fn candidate(&self) -> Option<Arc<Version>> {
        self.candidate.load_full()
    }

    /// The built-in version, if the kind has one.
    pub fn builtin(&self) -> Option<Arc<LoadedComponent>> {
        self.builtin.load_full()
    }

    /// Notes that the version with `digest` reconciled `resource`.
    pub fn record_reconciled(&self, digest: &str, resource: &str) {
        let mut reconciled = self.reconciled.lock().unwrap_or_else(|p| p.into_inner());
        match reconciled.get_mut(digest) {
            Some(set) => {
                if !set.contains(resource) {
                    set.insert(resource.to_owned());
                }
            }
            None => {
                reconciled.insert(digest.to_owned(), HashSet::from([resource.to_owned()]));
            }
        }
    }

    /// Forgets `resource`, which is gone: the counts are of resources that
    /// exist, and a key kept for every resource ever seen would grow without
    /// bound.
    pub fn forget_reconciled(&self, resource: &str) {
        let mut reconciled = self.reconciled.lock().unwrap_or_else(|p| p.into_inner());
        for set in reconciled.values_mut() {
            set.remove(resource);
        }
    }

    /// How many resources the version with `digest` reconciled.
    pub fn reconciled_count(&self, digest: &str) -> u64 {
        self.reconciled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .map_or(0, |set| set.len() as u64)
    }

    /// Forgets the counts of versions no longer current, previous or
    /// candidate, so that the bookkeeping stays bounded.
    fn forget_old_counts(&self) {
        let mut keep = vec![self.current.load().component.digest.clone()];
        keep.extend(self.previous.load().as_ref().map(|v| v.component.digest.clone()));
        keep.extend(self.candidate.load().as_ref().map(|v| v.component.digest.clone()));
        self.reconciled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|digest, _| keep.contains(digest));
    }

    /// Swaps in `next`; the old version becomes the previous one.
    fn swap(&self, next: Arc<Version>) -> Arc<Version> {
        let old = self.current.swap(next);
        self.previous.store(Some(old.clone()));
        self.forget_old_counts();
        old
    }
}

/// What a change of the registry did.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// The version asked for serves already.
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
    /// A kind no longer served.
    Removed {
        /// Kind no longer served.
        kind: String,
    },
    /// The new version was refused; the old one keeps serving.
    Rejected(String),
}

/// A change of which kinds are served, or by which version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A kind is served for the first time: start its controller.
    Added(String),
    /// Another version serves the kind: reconcile its resources again.
    Swapped(String),
    /// The kind is no longer served: stop its controller.
    Removed(String),
}

/// Every kind's slot.
pub struct Registry {
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    /// The kind each built-in file served, so that a file keeps its kind.
    sources: RwLock<BTreeMap<PathBuf, String>>,
    events: broadcast::Sender<RegistryEvent>,
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
            events: broadcast::channel(256).0,
        }
    }

    /// The runtime components are loaded into.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Changes of the served kinds and versions, as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
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

    fn publish_info(&self, kind: &str, old: Option<&LoadedComponent>, new: Option<&LoadedComponent>) {
        if let Some(old) = old {
            let _ = self.metrics.component_info.remove_label_values(&[
                kind,
                &old.description.name,
                &old.description.version,
                &old.digest,
            ]);
        }
        if let Some(new) = new {
            self.metrics
                .component_info
                .with_label_values(&[kind, &new.description.name, &new.description.version, &new.digest])
                .set(1);
        }
    }

    fn emit(&self, event: RegistryEvent) {
        let _ = self.events.send(event);
    }

    /// Installs `next` as the version serving its kind: a new kind, or a
    /// swap. `Unchanged` when the same version under the same policy and
    /// origin serves already.
    fn install(&self, next: Arc<Version>, builtin: Option<Arc<LoadedComponent>>) -> Refresh {
        let kind = next.component.description.kind_key();
        let existing = self.slot(&kind);
        match existing {
            Some(slot) => {
                if let Some(builtin) = builtin {
                    slot.builtin.store(Some(builtin));
                }
                let current = slot.serving();
                if current.component.digest == next.component.digest
                    && current.origin == next.origin
                    && current.component.policy() == next.component.policy()
                {
                    return Refresh::Unchanged;
                }
                let same_version = current.component.digest == next.component.digest;
                // The swap: one atomic store. In-flight calls hold the old Arc.
                let old = if same_version {
                    // A new policy or origin for the version already serving:
                    // not a new version, so the previous one stays.
                    slot.current.swap(next.clone())
                } else {
                    slot.swap(next.clone())
                };
                self.publish_info(&kind, Some(&old.component), Some(&next.component));
                self.metrics
                    .component_swaps
                    .with_label_values(&[&kind, "swapped"])
                    .inc();
                tracing::info!(kind, from = %describe(&old.component), to = %describe(&next.component), origin = next.origin.label(), "component swapped");
                self.emit(RegistryEvent::Swapped(kind.clone()));
                Refresh::Swapped {
                    kind,
                    from: describe(&old.component),
                    to: describe(&next.component),
                }
            }
            None => {
                self.publish_info(&kind, None, Some(&next.component));
                tracing::info!(kind, component = %describe(&next.component), cached = next.component.from_cache, origin = next.origin.label(), "component loaded");
                self.slots
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(kind.clone(), Arc::new(Slot::new(next, builtin)));
                self.emit(RegistryEvent::Added(kind.clone()));
                Refresh::Added { kind }
            }
        }
    }

    /// Loads the built-in component in `path` and installs it: for a new
    /// kind, or as a new version of the kind the file served before. A kind
    /// a `ReconcilerComponent` declares keeps its declared version; the new
    /// built-in serves once the declaration goes.
    pub async fn refresh(&self, path: &Path, policy: &Policy) -> Refresh {
        let loaded = match self.runtime.load(path, policy).await {
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
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_owned(), kind.clone());
        let loaded = Arc::new(loaded);
        if let Some(slot) = self.slot(&kind)
            && slot.serving().origin != Origin::BuiltIn
        {
            slot.builtin.store(Some(loaded));
            return Refresh::Unchanged;
        }
        self.install(Version::new(loaded.clone(), Origin::BuiltIn), Some(loaded))
    }

    /// Makes `component`, declared by a `ReconcilerComponent`, serve its
    /// kind. The caller has checked it (kind, grants).
    pub fn declare(&self, component: Arc<LoadedComponent>, origin: Origin) -> Refresh {
        self.metrics
            .component_loads
            .with_label_values(&[&component.description.kind_key(), "loaded"])
            .inc();
        self.install(Version::new(component, origin), None)
    }

    /// Swaps back to the previous version of `kind` when it is the one
    /// wanted (a rollback): no pull, no compile. `None` when the previous
    /// version is not that one.
    pub fn roll_back(&self, kind: &str, origin: &Origin, policy: &Policy) -> Option<Refresh> {
        let slot = self.slot(kind)?;
        let previous = slot.previous()?;
        // A rollback is still a version asking for its grants: one that needs
        // more than `policy` gives is loaded (and refused) like any other.
        if &previous.origin != origin || !previous.component.missing_grants(policy).is_empty() {
            return None;
        }
        let component = if previous.component.policy() == *policy {
            previous.component.clone()
        } else {
            Arc::new(previous.component.with_policy(policy).ok()?)
        };
        Some(self.install(Version::new(component, origin.clone()), None))
    }

    /// Ends the declaration of `kind`: its built-in serves again, or the
    /// kind is no longer served when it has none.
    pub fn undeclare(&self, kind: &str) -> Refresh {
        let Some(slot) = self.slot(kind) else {
            return Refresh::Unchanged;
        };
        slot.candidate.store(None);
        if slot.serving().origin == Origin::BuiltIn {
            return Refresh::Unchanged;
        }
        match slot.builtin() {
            Some(builtin) => self.install(Version::new(builtin, Origin::BuiltIn), None),
            None => {
                let current = slot.current();
                self.slots.write().unwrap_or_else(|p| p.into_inner()).remove(kind);
                self.publish_info(kind, Some(&current), None);
                tracing::info!(kind, component = %describe(&current), "kind no longer served: its declaration is gone and it has no built-in");
                self.emit(RegistryEvent::Removed(kind.to_owned()));
                Refresh::Removed { kind: kind.to_owned() }
            }
        }
    }

    /// Sets or clears the candidate tried beside the serving version.
    pub fn set_candidate(&self, kind: &str, candidate: Option<(Arc<LoadedComponent>, Origin)>) {
        if let Some(slot) = self.slot(kind) {
            let unchanged = match (slot.candidate(), &candidate) {
                (None, None) => true,
                (Some(old), Some((new, origin))) => {
                    old.component.digest == new.digest
                        && &old.origin == origin
                        && old.component.policy() == new.policy()
                }
                _ => false,
            };
            if !unchanged {
                slot.candidate
                    .store(candidate.map(|(component, origin)| Version::new(component, origin)));
                slot.forget_old_counts();
            }
        }
    }

    /// Records a version that failed to load for `kind`.
    pub fn count_rejected(&self, kind: &str) {
        self.metrics.component_loads.with_label_values(&[kind, "failed"]).inc();
        self.metrics
            .component_swaps
            .with_label_values(&[kind, "rejected"])
            .inc();
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
