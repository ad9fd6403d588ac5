//! The status of a declaration: which version serves its kind, the one it
//! replaced, the candidate and what it would write, and conditions in the
//! conventions of every kind.

use keycloak_operator_api::{CandidateStatus, ComponentVersion, RolloutMode, component_reasons};
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::{Map, Value, json};

use super::Outcome;
use crate::controller::status::{self, StatusInput, Verdict};
use crate::delivery::shadow::ShadowReports;
use crate::runtime::LoadedComponent;
use crate::runtime::model::{Condition, Detail};
use crate::runtime::registry::{Origin, Slot};

/// Condition type of the candidate's state.
const CANDIDATE_READY: &str = "CandidateReady";

/// The status `object` should have, from its last outcome and what serves
/// its kind now.
pub(super) fn desired_status(
    object: &DynamicObject,
    outcome: &Outcome,
    slot: Option<&Slot>,
    shadow: &ShadowReports,
) -> Value {
    let name = object.name_any();
    let kind = object
        .data
        .pointer("/spec/kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut fields = Map::new();
    let mut verdict = None;
    if let Some(slot) = slot {
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
            let summary = shadow.summary(kind, &candidate.component.digest);
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
                        "{} serves {kind} without {}, which spec.grants or spec.childKinds no longer give: what needs it is refused",
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
    status::desired(
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
    )
}
