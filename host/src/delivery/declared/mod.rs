//! The `ReconcilerComponent` controller: which component serves which kind,
//! as declared in Kubernetes.
//!
//! Every replica runs it, so that a follower has the declared versions
//! compiled and loaded when it takes over; only the leader writes status.
//! For each declaration it pulls the pinned artifact (or takes it from the
//! local store), compiles and checks it, and swaps it in; a version that
//! fails a check never replaces the one serving. A rollback to the version
//! replaced is a swap of what is still loaded: no registry needed.

mod loader;
mod report;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keycloak_operator_api::{ReconcilerComponent, component_reasons};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::{broadcast::error::RecvError, watch};
use tokio_util::sync::CancellationToken;

use self::loader::{Failure, Loader, load_failure};
use super::oci::OciClient;
use super::shadow::ShadowReports;
use super::store::ArtifactStore;
use crate::controller::FIELD_MANAGER;
use crate::controller::backoff::Backoff;
use crate::controller::informer::{Informer, NamespaceScope, ObjectKey};
use crate::controller::queue::WorkQueue;
use crate::metrics::Metrics;
use crate::runtime::Policy;
use crate::runtime::registry::{Origin, Refresh, Registry, Slot};

/// How often a declaration's status is refreshed while nothing changes:
/// the counts of resources reconciled, and a candidate's planned writes.
const STATUS_REFRESH: Duration = Duration::from_secs(5);
/// What the controller needs from the operator.
pub struct DeliverySettings {
    /// The namespace pull Secrets are read from: the operator's own.
    pub operator_namespace: String,
    /// Only declarations with these labels are followed.
    pub label_selector: Option<String>,
    /// First retry delay after a failed pull.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_cap: Duration,
}

/// What the last look at one declaration found, for its status.
#[derive(Debug, Clone, Default)]
struct Outcome {
    /// Why the declared version does not serve, if it does not.
    serving: Option<Failure>,
    /// The serving version lacks capabilities it needs (grants taken away).
    missing_grants: Vec<String>,
    /// Why the candidate does not run, if it does not.
    candidate: Option<Failure>,
}

/// The controller.
pub struct Delivery {
    client: Client,
    registry: Arc<Registry>,
    loader: Loader,
    shadow: Arc<ShadowReports>,
    informer: Arc<Informer>,
    queue: WorkQueue,
    backoff: Backoff,
    /// The kind each declaration declared, to undo it when it goes.
    declared: Mutex<BTreeMap<String, String>>,
    outcomes: Mutex<BTreeMap<String, Outcome>>,
    /// Set once every declaration present at start was looked at.
    initial: watch::Sender<bool>,
}

fn resource() -> ApiResource {
    ApiResource::erase::<ReconcilerComponent>(&())
}

impl Delivery {
    /// Starts watching `ReconcilerComponent`s; runs until `cancel`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        client: Client,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        oci: OciClient,
        store: ArtifactStore,
        shadow: Arc<ShadowReports>,
        settings: DeliverySettings,
        leading: watch::Receiver<bool>,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let informer = Informer::spawn(
            client.clone(),
            resource(),
            false,
            &NamespaceScope::default(),
            settings.label_selector.as_deref(),
            cancel.clone(),
        );
        let backoff = Backoff::new(settings.backoff_base, settings.backoff_cap);
        let loader = Loader {
            client: client.clone(),
            registry: registry.clone(),
            metrics,
            oci,
            store,
            operator_namespace: settings.operator_namespace,
        };
        let delivery = Arc::new(Delivery {
            client,
            registry,
            loader,
            shadow,
            informer,
            queue: WorkQueue::new(),
            backoff,
            declared: Mutex::new(BTreeMap::new()),
            outcomes: Mutex::new(BTreeMap::new()),
            initial: watch::channel(false).0,
        });
        tokio::spawn(delivery.clone().run(leading, cancel));
        delivery
    }

    /// Waits until every declaration present at start has been acted on
    /// (its version serving, or refused), so that readiness is truthful.
    pub async fn wait_initial(&self) {
        let mut initial = self.initial.subscribe();
        let _ = initial.wait_for(|done| *done).await;
    }

    async fn run(self: Arc<Self>, mut leading: watch::Receiver<bool>, cancel: CancellationToken) {
        let mut changes = self.informer.subscribe();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = self.informer.wait_synced() => {}
        }
        // The declarations present at start, one after the other, before
        // readiness: a restart serves what was declared, not the built-ins.
        for object in self.informer.list() {
            let lead = *leading.borrow();
            self.reconcile(&ObjectKey::of(&object), lead).await;
        }
        self.initial.send_replace(true);
        self.enqueue_all();
        let worker = tokio::spawn(self.clone().work(leading.clone()));
        // Without an election nothing ever changes leadership.
        let mut election = true;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                change = changes.recv() => match change {
                    Ok(change) if change.status_only => {}
                    Ok(change) => self.queue.add(change.key),
                    Err(RecvError::Lagged(_)) => self.enqueue_all(),
                    Err(RecvError::Closed) => break,
                },
                // A new leader writes every status afresh.
                changed = leading.changed(), if election => match changed {
                    Ok(()) => self.enqueue_all(),
                    Err(_) => election = false,
                },
            }
        }
        self.queue.shut_down();
        let _ = worker.await;
    }

    fn enqueue_all(&self) {
        for object in self.informer.list() {
            self.queue.add(ObjectKey::of(&object));
        }
        // Declarations gone while nobody looked: undo them too.
        let gone: Vec<String> = self
            .declared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for name in gone {
            self.queue.add(ObjectKey::new("", &name));
        }
    }

    async fn work(self: Arc<Self>, leading: watch::Receiver<bool>) {
        while let Some(key) = self.queue.next().await {
            let lead = *leading.borrow();
            let requeue = self.reconcile(&key, lead).await;
            self.queue.done(&key);
            if let Some(delay) = requeue {
                self.queue.add_after(key, delay);
            }
        }
    }

    /// Acts on one declaration; returns when to look again.
    async fn reconcile(&self, key: &ObjectKey, leading: bool) -> Option<Duration> {
        let Some(object) = self.informer.get(key) else {
            self.forget(&key.name);
            return None;
        };
        let declaration: ReconcilerComponent = match serde_json::from_value(serde_json::to_value(&*object).ok()?) {
            Ok(declaration) => declaration,
            Err(error) => {
                // The CRD's schema makes this unlikely; say so rather than guess.
                let failure = Failure::stalled(
                    component_reasons::INVALID_COMPONENT,
                    format!("the resource does not match the ReconcilerComponent schema: {error}"),
                );
                self.remember(
                    &key.name,
                    Outcome {
                        serving: Some(failure),
                        ..Outcome::default()
                    },
                );
                if leading {
                    self.publish(&object, None).await;
                }
                return None;
            }
        };
        let kind = declaration.spec.kind.clone();
        // One declaration per kind: the oldest wins, the others wait.
        if let Some(winner) = self.older_declaration_of(&kind, &object) {
            self.forget(&key.name);
            self.remember(
                &key.name,
                Outcome {
                    serving: Some(Failure::stalled(
                        component_reasons::KIND_CONFLICT,
                        format!("ReconcilerComponent {winner} already declares {kind}; delete one of the two"),
                    )),
                    ..Outcome::default()
                },
            );
            if leading {
                self.publish(&object, None).await;
            }
            return None;
        }
        let previous_kind = self
            .declared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.name.clone(), kind.clone());
        if let Some(previous_kind) = previous_kind.filter(|k| k != &kind) {
            self.registry.undeclare(&previous_kind);
        }
        let outcome = self.converge(&key.name, &declaration).await;
        let requeue = if outcome.serving.as_ref().is_some_and(|f| f.transient)
            || outcome.candidate.as_ref().is_some_and(|f| f.transient)
        {
            Some(self.backoff.failed(key))
        } else {
            self.backoff.reset(key);
            Some(STATUS_REFRESH)
        };
        self.remember(&key.name, outcome);
        if leading {
            self.publish(&object, self.registry.slot(&kind)).await;
        }
        requeue
    }

    fn remember(&self, name: &str, outcome: Outcome) {
        self.outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), outcome);
    }

    /// The declaration `name` is gone: its kind returns to its built-in.
    fn forget(&self, name: &str) {
        self.outcomes.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        let kind = self.declared.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        if let Some(kind) = kind {
            self.shadow.clear(&kind);
            match self.registry.undeclare(&kind) {
                Refresh::Swapped { to, .. } => {
                    tracing::info!(kind, declaration = name, serving = %to, "declaration removed; the built-in serves again")
                }
                Refresh::Removed { .. } => {
                    tracing::info!(
                        kind,
                        declaration = name,
                        "declaration removed; the kind is no longer served"
                    )
                }
                _ => {}
            }
        }
    }

    /// The name of an older declaration of the same kind, if any.
    fn older_declaration_of(&self, kind: &str, object: &DynamicObject) -> Option<String> {
        let age = |o: &DynamicObject| (o.metadata.creation_timestamp.clone().map(|t| t.0), o.name_any());
        let mine = age(object);
        self.informer
            .list()
            .into_iter()
            .filter(|other| other.name_any() != object.name_any())
            .filter(|other| other.data.pointer("/spec/kind").and_then(Value::as_str) == Some(kind))
            .filter(|other| age(other) < mine)
            .map(|other| other.name_any())
            .min()
    }

    /// Makes the declared version serve and the candidate run, as far as
    /// their checks allow.
    async fn converge(&self, name: &str, declaration: &ReconcilerComponent) -> Outcome {
        let spec = &declaration.spec;
        let mut outcome = Outcome::default();
        let policy = match self.loader.policy(&spec.limits, &spec.grants, &spec.child_kinds) {
            Ok(policy) => policy,
            Err(failure) => {
                outcome.serving = Some(failure);
                return outcome;
            }
        };
        let origin = Origin::Declared {
            by: name.to_owned(),
            oci: spec.oci.clone(),
        };
        outcome.serving = self
            .serve(&spec.kind, origin, &policy, spec.pull_secret_name.as_deref())
            .await
            .err();
        if let Some(slot) = self.registry.slot(&spec.kind) {
            let serving = slot.serving();
            if matches!(&serving.origin, Origin::Declared { by, .. } if by == name) {
                outcome.missing_grants = serving.component.missing_grants(&policy);
            }
        }
        let candidate = spec.rollout.as_ref().and_then(|r| r.candidate.as_ref());
        match candidate {
            None => {
                self.registry.set_candidate(&spec.kind, None);
                self.shadow.clear(&spec.kind);
            }
            Some(candidate) => {
                let loaded = self
                    .loader
                    .load(&spec.kind, &candidate.oci, &policy, spec.pull_secret_name.as_deref())
                    .await;
                match loaded {
                    Ok(component) => self.registry.set_candidate(
                        &spec.kind,
                        Some((
                            component,
                            Origin::Declared {
                                by: name.to_owned(),
                                oci: candidate.oci.clone(),
                            },
                        )),
                    ),
                    Err(failure) => {
                        self.registry.set_candidate(&spec.kind, None);
                        self.shadow.clear(&spec.kind);
                        outcome.candidate = Some(failure);
                    }
                }
            }
        }
        outcome
    }

    /// Makes the version `origin` names serve `kind` under `policy`.
    async fn serve(
        &self,
        kind: &str,
        origin: Origin,
        policy: &Policy,
        pull_secret: Option<&str>,
    ) -> Result<(), Failure> {
        if let Some(slot) = self.registry.slot(kind) {
            let serving = slot.serving();
            if serving.origin == origin {
                // The same version: only its grants or limits may differ, and
                // they apply at once.
                if serving.component.policy() != *policy {
                    let component = serving.component.with_policy(policy).map_err(|e| load_failure(&e))?;
                    self.registry.declare(Arc::new(component), origin);
                }
                return Ok(());
            }
            if let Some(refresh) = self.registry.roll_back(kind, &origin, policy) {
                tracing::info!(
                    kind,
                    oci = origin.label(),
                    ?refresh,
                    "rolled back to the version loaded before"
                );
                return Ok(());
            }
        }
        let oci = origin.oci().unwrap_or_default().to_owned();
        match self.loader.load(kind, &oci, policy, pull_secret).await {
            Ok(component) => {
                self.registry.declare(component, origin);
                Ok(())
            }
            Err(failure) => {
                self.registry.count_rejected(kind);
                tracing::warn!(kind, oci, reason = failure.reason, message = %failure.message, "declared component refused; the serving version stays");
                // The version serving keeps serving, but never with more than
                // the grants now declared when it is this declaration's.
                if let Some(slot) = self.registry.slot(kind) {
                    self.restrict(&slot, &origin, policy);
                }
                Err(failure)
            }
        }
    }

    /// Applies a narrowed policy to the version this declaration put in
    /// place earlier, when a new version of it is refused.
    fn restrict(&self, slot: &Slot, origin: &Origin, policy: &Policy) {
        let serving = slot.serving();
        let (Origin::Declared { by, .. }, Origin::Declared { by: wanted, .. }) = (&serving.origin, origin) else {
            return;
        };
        if by != wanted || serving.component.policy() == *policy {
            return;
        }
        if let Ok(component) = serving.component.with_policy(policy) {
            self.registry.declare(Arc::new(component), serving.origin.clone());
        }
    }

    /// Writes the status of a declaration from its last outcome and what
    /// serves its kind.
    async fn publish(&self, object: &DynamicObject, slot: Option<Arc<Slot>>) {
        let name = object.name_any();
        let outcome = self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name)
            .cloned()
            .unwrap_or_default();
        let desired = report::desired_status(object, &outcome, slot.as_deref(), &self.shadow);
        if object.data.get("status") == Some(&desired) {
            return;
        }
        let patch = json!({
            "apiVersion": ReconcilerComponent::api_version(&()),
            "kind": ReconcilerComponent::kind(&()),
            "status": desired,
        });
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource());
        if let Err(error) = api
            .patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await
        {
            tracing::warn!(declaration = %name, %error, "cannot write the ReconcilerComponent's status");
        }
    }
}
