//! A watched, cached set of objects of one kind, shared by everything that
//! needs it, with a broadcast of the keys that changed.
//!
//! Each namespace in scope is watched by its own stream; a stream's relist
//! replaces only its own namespace's entries, so one namespace's watch
//! restart never drops another's objects, and announces only the objects
//! that changed meanwhile, so a restarted API server costs no reconcile
//! storm.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use rand::Rng;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Namespace and name of an object (namespace empty for cluster-scoped ones).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// A key from parts.
    pub fn new(namespace: &str, name: &str) -> Self {
        ObjectKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The key of an object.
    pub fn of(object: &DynamicObject) -> Self {
        ObjectKey {
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// One change to the cache, as broadcast to subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The object that changed (or went away).
    pub key: ObjectKey,
    /// Only its status (and resource version) changed. A resource's own
    /// reconcile wrote it most of the time, so its controller need not look
    /// again. Whoever depends on the object's status (its referrers, its
    /// parent) still must.
    pub status_only: bool,
}

/// Which namespaces the operator watches: all, or a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceScope(pub Vec<String>);

impl NamespaceScope {
    /// Whether `namespace` is watched.
    pub fn contains(&self, namespace: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|n| n == namespace)
    }
}

/// The cache of one kind.
pub struct Informer {
    /// The kind.
    pub resource: ApiResource,
    objects: RwLock<HashMap<ObjectKey, Arc<DynamicObject>>>,
    changes: broadcast::Sender<Change>,
    synced: watch::Sender<usize>,
    streams: usize,
}

impl Informer {
    /// Starts watching `resource` in the scope (cluster-wide for
    /// cluster-scoped kinds), optionally filtered by labels.
    pub fn spawn(
        client: Client,
        resource: ApiResource,
        namespaced: bool,
        scope: &NamespaceScope,
        labels: Option<&str>,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let namespaces: Vec<Option<String>> = if namespaced && !scope.0.is_empty() {
            scope.0.iter().cloned().map(Some).collect()
        } else {
            vec![None]
        };
        let (changes, _) = broadcast::channel(4096);
        let (synced, _) = watch::channel(0);
        let informer = Arc::new(Informer {
            resource: resource.clone(),
            objects: RwLock::new(HashMap::new()),
            changes,
            synced,
            streams: namespaces.len(),
        });
        for namespace in namespaces {
            let api: Api<DynamicObject> = match &namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let mut config = watcher::Config::default();
            if let Some(labels) = labels {
                config = config.labels(labels);
            }
            let this = informer.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                let stream = watcher(api, config).backoff(WatchBackoff::default());
                futures::pin_mut!(stream);
                let mut buffer: Option<Vec<DynamicObject>> = None;
                let mut initialised = false;
                loop {
                    let event = tokio::select! {
                        _ = cancel.cancelled() => break,
                        event = stream.next() => event,
                    };
                    match event {
                        None => break,
                        Some(Err(error)) => {
                            tracing::warn!(kind = %this.resource.kind, %error, "watch failed; retrying with backoff");
                        }
                        Some(Ok(watcher::Event::Init)) => buffer = Some(Vec::new()),
                        Some(Ok(watcher::Event::InitApply(object))) => {
                            buffer.get_or_insert_with(Vec::new).push(object);
                        }
                        Some(Ok(watcher::Event::InitDone)) => {
                            this.replace(namespace.as_deref(), buffer.take().unwrap_or_default());
                            if !initialised {
                                initialised = true;
                                this.synced.send_modify(|n| *n += 1);
                            }
                        }
                        Some(Ok(watcher::Event::Apply(object))) => this.apply(object),
                        Some(Ok(watcher::Event::Delete(object))) => this.delete(&object),
                    }
                }
            });
        }
        informer
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ObjectKey, Arc<DynamicObject>>> {
        self.objects.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ObjectKey, Arc<DynamicObject>>> {
        self.objects.read().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self, key: ObjectKey, status_only: bool) {
        // No receivers is fine: nobody listens yet.
        let _ = self.changes.send(Change { key, status_only });
    }

    fn apply(&self, mut object: DynamicObject) {
        // Managed fields are the bulk of an object and never read here.
        object.metadata.managed_fields = None;
        let key = ObjectKey::of(&object);
        let object = Arc::new(object);
        let previous = self.write().insert(key.clone(), object.clone());
        let status_only = previous.is_some_and(|previous| only_status_differs(&previous, &object));
        self.notify(key, status_only);
    }

    fn delete(&self, object: &DynamicObject) {
        let key = ObjectKey::of(object);
        self.write().remove(&key);
        self.notify(key, false);
    }

    fn replace(&self, namespace: Option<&str>, objects: Vec<DynamicObject>) {
        let mut changed = Vec::new();
        {
            let mut store = self.write();
            let fresh: HashSet<ObjectKey> = objects.iter().map(ObjectKey::of).collect();
            store.retain(|key, _| {
                let in_stream = namespace.is_none_or(|ns| key.namespace == ns);
                let keep = !in_stream || fresh.contains(key);
                if !keep {
                    changed.push((key.clone(), false));
                }
                keep
            });
            for mut object in objects {
                object.metadata.managed_fields = None;
                let key = ObjectKey::of(&object);
                let object = Arc::new(object);
                match store.insert(key.clone(), object.clone()) {
                    // Every write changes the resource version: the same
                    // one means nothing happened while the watch was down.
                    Some(previous)
                        if previous.metadata.resource_version.is_some()
                            && previous.metadata.resource_version == object.metadata.resource_version => {}
                    Some(previous) => changed.push((key, only_status_differs(&previous, &object))),
                    None => changed.push((key, false)),
                }
            }
        }
        for (key, status_only) in changed {
            self.notify(key, status_only);
        }
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<DynamicObject>> {
        self.read().get(key).cloned()
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<DynamicObject>> {
        self.read().values().cloned().collect()
    }

    /// Objects in one namespace.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<DynamicObject>> {
        self.read()
            .iter()
            .filter(|(k, _)| k.namespace == namespace)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Objects as they change. A receiver that falls behind gets `Lagged`
    /// and should treat every object as changed.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Waits until every stream listed its objects once.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.subscribe();
        let streams = self.streams;
        let _ = synced.wait_for(|n| *n >= streams).await;
    }

    /// Whether every stream listed its objects once.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow() >= self.streams
    }
}

/// How long a watch waits before it tries again: 0.5 s doubling to 5 s,
/// jittered, back to 0.5 s after any event. kube-rs' default grows to 30 s
/// and resets only after two quiet minutes, so after an API-server outage
/// of 30 s the watches resumed up to 35 s after the server was back.
struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(500);
    const CAP: Duration = Duration::from_secs(5);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: Self::FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(Self::CAP);
        // Drawn from the upper half, so that the watches of many kinds do
        // not come back in lockstep.
        Some(delay.mul_f64(rand::rng().random_range(0.5..=1.0)))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Whether `new` differs from `old` in nothing but its status, its resource
/// version and the host's own finalizer added. Metadata a reconcile reads
/// (generation, labels, annotations, other finalizers, deletion, owners) and
/// every other top-level field count. The finalizer is added by the reconcile
/// that goes on with the object it got back, so its event brings nothing
/// new: requeueing on it cost every new resource a second reconcile.
fn only_status_differs(old: &DynamicObject, new: &DynamicObject) -> bool {
    let (a, b) = (&old.metadata, &new.metadata);
    let same_metadata = a.generation == b.generation
        && a.labels == b.labels
        && a.annotations == b.annotations
        && (a.finalizers == b.finalizers || only_ours_added(a.finalizers.as_deref(), b.finalizers.as_deref()))
        && a.deletion_timestamp == b.deletion_timestamp
        && a.owner_references == b.owner_references
        && a.uid == b.uid;
    same_metadata && without_status(&old.data) == without_status(&new.data)
}

/// Whether `new` is `old` with the host's finalizer appended.
fn only_ours_added(old: Option<&[String]>, new: Option<&[String]>) -> bool {
    let old = old.unwrap_or_default();
    match new.unwrap_or_default().split_last() {
        Some((last, rest)) => last == super::FINALIZER && rest == old && !old.iter().any(|f| f == super::FINALIZER),
        None => false,
    }
}

fn without_status(data: &serde_json::Value) -> Vec<(&String, &serde_json::Value)> {
    data.as_object()
        .map(|fields| fields.iter().filter(|(name, _)| *name != "status").collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(generation: i64, data: serde_json::Value) -> DynamicObject {
        let mut object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "keycloak.wasmop.dev/v1alpha1", "kind": "KeycloakRealm",
            "metadata": {"name": "shop", "namespace": "platform", "uid": "u1", "generation": generation},
        }))
        .expect("object");
        object.data = data;
        object
    }

    fn informer() -> (Informer, broadcast::Receiver<Change>) {
        let (changes, receiver) = broadcast::channel(64);
        let (synced, _) = watch::channel(0);
        let informer = Informer {
            resource: ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
            objects: RwLock::new(HashMap::new()),
            changes,
            synced,
            streams: 1,
        };
        (informer, receiver)
    }

    fn named(name: &str, resource_version: &str, data: serde_json::Value) -> DynamicObject {
        let mut object = object(1, data);
        object.metadata.name = Some(name.into());
        object.metadata.resource_version = Some(resource_version.into());
        object
    }

    fn drain(receiver: &mut broadcast::Receiver<Change>) -> Vec<Change> {
        std::iter::from_fn(|| receiver.try_recv().ok()).collect()
    }

    #[test]
    fn a_relist_announces_only_what_changed_while_the_watch_was_down() {
        let (informer, mut changes) = informer();
        let spec = json!({"spec": {"realmName": "shop"}});
        informer.replace(
            Some("platform"),
            vec![
                named("a", "1", spec.clone()),
                named("b", "2", spec.clone()),
                named("c", "3", spec.clone()),
            ],
        );
        assert_eq!(drain(&mut changes).len(), 3, "the first list announces every object");

        let respecced = json!({"spec": {"realmName": "shop", "enabled": false}});
        let with_status = json!({"spec": {"realmName": "shop"}, "status": {"observedGeneration": 1}});
        informer.replace(
            Some("platform"),
            vec![
                named("a", "1", spec.clone()),
                named("b", "4", respecced),
                named("d", "5", spec),
            ],
        );
        let mut seen = drain(&mut changes);
        seen.sort_by(|x, y| x.key.cmp(&y.key));
        let keys: Vec<&str> = seen.iter().map(|c| c.key.name.as_str()).collect();
        assert_eq!(
            keys,
            ["b", "c", "d"],
            "unchanged `a` is not announced; gone `c` and new `d` are"
        );
        assert!(seen.iter().all(|c| !c.status_only));

        informer.replace(Some("platform"), vec![named("a", "6", with_status)]);
        let seen = drain(&mut changes);
        let a = seen.iter().find(|c| c.key.name == "a").expect("a is announced");
        assert!(a.status_only, "a status written while the watch was down is told apart");
    }

    #[test]
    fn the_watch_backoff_is_capped_and_starts_over_after_an_event() {
        let mut backoff = WatchBackoff::default();
        let delays: Vec<Duration> = (0..8).filter_map(|_| backoff.next()).collect();
        assert!(delays.iter().all(|d| *d <= WatchBackoff::CAP));
        assert!(delays[7] >= WatchBackoff::CAP / 2);
        backoff.reset();
        assert!(backoff.next().is_some_and(|d| d <= WatchBackoff::FIRST));
    }

    #[test]
    fn a_status_write_is_told_apart_from_every_other_change() {
        let before = object(
            1,
            json!({"spec": {"realmName": "shop"}, "status": {"observedGeneration": 0}}),
        );
        let status = object(
            1,
            json!({"spec": {"realmName": "shop"}, "status": {"observedGeneration": 1}}),
        );
        assert!(only_status_differs(&before, &status));

        let spec = object(
            2,
            json!({"spec": {"realmName": "shop", "enabled": false}, "status": {}}),
        );
        assert!(!only_status_differs(&before, &spec));

        let mut annotated = status.clone();
        annotated
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert("keycloak.wasmop.dev/rotate-secret".into(), "1".into());
        assert!(!only_status_differs(&status, &annotated));

        let mut deleting: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "keycloak.wasmop.dev/v1alpha1", "kind": "KeycloakRealm",
            "metadata": {"name": "shop", "namespace": "platform", "uid": "u1", "generation": 1,
                         "deletionTimestamp": "2026-11-26T00:00:00Z"},
        }))
        .expect("object");
        deleting.data = status.data.clone();
        assert!(!only_status_differs(&status, &deleting));
    }

    #[test]
    fn the_hosts_own_finalizer_added_brings_nothing_to_reconcile() {
        let before = object(1, json!({"spec": {"realmName": "shop"}}));
        let with = |finalizers: &[&str]| {
            let mut object = before.clone();
            object.metadata.finalizers = Some(finalizers.iter().map(|f| (*f).to_owned()).collect());
            object
        };
        assert!(only_status_differs(&before, &with(&[crate::controller::FINALIZER])));
        assert!(only_status_differs(
            &with(&["other"]),
            &with(&["other", crate::controller::FINALIZER])
        ));
        // Someone else's finalizer, or ours taken away, is a change.
        assert!(!only_status_differs(&before, &with(&["other"])));
        assert!(!only_status_differs(&with(&[crate::controller::FINALIZER]), &before));
    }
}
