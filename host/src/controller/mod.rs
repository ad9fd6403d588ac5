//! One controller per kind served by a component: a watch-fed work queue,
//! workers that reconcile through the component, and the writes back to
//! Kubernetes (children, finalizers, status, Events).

pub(crate) mod backoff;
pub mod children;
mod events;
pub mod informer;
pub(crate) mod queue;
mod reconcile;
mod rehearsal;
pub mod selector;
pub mod status;
pub mod target;

use std::sync::Arc;
use std::time::Duration;

use kube::api::ApiResource;
use kube::runtime::events::Recorder;
use kube::{Client, ResourceExt};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::backoff::Backoff;
use self::children::ChildCaches;
use self::informer::{Change, Informer, NamespaceScope, ObjectKey};
use self::queue::WorkQueue;
use self::target::References;
use crate::delivery::ShadowReports;
use crate::keycloak::KeycloakPool;
use crate::metrics::Metrics;
use crate::runtime::model::KeycloakScope;
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
    /// Keycloak connections.
    pub keycloak: Arc<KeycloakPool>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Caches of referenced objects.
    pub references: Arc<References>,
    /// Caches of children.
    pub children: Arc<ChildCaches>,
    /// Event recorder.
    pub recorder: Recorder,
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
        let refs = &shared.references;
        caches.extend([refs.keycloaks.clone(), refs.realms.clone(), refs.namespaces.clone()]);
        let controller = Arc::new(KindController {
            kind,
            slot,
            resource,
            parent: parent.clone(),
            queue: WorkQueue::new(),
            backoff: Backoff::new(shared.settings.backoff_base, shared.settings.backoff_cap),
            shared,
        });
        // Resources of a kind that owns realms are claimants of their realm
        // for every kind (one realm, one owner).
        let owns_realms = description.keycloak_scope == KeycloakScope::Realm;
        if owns_realms {
            controller
                .shared
                .references
                .realm_owners
                .register(&controller.kind, parent.clone());
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
            match description.keycloak_scope {
                KeycloakScope::Realm | KeycloakScope::InRealm => {
                    let refs = controller.shared.references.clone();
                    feeders.spawn(controller.clone().feed_from_references(refs.keycloaks.clone()));
                    feeders.spawn(controller.clone().feed_from_references(refs.realms.clone()));
                }
                KeycloakScope::None | KeycloakScope::Instance => {}
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
            if owns_realms {
                controller.shared.references.realm_owners.unregister(&controller.kind);
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
                        self.enqueue_refused_by_quota();
                    }
                }
                Err(RecvError::Lagged(_)) => self.enqueue_all(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// A resource going away frees a quota slot: the ones waiting for one
    /// are looked at again now rather than at their next resync.
    fn enqueue_refused_by_quota(&self) {
        for object in self.parent.list() {
            if status::current_ready_reason(object.data.get("status")).as_deref()
                == Some(keycloak_operator_api::reasons::QUOTA_EXCEEDED)
            {
                self.queue.add(ObjectKey::of(&object));
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

    /// A changed `Keycloak` or `KeycloakRealm` requeues the resources that
    /// reference it (directly, or through their realm).
    async fn feed_from_references(self: Arc<Self>, informer: Arc<Informer>) {
        let mut changes = informer.subscribe();
        let referenced_kind = informer.resource.kind.clone();
        loop {
            match changes.recv().await {
                Ok(Change { key, .. }) => {
                    for parent in self.parent.list() {
                        if self.references(
                            &parent.data,
                            parent.metadata.namespace.as_deref().unwrap_or_default(),
                            &referenced_kind,
                            &key,
                        ) {
                            self.queue.add(ObjectKey::of(&parent));
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => self.enqueue_all(),
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn references(&self, data: &Value, namespace: &str, kind: &str, key: &ObjectKey) -> bool {
        let points_to = |field: &str, data: &Value, own: &str| {
            let name = data.pointer(&format!("/spec/{field}/name")).and_then(Value::as_str);
            let ns = data
                .pointer(&format!("/spec/{field}/namespace"))
                .and_then(Value::as_str)
                .unwrap_or(own);
            name == Some(key.name.as_str()) && ns == key.namespace
        };
        match kind {
            "Keycloak" => {
                if points_to("keycloakRef", data, namespace) {
                    return true;
                }
                // Through the realm: a client's realm on this Keycloak.
                let realm = data.pointer("/spec/realmRef/name").and_then(Value::as_str);
                let realm_ns = data
                    .pointer("/spec/realmRef/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(namespace);
                realm
                    .and_then(|name| self.shared.references.realms.get(&ObjectKey::new(realm_ns, name)))
                    .is_some_and(|realm| points_to("keycloakRef", &realm.data, realm_ns))
            }
            "KeycloakRealm" => points_to("realmRef", data, namespace),
            _ => false,
        }
    }

    async fn work(self: Arc<Self>) {
        while let Some(key) = self.queue.next().await {
            self.shared
                .metrics
                .queue_depth
                .with_label_values(&[&self.kind])
                .set(self.queue.depth() as i64);
            let requeue = self.reconcile(&key).await;
            self.queue.done(&key);
            if let Some(delay) = requeue {
                self.queue.add_after(key, delay);
            }
        }
    }
}
