//! The `ReconcilerComponent` controller: which component serves which kind,
//! as declared in Kubernetes.
//!
//! Every replica runs it, so that a follower has the declared versions
//! compiled and loaded when it takes over; only the leader writes status.
//! For each declaration it pulls the pinned artifact (or takes it from the
//! local store), compiles and checks it, and swaps it in; a version that
//! fails a check never replaces the one serving. A rollback to the version
//! replaced is a swap of what is still loaded: no registry needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use keycloak_operator_api::{
    CandidateStatus, ComponentLimits, ComponentVersion, Grant, ReconcilerComponent, RolloutMode, component_reasons,
};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use oci_client::secrets::RegistryAuth;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast::error::RecvError, watch};
use tokio_util::sync::CancellationToken;

use super::oci::{OciClient, OciError, PinnedReference, PulledComponent};
use super::pull_secret::registry_auth;
use super::shadow::ShadowReports;
use super::store::ArtifactStore;
use crate::config::duration;
use crate::controller::FIELD_MANAGER;
use crate::controller::backoff::Backoff;
use crate::controller::informer::{Informer, NamespaceScope, ObjectKey};
use crate::controller::queue::WorkQueue;
use crate::controller::status::{self, StatusInput, Verdict};
use crate::metrics::Metrics;
use crate::runtime::model::{Capability, Condition, Detail};
use crate::runtime::registry::{Origin, Refresh, Registry, Slot};
use crate::runtime::{CallLimits, LoadError, LoadedComponent, Policy};

/// How often a declaration's status is refreshed while nothing changes:
/// the counts of resources reconciled, and a candidate's planned writes.
const STATUS_REFRESH: Duration = Duration::from_secs(5);
/// Condition type of the candidate's state.
const CANDIDATE_READY: &str = "CandidateReady";

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

/// Why a declared version is not serving.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    reason: &'static str,
    message: String,
    /// Retried with backoff (a registry down) rather than waiting for a
    /// change of the spec.
    transient: bool,
}

impl Failure {
    fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
            transient: false,
        }
    }

    fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
            transient: true,
        }
    }
}

/// What the last look at one declaration found, for its status.
#[derive(Debug, Clone, Default)]
struct Outcome {
    /// Why the declared version does not serve, if it does not.
    serving: Option<Failure>,
    /// The serving version lacks capabilities it needs (grants taken away).
    missing_grants: Vec<Capability>,
    /// Why the candidate does not run, if it does not.
    candidate: Option<Failure>,
}

/// The controller.
pub struct Delivery {
    client: Client,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    oci: OciClient,
    store: ArtifactStore,
    settings: DeliverySettings,
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

fn capability(grant: Grant) -> Capability {
    match grant {
        Grant::KeycloakAdmin => Capability::KeycloakAdmin,
        Grant::ReadSecrets => Capability::ReadSecrets,
    }
}

fn load_failure(error: &LoadError) -> Failure {
    let message = error.to_string();
    match error {
        LoadError::NotGranted { .. } => Failure::stalled(component_reasons::CAPABILITY_NOT_GRANTED, message),
        LoadError::InvalidDescription { .. } => Failure::stalled(component_reasons::INVALID_COMPONENT, message),
        LoadError::InvalidLimits { .. } => Failure::stalled(component_reasons::INVALID_LIMITS, message),
        LoadError::Read { .. } | LoadError::Compile { .. } | LoadError::Link { .. } | LoadError::Describe { .. } => {
            Failure::stalled(component_reasons::COMPILE_FAILED, message)
        }
    }
}

fn pull_failure(error: &OciError) -> Failure {
    let message = error.to_string();
    match error {
        OciError::Pull { .. } | OciError::Push { .. } => Failure::transient(component_reasons::PULL_FAILED, message),
        OciError::InvalidReference { .. } => Failure::stalled(component_reasons::PULL_FAILED, message),
        OciError::DigestMismatch { .. } => Failure::stalled(component_reasons::DIGEST_MISMATCH, message),
        OciError::NotAComponent { .. } => Failure::stalled(component_reasons::NOT_A_COMPONENT, message),
    }
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
        let delivery = Arc::new(Delivery {
            client,
            registry,
            metrics,
            oci,
            store,
            settings,
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

    fn policy(&self, limits: &ComponentLimits, grants: &[Grant]) -> Result<Policy, Failure> {
        let defaults = self.registry.runtime().default_limits();
        let time = |value: &Option<String>, default: Duration, field: &str| match value {
            None => Ok(default),
            Some(text) => duration::parse(text)
                .map_err(|e| Failure::stalled(component_reasons::INVALID_LIMITS, format!("spec.limits.{field}: {e}"))),
        };
        Ok(Policy {
            grants: grants.iter().copied().map(capability).collect::<BTreeSet<_>>(),
            limits: CallLimits {
                memory_bytes: limits
                    .memory_mib
                    .map_or(defaults.memory_bytes, |mib| (mib as usize) << 20),
                guest_time: time(&limits.guest_time_limit, defaults.guest_time, "guestTimeLimit")?,
                wall_time: time(&limits.wall_time_limit, defaults.wall_time, "wallTimeLimit")?,
            },
        })
    }

    /// Makes the declared version serve and the candidate run, as far as
    /// their checks allow.
    async fn converge(&self, name: &str, declaration: &ReconcilerComponent) -> Outcome {
        let spec = &declaration.spec;
        let mut outcome = Outcome::default();
        let policy = match self.policy(&spec.limits, &spec.grants) {
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
                outcome.missing_grants = serving.component.missing_grants(&policy.grants);
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
        match self.load(kind, &oci, policy, pull_secret).await {
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

    /// Pulls (or takes from the store), compiles and checks a version.
    async fn load(
        &self,
        kind: &str,
        oci: &str,
        policy: &Policy,
        pull_secret: Option<&str>,
    ) -> Result<Arc<LoadedComponent>, Failure> {
        let pinned = PinnedReference::parse(oci).map_err(|e| pull_failure(&e))?;
        let pulled = match self.store.get(&pinned.digest) {
            Some(pulled) => pulled,
            None => {
                let pulled = self.pull(&pinned, pull_secret).await?;
                self.store.put(&pinned.digest, &pulled);
                pulled
            }
        };
        let component = self
            .registry
            .runtime()
            .load_bytes(&pulled.bytes, Path::new(oci), policy)
            .await
            .map_err(|e| load_failure(&e))?;
        let served = component.description.kind_key();
        if served != kind {
            return Err(Failure::stalled(
                component_reasons::KIND_MISMATCH,
                format!(
                    "{oci} serves {served}, not {kind} ({}); a ReconcilerComponent declares one kind",
                    component.label()
                ),
            ));
        }
        Ok(Arc::new(component))
    }

    async fn pull(&self, pinned: &PinnedReference, pull_secret: Option<&str>) -> Result<PulledComponent, Failure> {
        let auth = match pull_secret {
            None => RegistryAuth::Anonymous,
            Some(name) => {
                let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.settings.operator_namespace);
                let namespace = &self.settings.operator_namespace;
                let secret = secrets.get_opt(name).await.map_err(|e| {
                    Failure::transient(
                        component_reasons::PULL_SECRET_INVALID,
                        format!("cannot read the pull Secret {namespace}/{name}: {e}"),
                    )
                })?;
                let secret = secret.ok_or_else(|| {
                    Failure::transient(
                        component_reasons::PULL_SECRET_INVALID,
                        format!("the pull Secret {namespace}/{name} does not exist (pull Secrets are read from the operator's namespace only)"),
                    )
                })?;
                registry_auth(&secret, pinned.registry())
                    .map_err(|m| Failure::stalled(component_reasons::PULL_SECRET_INVALID, m))?
            }
        };
        let started = std::time::Instant::now();
        let pulled = self.oci.pull(pinned, &auth).await;
        let result = if pulled.is_ok() { "pulled" } else { "failed" };
        self.metrics.component_pulls.with_label_values(&[result]).inc();
        self.metrics
            .component_pull_duration
            .observe(started.elapsed().as_secs_f64());
        pulled.map_err(|e| pull_failure(&e))
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
        let kind = object
            .data
            .pointer("/spec/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut fields = Map::new();
        let mut verdict = None;
        if let Some(slot) = &slot {
            let serving = slot.serving();
            let version = |component: &LoadedComponent, origin: &Origin| ComponentVersion {
                name: component.description.name.clone(),
                version: component.description.version.clone(),
                digest: component.digest.clone(),
                source: origin.label().to_owned(),
                resources_reconciled: slot.reconciled_count(&component.digest),
            };
            fields.insert("serving".into(), json!(version(&serving.component, &serving.origin)));
            if let Some(previous) = slot.previous() {
                fields.insert("previous".into(), json!(version(&previous.component, &previous.origin)));
            }
            if let Some(candidate) = slot.candidate() {
                let summary = self.shadow.summary(kind, &candidate.component.digest);
                let status = CandidateStatus {
                    name: candidate.component.description.name.clone(),
                    version: candidate.component.description.version.clone(),
                    digest: candidate.component.digest.clone(),
                    source: candidate.origin.label().to_owned(),
                    mode: RolloutMode::Shadow,
                    resources_reconciled: summary.resources,
                    resources_with_writes: summary.resources_with_writes,
                    resources_failing: summary.resources_failing,
                    planned_writes: summary.planned_writes,
                };
                fields.insert("candidate".into(), json!(status));
            }
            let declared_serves = matches!(&serving.origin, Origin::Declared { by, .. } if by == &name);
            if outcome.serving.is_none() && declared_serves {
                verdict = Some(if outcome.missing_grants.is_empty() {
                    Verdict::Ready(Detail::new(
                        component_reasons::SERVING,
                        format!(
                            "{} ({}) serves {kind}",
                            serving.component.label(),
                            serving.component.digest
                        ),
                    ))
                } else {
                    Verdict::Stalled(Detail::new(
                        component_reasons::CAPABILITY_NOT_GRANTED,
                        format!(
                            "{} serves {kind} without {}, which spec.grants no longer gives: its requests needing it are refused",
                            serving.component.label(),
                            outcome
                                .missing_grants
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ))
                });
            }
        }
        let verdict = verdict.unwrap_or_else(|| match &outcome.serving {
            Some(failure) => {
                let serving = slot
                    .as_ref()
                    .map(|s| {
                        format!(
                            "; {} ({}) keeps serving",
                            s.current().label(),
                            s.serving().origin.label()
                        )
                    })
                    .unwrap_or_default();
                let detail = Detail::new(failure.reason, format!("{}{serving}", failure.message));
                if failure.transient {
                    Verdict::Retrying(detail)
                } else {
                    Verdict::Stalled(detail)
                }
            }
            None => Verdict::Progressing(Detail::new(component_reasons::LOADING, "loading the declared version")),
        });
        let mut extra = Vec::new();
        let has_candidate = object
            .data
            .pointer("/spec/rollout/candidate")
            .is_some_and(|c| !c.is_null());
        if has_candidate {
            extra.push(match &outcome.candidate {
                None => Condition {
                    condition_type: CANDIDATE_READY.into(),
                    status: true,
                    detail: Detail::new(
                        component_reasons::SHADOWING,
                        "the candidate reconciles every resource in shadow mode; nothing it would write is sent",
                    ),
                },
                Some(failure) => Condition {
                    condition_type: CANDIDATE_READY.into(),
                    status: false,
                    detail: Detail::new(failure.reason, failure.message.clone()),
                },
            });
        }
        let current = object.data.get("status");
        let desired = status::desired(
            StatusInput {
                verdict: &verdict,
                degraded: None,
                extra: &extra,
                generation: object.metadata.generation,
                identity: None,
                fields: Some(fields),
                current,
            },
            &status::now(),
        );
        if current == Some(&desired) {
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
