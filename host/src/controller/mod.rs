//! One controller per kind served by a component: a watch-fed work queue,
//! workers that reconcile through the component, and the writes back to
//! Kubernetes (children, finalizers, status, Events).

pub(crate) mod backoff;
pub mod children;
pub mod events;
pub mod informer;
mod output;
mod publish;
pub(crate) mod queue;
mod reconcile;
mod rehearsal;
pub mod selector;
pub mod status;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use kube::api::ApiResource;
use kube::{Client, ResourceExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::backoff::Backoff;
use self::children::ChildCaches;
use self::informer::{Change, Informer, NamespaceScope, ObjectKey};
use self::queue::WorkQueue;
use crate::capability::{HostCapability, NudgeCause, Nudges};
use crate::delivery::ShadowReports;
use crate::metrics::Metrics;
use crate::runtime::registry::{Registry, RegistryEvent, Slot};

/// The finalizer the host puts on resources whose component cleans up.
pub const FINALIZER: &str = "keycloak.wasmop.dev/finalizer";
/// The field manager of every write the host makes.
pub const FIELD_MANAGER: &str = "keycloak-operator";

/// Timing of the controllers.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// Reconciles at once per kind.
    pub workers: usize,
    /// Reconcile every resource at least this often (drift detection).
    pub resync_period: Duration,
    /// Requeue delay while progressing.
    pub progressing_requeue: Duration,
    /// First retry delay after a failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_cap: Duration,
}

/// What every controller shares.
pub struct Shared {
    /// Kubernetes client.
    pub client: Client,
    /// The host capabilities (Keycloak, Secrets), which the controllers know
    /// only through their trait.
    pub capabilities: Vec<Arc<dyn HostCapability>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Caches of children.
    pub children: Arc<ChildCaches>,
    /// Event recorder.
    pub recorder: events::EventSink,
    /// Timing.
    pub settings: ControllerSettings,
    /// Namespaces watched.
    pub scope: NamespaceScope,
    /// What shadow candidates would write.
    pub shadow: Arc<ShadowReports>,
}

/// The controller of one kind.
pub struct KindController {
    kind: String,
    slot: Arc<Slot>,
    resource: ApiResource,
    parent: Arc<Informer>,
    queue: WorkQueue,
    backoff: Backoff,
    shared: Arc<Shared>,
}

/// A started controller.
pub struct RunningController {
    /// Ends when the controller stopped.
    pub handle: tokio::task::JoinHandle<()>,
    /// The cache of its resources.
    pub parent: Arc<Informer>,
}

impl KindController {
    /// Starts the controller of `kind`; it runs until `cancel`, then lets the
    /// reconciles in flight finish.
    pub fn start(
        shared: Arc<Shared>,
        registry: Arc<Registry>,
        kind: String,
        slot: Arc<Slot>,
        cancel: CancellationToken,
    ) -> RunningController {
        let description = slot.current().description.clone();
        let version = description.versions.first().cloned().unwrap_or_default();
        let resource = ApiResource {
            group: description.group.clone(),
            version: version.clone(),
            api_version: format!("{}/{version}", description.group),
            kind: description.kind.clone(),
            plural: description.plural.clone(),
        };
        shared.metrics.init_kind(&kind);
        let watches = cancel.child_token();
        let parent = Informer::spawn(
            shared.client.clone(),
            resource.clone(),
            true,
            &shared.scope,
            None,
            watches.clone(),
        );
        let child_caches = shared.children.ensure(&description.child_kinds);
        let related_caches = shared.children.ensure(&description.related_kinds);
        // Every cache a reconcile reads: until each has listed its objects, a
        // reference looks missing and a child looks absent. A new leader
        // that reconciled before would report ReferenceNotFound, or create
        // a child that exists.
        let mut caches: Vec<Arc<Informer>> = vec![parent.clone()];
        caches.extend(child_caches.iter().chain(&related_caches).map(|(_, i)| i.clone()));
        let watched: Vec<(Arc<dyn HostCapability>, Arc<Informer>)> = shared
            .capabilities
            .iter()
            .flat_map(|capability| {
                capability
                    .watches(&description)
                    .into_iter()
                    .map(|informer| (capability.clone(), informer))
            })
            .collect();
        caches.extend(watched.iter().map(|(_, informer)| informer.clone()));
        let controller = Arc::new(KindController {
            kind,
            slot,
            resource,
            parent: parent.clone(),
            queue: WorkQueue::new(),
            backoff: Backoff::new(shared.settings.backoff_base, shared.settings.backoff_cap),
            shared,
        });
        for capability in &controller.shared.capabilities {
            capability.kind_started(&controller.kind, &description, &parent);
        }
        let handle = tokio::spawn(async move {
            let synced = async {
                for cache in &caches {
                    cache.wait_synced().await;
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => {
                    watches.cancel();
                    return;
                }
                _ = synced => {}
            }
            let mut feeders = JoinSet::new();
            feeders.spawn(controller.clone().feed_from_parents());
            feeders.spawn(controller.clone().feed_from_swaps(registry));
            for (_, informer) in child_caches {
                feeders.spawn(controller.clone().feed_from_children(informer));
            }
            for (_, informer) in related_caches {
                feeders.spawn(controller.clone().feed_from_related(informer));
            }
            for (capability, informer) in watched {
                feeders.spawn(controller.clone().feed_from_capability(capability, informer));
            }
            for nudges in controller.shared.capabilities.iter().flat_map(|c| c.nudges()) {
                feeders.spawn(controller.clone().feed_from_nudges(nudges));
            }
            let mut workers = JoinSet::new();
            for _ in 0..controller.shared.settings.workers.max(1) {
                workers.spawn(controller.clone().work());
            }
            tracing::info!(kind = %controller.kind, component = %controller.slot.current().label(), "controller started");
            cancel.cancelled().await;
            controller.queue.shut_down();
            feeders.abort_all();
            // Reconciles in flight finish; no new ones start.
            while workers.join_next().await.is_some() {}
            watches.cancel();
            for capability in &controller.shared.capabilities {
                capability.kind_stopped(&controller.kind);
            }
            tracing::info!(kind = %controller.kind, "controller stopped");
        });
        RunningController { handle, parent }
    }

    fn enqueue_all(&self) {
        for object in self.parent.list() {
            self.queue.add(ObjectKey::of(&object));
        }
    }

    async fn feed_from_parents(self: Arc<Self>) {
        let mut changes = self.parent.subscribe();
        // Objects listed before we subscribed are queued here.
        self.enqueue_all();
        loop {
            match changes.recv().await {
                // Its status, written by its own reconcile most of the time:
                // looking again would only find nothing to do.
                Ok(Change { status_only: true, .. }) => {}
                Ok(Change { key, .. }) => {
                    let gone = self
                        .parent
                        .get(&key)
                        .is_none_or(|o| o.metadata.deletion_timestamp.is_some());
                    self.queue.add(key);
                    if gone {
                        // It may have freed a quota slot.
                        for capability in &self.shared.capabilities {
                            for waiting in capability.after_departure(&self.parent) {
                                self.queue.add(waiting);
                            }
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => self.enqueue_all(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// A new component version reconciles every resource of its kind.
    async fn feed_from_swaps(self: Arc<Self>, registry: Arc<Registry>) {
        let mut swaps = registry.subscribe();
        loop {
            match swaps.recv().await {
                Ok(RegistryEvent::Swapped(kind)) if kind == self.kind => self.enqueue_all(),
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => self.enqueue_all(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    async fn feed_from_children(self: Arc<Self>, informer: Arc<Informer>) {
        let mut changes = informer.subscribe();
        loop {
            match changes.recv().await {
                Ok(Change { key, .. }) => {
                    // A deleted child is gone from the cache: resync its
                    // namespace's parents, which re-create it if desired.
                    match informer.get(&key).as_deref().and_then(children::controller_of) {
                        Some((kind, name)) if kind == self.resource.kind => {
                            self.queue.add(ObjectKey::new(&key.namespace, &name))
                        }
                        Some(_) => {}
                        None => {
                            for parent in self.parent.list_namespace(&key.namespace) {
                                self.queue.add(ObjectKey::of(&parent));
                            }
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => self.enqueue_all(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// A related object (a Pod of a child Deployment) requeues the resource
    /// its instance label names.
    async fn feed_from_related(self: Arc<Self>, informer: Arc<Informer>) {
        let mut changes = informer.subscribe();
        loop {
            match changes.recv().await {
                Ok(Change { key, .. }) => {
                    let owner = informer
                        .get(&key)
                        .and_then(|o| o.labels().get(children::INSTANCE_LABEL).cloned());
                    if let Some(name) = owner {
                        self.queue.add(ObjectKey::new(&key.namespace, &name));
                    }
                }
                Err(RecvError::Lagged(_)) => self.enqueue_all(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// A change in a cache a capability reads requeues the resources it
    /// concerns.
    async fn feed_from_capability(self: Arc<Self>, capability: Arc<dyn HostCapability>, informer: Arc<Informer>) {
        let mut changes = informer.subscribe();
        loop {
            match changes.recv().await {
                Ok(Change { key, .. }) => {
                    for affected in capability.affected(&informer, &key, &self.parent) {
                        self.queue.add(affected);
                    }
                }
                Err(RecvError::Lagged(_)) => self.enqueue_all(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// A capability saw a resource's objects change outside Kubernetes (an
    /// admin event in Keycloak), or what failed it answers again: only that
    /// resource is looked at again.
    async fn feed_from_nudges(self: Arc<Self>, nudges: Nudges) {
        let Nudges { cause, mut receiver } = nudges;
        let counter = match cause {
            NudgeCause::Drift => &self.shared.metrics.drift_requeues,
            NudgeCause::Recovery => &self.shared.metrics.recovery_requeues,
        };
        loop {
            match receiver.recv().await {
                Ok(nudge) if nudge.kind == self.kind => {
                    if self.parent.get(&nudge.key).is_some() {
                        counter.with_label_values(&[&self.kind]).inc();
                        self.queue.add(nudge.key);
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => self.enqueue_all(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    async fn work(self: Arc<Self>) {
        let this = &self;
        worker::run(
            &self.queue,
            |key| async move {
                this.shared
                    .metrics
                    .queue_depth
                    .with_label_values(&[&this.kind])
                    .set(this.queue.depth() as i64);
                this.reconcile(&key).await
            },
            |key, message| {
                this.shared.metrics.reconcile_panics.with_label_values(&[&this.kind]).inc();
                tracing::error!(kind = %this.kind, resource = %key, panic = message, "the host panicked while reconciling; retrying with backoff");
                this.backoff.failed(key)
            },
        )
        .await
    }
}
