//! Reconciling one resource: resolve and authorize its Keycloak target, call
//! the component in a fresh sandbox, apply what it returns (children,
//! status, Events), and decide when to look again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keycloak_operator_api::reasons;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::children::{self, Parent, SyncError};
use super::informer::ObjectKey;
use super::output;
use super::status::Verdict;
use super::{FIELD_MANAGER, FINALIZER, KindController};
use crate::capability::{Preparation, Refusal};
use crate::runtime::imports::{CallContext, CallStats};
use crate::runtime::model::{
    Condition, Detail, Event, EventType, Outcome, ReconcileError, ReconcileRequest, ReconcileResponse,
};
use crate::runtime::{CallFailure, LoadedComponent};

/// Annotation that lets a resource be deleted without cleanup in Keycloak:
/// the escape hatch when Keycloak will never come back.
pub const SKIP_CLEANUP_ANNOTATION: &str = "keycloak.wasmop.dev/skip-cleanup";

/// When to look at a resource again.
enum Requeue {
    /// After the per-object backoff.
    Backoff,
    /// After the resync period (with jitter).
    Resync,
    /// After this delay at the latest.
    After(Duration),
    /// Only when it changes.
    Never,
}

/// One call, prepared: the request, the imports, the dependency it relies on.
pub(super) struct Prepared {
    /// What the component is given.
    pub(super) request: ReconcileRequest,
    /// What it may use.
    pub(super) call: CallContext,
    /// The dependency its capabilities named (`Keycloak ns/name`).
    pub(super) dependency: Option<String>,
}

/// What one reconcile concluded.
pub(super) struct Conclusion {
    pub(super) verdict: Verdict,
    pub(super) degraded: Option<Detail>,
    pub(super) fields: Option<Map<String, Value>>,
    pub(super) identity: bool,
    pub(super) events: Vec<Event>,
    pub(super) extra: Vec<Condition>,
    requeue: Requeue,
}

impl Conclusion {
    fn new(verdict: Verdict, requeue: Requeue) -> Self {
        Conclusion {
            verdict,
            degraded: None,
            fields: None,
            identity: false,
            events: Vec::new(),
            extra: Vec::new(),
            requeue,
        }
    }
}

fn failure_detail(failure: &CallFailure) -> Detail {
    let reason = match failure {
        CallFailure::Trapped(_) | CallFailure::Instantiate(_) => reasons::COMPONENT_TRAPPED,
        CallFailure::TimedOut { .. } => reasons::COMPONENT_TIMED_OUT,
        CallFailure::OutOfMemory { .. } => reasons::COMPONENT_OUT_OF_MEMORY,
    };
    Detail::new(reason, failure.to_string())
}

fn has_finalizer(object: &DynamicObject) -> bool {
    object.finalizers().iter().any(|f| f == FINALIZER)
}

impl KindController {
    pub(super) fn api(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.shared.client.clone(), namespace, &self.resource)
    }

    /// Reconciles one key; returns when to look again, if at all.
    pub(super) async fn reconcile(&self, key: &ObjectKey) -> Option<Duration> {
        let Some(object) = self.parent.get(key) else {
            self.backoff.reset(key);
            self.shared.shadow.forget(&self.kind, &key.to_string());
            self.slot.forget_reconciled(&key.to_string());
            for capability in &self.shared.capabilities {
                capability.departed(&self.kind, key);
            }
            return None;
        };
        let component = self.slot.current();
        let started = Instant::now();
        let (conclusion, stats) = if object.metadata.deletion_timestamp.is_some() {
            self.finalize(&object, &component).await
        } else {
            self.converge(object.clone(), &component).await
        };
        let kind = self.kind.as_str();
        let metrics = &self.shared.metrics;
        metrics
            .reconcile_duration
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
        metrics
            .reconcile_keycloak_duration
            .with_label_values(&[kind])
            .observe(stats.keycloak_time.as_secs_f64());
        metrics
            .reconciles
            .with_label_values(&[kind, conclusion.verdict.result_label()])
            .inc();
        if !matches!(conclusion.verdict, Verdict::Ready(_)) {
            metrics
                .reconcile_errors
                .with_label_values(&[kind, &conclusion.verdict.detail().reason])
                .inc();
        }
        let requeue = match conclusion.requeue {
            Requeue::Never => None,
            Requeue::Backoff => Some(self.backoff.failed(key)),
            Requeue::Resync => {
                self.backoff.reset(key);
                Some(self.resync_delay())
            }
            Requeue::After(delay) => {
                self.backoff.reset(key);
                Some(delay.min(self.resync_delay()))
            }
        };
        self.slot.record_reconciled(&component.digest, &key.to_string());
        let serving_failed = !matches!(conclusion.verdict, Verdict::Ready(_) | Verdict::Progressing(_));
        if let Some(current) = self.parent.get(key) {
            // The generation is the one reconciled, which may be older than
            // the object now in the cache: never claim a spec not yet applied.
            self.publish(&current, object.metadata.generation, &component, conclusion)
                .await;
        }
        if object.metadata.deletion_timestamp.is_none()
            && let Some(candidate) = self.slot.candidate()
        {
            self.rehearse(&object, &candidate.component, serving_failed).await;
        }
        requeue
    }

    /// The resync period, spread by ±10% so resources do not resync in lockstep.
    fn resync_delay(&self) -> Duration {
        self.shared
            .settings
            .resync_period
            .mul_f64(rand::rng().random_range(0.9..1.1))
    }

    /// Prepares one call of `component` for `object`: every capability adds
    /// what it gives (or refuses the resource), then the request is built
    /// from the caches.
    pub(super) fn prepare(&self, component: &LoadedComponent, object: &DynamicObject) -> Result<Prepared, Refusal> {
        let description = &component.description;
        let mut preparation = Preparation::new(object, &self.kind, description, &component.grants, &self.parent);
        for capability in &self.shared.capabilities {
            capability.prepare(&mut preparation)?;
        }
        let namespace = object.namespace().unwrap_or_default();
        let to_json = |o: &Arc<DynamicObject>| serde_json::to_string(&**o).unwrap_or_default();
        let caches = self.shared.children.ensure(&description.child_kinds);
        let uid = object.uid().unwrap_or_default();
        let children = children::observed(&caches, &namespace, &uid)
            .iter()
            .map(to_json)
            .collect();
        let mut related = std::mem::take(&mut preparation.related);
        if !description.related_kinds.is_empty() {
            let caches = self.shared.children.ensure(&description.related_kinds);
            related.extend(
                children::labelled_for(&caches, &namespace, &object.name_any())
                    .iter()
                    .map(to_json),
            );
        }
        Ok(Prepared {
            request: ReconcileRequest {
                parent: serde_json::to_string(object).unwrap_or_default(),
                children,
                related,
                target: preparation.target.take(),
            },
            call: CallContext {
                component: component.label(),
                resource: format!("{} {}", self.resource.kind, ObjectKey::of(object)),
                keycloak: preparation.keycloak.take(),
                secrets: preparation.secrets.take(),
                stats: CallStats::default(),
            },
            dependency: preparation.dependency.take(),
        })
    }

    /// What the capabilities make of a call's outcome: `Degraded` when a
    /// dependency failed.
    fn degraded(&self, stats: &CallStats, dependency: Option<&str>) -> Option<Detail> {
        self.shared
            .capabilities
            .iter()
            .find_map(|capability| capability.degraded(stats, dependency))
    }

    fn refused(refusal: Refusal) -> Conclusion {
        match refusal {
            // The referenced object may appear (GitOps applies in any order).
            Refusal::Missing(detail) => Conclusion::new(Verdict::Retrying(detail), Requeue::Backoff),
            Refusal::Denied(detail) | Refusal::Invalid(detail) => {
                Conclusion::new(Verdict::Stalled(detail), Requeue::Resync)
            }
        }
    }

    async fn converge(&self, mut object: Arc<DynamicObject>, component: &LoadedComponent) -> (Conclusion, CallStats) {
        let description = &component.description;
        if description.finalizer && !has_finalizer(&object) {
            // Before anything reaches Keycloak, so cleanup is guaranteed.
            match self.add_finalizer(&object).await {
                Ok(updated) => object = Arc::new(updated),
                Err(error) => {
                    let detail = Detail::new(reasons::APPLY_FAILED, format!("cannot add the finalizer: {error}"));
                    return (
                        Conclusion::new(Verdict::Retrying(detail), Requeue::Backoff),
                        CallStats::default(),
                    );
                }
            }
        }
        let prepared = match self.prepare(component, &object) {
            Ok(prepared) => prepared,
            Err(refusal) => return (Self::refused(refusal), CallStats::default()),
        };
        let called = component.reconcile(prepared.call, &prepared.request).await;
        let degraded = self.degraded(&called.stats, prepared.dependency.as_deref());
        let mut conclusion = match (called.result, called.stats.refusal.clone()) {
            // A request the host refused decides, whatever the component made
            // of the refusal: ignored it, or turned it into an error of its own.
            (Ok(_), Some(refusal)) => Conclusion::new(Verdict::Stalled(refusal), Requeue::Resync),
            (Err(failure), _) => {
                tracing::warn!(kind = %self.kind, resource = %ObjectKey::of(&object), component = %component.label(), %failure, "component failed");
                Conclusion::new(Verdict::Stalled(failure_detail(&failure)), Requeue::Backoff)
            }
            (Ok(Err(error)), None) => match output::check_error(&error) {
                Ok(()) => Self::from_error(error),
                Err(invalid) => Self::invalid_output(invalid),
            },
            (Ok(Ok(response)), None) => match output::check(&response) {
                Ok(()) => self.accept(&object, component, response).await,
                Err(invalid) => Self::invalid_output(invalid),
            },
        };
        conclusion.degraded = degraded;
        conclusion.identity = true;
        (conclusion, called.stats)
    }

    /// Nothing of an answer the host will not apply is written; it is
    /// retried with backoff, since a component may fail like this only for
    /// some inputs.
    fn invalid_output(invalid: output::InvalidOutput) -> Conclusion {
        let detail = Detail::new(reasons::INVALID_COMPONENT_OUTPUT, invalid.to_string());
        Conclusion::new(Verdict::Stalled(detail), Requeue::Backoff)
    }

    fn from_error(error: ReconcileError) -> Conclusion {
        match error {
            ReconcileError::Transient(detail) => Conclusion::new(Verdict::Retrying(detail), Requeue::Backoff),
            ReconcileError::Permanent(detail) | ReconcileError::InvalidSpec(detail) => {
                Conclusion::new(Verdict::Stalled(detail), Requeue::Resync)
            }
        }
    }

    /// Applies a successful response: children first, then the verdict.
    async fn accept(
        &self,
        object: &DynamicObject,
        component: &LoadedComponent,
        response: ReconcileResponse,
    ) -> Conclusion {
        let fields = match serde_json::from_str::<Value>(&response.status) {
            Ok(Value::Object(fields)) => fields,
            Ok(Value::Null) => Map::new(),
            _ => {
                let detail = Detail::new(
                    reasons::INVALID_COMPONENT_OUTPUT,
                    "the component's status is not a JSON object",
                );
                return Conclusion::new(Verdict::Stalled(detail), Requeue::Backoff);
            }
        };
        let namespace = object.namespace().unwrap_or_default();
        let uid = object.uid().unwrap_or_default();
        let name = object.name_any();
        if let Some(kind) = ungranted_child(component, &response.children) {
            let detail = Detail::new(
                reasons::CHILD_KIND_NOT_GRANTED,
                format!(
                    "the component returned a {kind} child, a kind its ReconcilerComponent does not grant (spec.childKinds)"
                ),
            );
            return Conclusion::new(Verdict::Stalled(detail), Requeue::Resync);
        }
        let declared = &component.description.child_kinds;
        if !declared.is_empty() || !response.children.is_empty() {
            let caches = self.shared.children.ensure(declared);
            let observed = children::observed(&caches, &namespace, &uid);
            let parent = Parent {
                api_version: &self.resource.api_version,
                kind: &self.resource.kind,
                name: &name,
                namespace: &namespace,
                uid: &uid,
            };
            let synced = children::sync(
                &self.shared.client,
                FIELD_MANAGER,
                &parent,
                declared,
                &response.children,
                &observed,
            )
            .await;
            match synced {
                Ok((_, pruned)) if pruned > 0 => {
                    tracing::info!(kind = %self.kind, resource = %name, pruned, "pruned children no longer desired")
                }
                Ok(_) => {}
                Err(SyncError::Invalid(error)) => {
                    let detail = Detail::new(reasons::INVALID_COMPONENT_OUTPUT, error.to_string());
                    return Conclusion::new(Verdict::Stalled(detail), Requeue::Backoff);
                }
                Err(SyncError::Conflict(message)) => {
                    let detail = Detail::new(reasons::CHILD_CONFLICT, message);
                    return Conclusion::new(Verdict::Stalled(detail), Requeue::Resync);
                }
                Err(SyncError::Apply(message)) => {
                    return Conclusion::new(
                        Verdict::Retrying(Detail::new(reasons::APPLY_FAILED, message)),
                        Requeue::Backoff,
                    );
                }
            }
        }
        if !response.drift_corrected.is_empty() {
            self.shared
                .metrics
                .drift_corrections
                .with_label_values(&[&self.kind])
                .inc_by(response.drift_corrected.len() as u64);
        }
        let hint = response
            .requeue_after_seconds
            .map(|s| Duration::from_secs(u64::from(s.max(1))));
        let (verdict, requeue) = match response.outcome {
            Outcome::Ready(detail) => (Verdict::Ready(detail), hint.map_or(Requeue::Resync, Requeue::After)),
            Outcome::Progressing(detail) => (
                Verdict::Progressing(detail),
                Requeue::After(hint.unwrap_or(self.shared.settings.progressing_requeue)),
            ),
            Outcome::Stalled(detail) => (Verdict::Stalled(detail), hint.map_or(Requeue::Resync, Requeue::After)),
        };
        let mut conclusion = Conclusion::new(verdict, requeue);
        conclusion.fields = Some(fields);
        conclusion.events = response.events;
        conclusion.extra = response.conditions;
        conclusion
    }

    async fn finalize(&self, object: &DynamicObject, component: &LoadedComponent) -> (Conclusion, CallStats) {
        let released = |reason: &str, message: String| {
            let mut c = Conclusion::new(
                Verdict::Progressing(Detail::new("Deleting", "cleanup finished")),
                Requeue::Never,
            );
            c.events.push(Event {
                event_type: EventType::Warning,
                reason: reason.into(),
                action: "Delete".into(),
                message,
            });
            c
        };
        if !has_finalizer(object) {
            return (
                Conclusion::new(
                    Verdict::Progressing(Detail::new("Deleting", "being deleted")),
                    Requeue::Never,
                ),
                CallStats::default(),
            );
        }
        let skip = object
            .annotations()
            .get(SKIP_CLEANUP_ANNOTATION)
            .is_some_and(|v| v == "true");
        let mut stats = CallStats::default();
        let mut conclusion = if !component.description.finalizer || skip {
            let mut c = Conclusion::new(
                Verdict::Progressing(Detail::new("Deleting", "no cleanup needed")),
                Requeue::Never,
            );
            if skip {
                c = released(
                    "CleanupSkipped",
                    format!("{SKIP_CLEANUP_ANNOTATION} is set: nothing was cleaned up in Keycloak"),
                );
            }
            c
        } else {
            match self.prepare(component, object) {
                // Never block deletion on a Keycloak or realm that is gone.
                Err(Refusal::Missing(detail)) | Err(Refusal::Denied(detail)) | Err(Refusal::Invalid(detail)) => {
                    released(
                        "CleanupSkipped",
                        format!("{}; nothing to clean up in Keycloak", detail.message),
                    )
                }
                Ok(prepared) => {
                    let called = component.finalize(prepared.call, &prepared.request).await;
                    stats = called.stats.clone();
                    match called.result {
                        Ok(Ok(response)) => {
                            let mut c = Conclusion::new(
                                Verdict::Progressing(Detail::new("Deleting", "cleanup finished")),
                                Requeue::Never,
                            );
                            // The cleanup is done: Events the API server would
                            // refuse are dropped rather than holding it up.
                            match output::check_events(&response.events) {
                                Ok(()) => c.events = response.events,
                                Err(invalid) => {
                                    tracing::warn!(kind = %self.kind, resource = %ObjectKey::of(object), %invalid, "dropped the cleanup's Events")
                                }
                            }
                            c
                        }
                        Ok(Err(ReconcileError::Transient(detail))) => {
                            let mut c = Conclusion::new(Verdict::Retrying(detail), Requeue::Backoff);
                            c.degraded = self.degraded(&stats, prepared.dependency.as_deref());
                            return (c, stats);
                        }
                        // Nothing the operator can retry: let the resource go,
                        // and say so loudly.
                        Ok(Err(ReconcileError::Permanent(detail) | ReconcileError::InvalidSpec(detail))) => released(
                            "CleanupFailed",
                            format!("cleanup failed and will not be retried: {}", detail.message),
                        ),
                        Err(failure) => {
                            return (
                                Conclusion::new(Verdict::Stalled(failure_detail(&failure)), Requeue::Backoff),
                                stats,
                            );
                        }
                    }
                }
            }
        };
        if let Err(error) = self.remove_finalizer(object).await {
            tracing::warn!(kind = %self.kind, resource = %ObjectKey::of(object), %error, "cannot remove the finalizer; retrying");
            conclusion.requeue = Requeue::Backoff;
        }
        (conclusion, stats)
    }

    async fn add_finalizer(&self, object: &DynamicObject) -> Result<DynamicObject, kube::Error> {
        let mut finalizers = object.finalizers().to_vec();
        finalizers.push(FINALIZER.to_owned());
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
        self.api(&object.namespace().unwrap_or_default())
            .patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
    }

    async fn remove_finalizer(&self, object: &DynamicObject) -> Result<(), kube::Error> {
        let finalizers: Vec<&String> = object.finalizers().iter().filter(|f| *f != FINALIZER).collect();
        // The resourceVersion makes this fail rather than drop a finalizer
        // someone else added meanwhile.
        let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
        match self
            .api(&object.namespace().unwrap_or_default())
            .patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// The kind (`apiVersion/Kind`) of the first child the component may not
/// create under its current grants. A child that is not even JSON is left
/// to the children module, which names what is wrong with it.
fn ungranted_child(component: &LoadedComponent, children: &[String]) -> Option<String> {
    children.iter().find_map(|text| {
        let child: serde_json::Value = serde_json::from_str(text).ok()?;
        let (api_version, kind) = (child["apiVersion"].as_str()?, child["kind"].as_str()?);
        (!component.may_create_child(api_version, kind)).then(|| format!("{api_version}/{kind}"))
    })
}
