//! What a reconcile leaves on its resource: the status (written only when
//! it changed, by server-side apply) and the Events.

use keycloak_operator_api::reasons;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::informer::ObjectKey;
use super::reconcile::Conclusion;
use super::status::{self, StatusInput, Verdict};
use super::{FIELD_MANAGER, KindController};
use crate::runtime::LoadedComponent;
use crate::runtime::model::{Detail, Event, EventType};

impl KindController {
    /// Writes the status (only when it changed) and records the Events.
    pub(super) async fn publish(
        &self,
        object: &DynamicObject,
        generation: Option<i64>,
        component: &LoadedComponent,
        conclusion: Conclusion,
    ) {
        let current = object.data.get("status");
        let previous_reason = status::current_ready_reason(current);
        let deleting = object.metadata.deletion_timestamp.is_some();
        let mut events = conclusion.events;
        if !matches!(conclusion.verdict, Verdict::Ready(_) | Verdict::Progressing(_))
            && previous_reason.as_deref() != Some(conclusion.verdict.detail().reason.as_str())
        {
            // One Warning per change of reason, not one per retry.
            let detail = conclusion.verdict.detail();
            events.push(Event {
                event_type: EventType::Warning,
                reason: detail.reason.clone(),
                action: "Reconcile".into(),
                message: detail.message.clone(),
            });
        }
        if !deleting || !matches!(conclusion.verdict, Verdict::Progressing(_)) {
            let desired = status::desired(
                StatusInput {
                    verdict: &conclusion.verdict,
                    degraded: conclusion.degraded,
                    extra: &conclusion.extra,
                    generation,
                    identity: conclusion.identity.then(|| component.identity()),
                    fields: conclusion.fields,
                    current,
                },
                &status::now(),
            );
            if current != Some(&desired) {
                let api = self.api(&object.namespace().unwrap_or_default());
                match self.write_status(&api, object, &desired).await {
                    Ok(_) => {}
                    // The schema of the kind refused what the component put in
                    // the status: say so in a status it accepts, or the
                    // resource would show nothing at all. (Server-side apply
                    // answers a field of the wrong type with a 500 about the
                    // typed patch, not a 422.)
                    Err(kube::Error::Api(status))
                        if status.code == 422
                            || (status.code == 500
                                && status.message.contains("failed to create typed patch object")) =>
                    {
                        let detail = Detail::new(
                            reasons::INVALID_COMPONENT_OUTPUT,
                            format!(
                                "the API server refused the status the component returned: {}",
                                status.message
                            ),
                        );
                        let fallback = status::desired(
                            StatusInput {
                                verdict: &Verdict::Stalled(detail),
                                degraded: None,
                                extra: &[],
                                generation,
                                identity: Some(component.identity()),
                                fields: None,
                                current,
                            },
                            &status::now(),
                        );
                        if let Err(error) = self.write_status(&api, object, &fallback).await {
                            tracing::warn!(kind = %self.kind, resource = %ObjectKey::of(object), %error, "cannot write status");
                        }
                    }
                    // 404 is usually a resource deleted meanwhile; if it is still
                    // there, its CRD has no status subresource, which an
                    // author must hear about rather than see nothing.
                    Err(kube::Error::Api(status)) if status.code == 404 => {
                        if let Ok(Some(_)) = api.get_opt(&object.name_any()).await {
                            tracing::warn!(kind = %self.kind, resource = %ObjectKey::of(object), "cannot write status: the kind's CRD has no status subresource");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(kind = %self.kind, resource = %ObjectKey::of(object), %error, "cannot write status")
                    }
                }
            }
        }
        for event in &events {
            self.shared.recorder.publish(object, &self.resource, event).await;
        }
    }

    async fn write_status(
        &self,
        api: &Api<DynamicObject>,
        object: &DynamicObject,
        status: &Value,
    ) -> Result<(), kube::Error> {
        let patch = json!({
            "apiVersion": self.resource.api_version,
            "kind": self.resource.kind,
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch_status(&object.name_any(), &params, &Patch::Apply(&patch))
            .await
            .map(|_| ())
    }
}
