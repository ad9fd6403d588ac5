//! A shadow candidate's rehearsal of one resource: the same request the
//! serving version got, a gateway that sends reads and records writes, and
//! nothing of its answer applied.

use std::sync::Arc;

use kube::api::DynamicObject;

use super::KindController;
use super::informer::ObjectKey;
use crate::delivery::{Rehearsal, ShadowGateway};
use crate::runtime::LoadedComponent;
use crate::runtime::imports::KeycloakGateway;
use crate::runtime::model::Outcome;

impl KindController {
    /// Reconciles `object` with `candidate` in shadow mode and records what
    /// it would have written. `serving_failed` tells whether the serving
    /// version failed on it just before, so that only the candidate's own
    /// failures count against it.
    pub(super) async fn rehearse(&self, object: &DynamicObject, candidate: &LoadedComponent, serving_failed: bool) {
        let key = ObjectKey::of(object);
        let Ok(mut prepared) = self.prepare(candidate, object) else {
            // The serving version met the same refusal: nothing to rehearse.
            return;
        };
        let shadow = prepared
            .call
            .keycloak
            .take()
            .map(|gateway| Arc::new(ShadowGateway::new(gateway, key.to_string())));
        prepared.call.keycloak = shadow.clone().map(|s| s as Arc<dyn KeycloakGateway>);
        let called = candidate.reconcile(prepared.call, &prepared.request).await;
        let result = match &called.result {
            Ok(Ok(response)) => match response.outcome {
                Outcome::Ready(_) => "ready",
                Outcome::Progressing(_) => "progressing",
                Outcome::Stalled(_) => "stalled",
            },
            Ok(Err(_)) | Err(_) => "failed",
        };
        let writes = shadow.map(|s| s.writes()).unwrap_or_default();
        let metrics = &self.shared.metrics;
        metrics.shadow_reconciles.with_label_values(&[&self.kind, result]).inc();
        metrics
            .shadow_writes
            .with_label_values(&[&self.kind])
            .inc_by(writes.len() as u64);
        if !writes.is_empty() {
            tracing::info!(kind = %self.kind, resource = %key, candidate = %candidate.label(), writes = writes.len(), "shadow candidate would write to Keycloak");
        }
        self.slot.record_reconciled(&candidate.digest, &key.to_string());
        self.shared.shadow.record(
            &self.kind,
            &candidate.digest,
            &key.to_string(),
            Rehearsal {
                writes,
                failed: result == "failed" && !serving_failed,
            },
        );
    }
}
