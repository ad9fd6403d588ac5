//! The `Keycloak` reconciler component (external form): checks that the
//! Keycloak answers with the operator's credentials and reports its version.
//! The host owns the connection; this component only asks it questions.

use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::{
    Capability, Description, KeycloakScope, ReconcileError, Reconciler, Request, Response, keycloak,
};
use serde_json::{Value, json};

/// How often a healthy Keycloak is checked again, in seconds.
const HEALTH_INTERVAL_SECONDS: u32 = 60;

/// The shipped component.
pub struct KeycloakReconciler;

impl Reconciler for KeycloakReconciler {
    fn describe() -> Description {
        Description {
            name: "keycloak-operator/keycloak".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            group: keycloak_operator_api::GROUP.into(),
            kind: "Keycloak".into(),
            plural: "keycloaks".into(),
            versions: vec![keycloak_operator_api::VERSION.into()],
            child_kinds: vec![],
            capabilities: vec![Capability::KeycloakAdmin],
            keycloak_scope: KeycloakScope::Instance,
            finalizer: false,
            crd: Some(include_str!("../../../crds/keycloaks.keycloak.wasmop.dev.yaml").into()),
        }
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        let info = keycloak::get("/serverinfo", &[])?.ok_or_else(|| {
            transient(
                "ServerInfoMissing",
                "Keycloak has no server-info endpoint at /admin/serverinfo",
            )
        })?;
        let version = info
            .pointer("/systemInfo/version")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        let url = request.target.as_ref().map(|t| t.url.as_str()).unwrap_or_default();
        Ok(Response::ready(
            "Connected",
            format!("Keycloak {version} answers at {url} with the operator's credentials"),
        )
        .status(json!({ "version": version }))
        .requeue_after(HEALTH_INTERVAL_SECONDS))
    }
}

#[cfg(feature = "export")]
keycloak_operator_sdk::export_reconciler!(KeycloakReconciler);
