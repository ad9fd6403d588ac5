//! The `Keycloak` reconciler component.
//!
//! External form: checks that the Keycloak answers with the operator's
//! credentials and reports its version. Managed form: returns the Deployment,
//! Services, bootstrap admin Secret and the rest that run Keycloak, follows
//! the rollout, and once Keycloak answers, gives the operator a service-account
//! client of its own so that the bootstrap admin is used only once.

mod external;
pub mod managed;

use keycloak_operator_api::Keycloak;
use keycloak_operator_sdk::{
    Capability, Description, KeycloakScope, KindRef, ReconcileError, Reconciler, Request, Response,
};

fn kind(api_version: &str, kind: &str, plural: &str) -> KindRef {
    KindRef {
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

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
            child_kinds: vec![
                kind("apps/v1", "Deployment", "deployments"),
                kind("v1", "Service", "services"),
                kind("v1", "Secret", "secrets"),
                kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
                kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
                kind("networking.k8s.io/v1", "Ingress", "ingresses"),
            ],
            related_kinds: vec![kind("v1", "Pod", "pods")],
            capabilities: vec![Capability::KeycloakAdmin, Capability::ReadSecrets],
            keycloak_scope: KeycloakScope::Instance,
            finalizer: false,
            crd: Some(include_str!("../../../crds/keycloaks.keycloak.wasmop.dev.yaml").into()),
        }
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        let resource: Keycloak = request.parent_as()?;
        match &resource.spec.managed {
            Some(managed) => managed::reconcile(&request, &resource, managed),
            None => external::reconcile(&request),
        }
    }
}

#[cfg(feature = "export")]
keycloak_operator_sdk::export_reconciler!(KeycloakReconciler);
