//! The `Keycloak` reconciler component.
//!
//! External form: checks that the Keycloak answers with the operator's
//! credentials and reports its version. Managed form: returns the Deployment,
//! Services, bootstrap admin Secret and the rest that run Keycloak, follows
//! the rollout, and once Keycloak answers, gives the operator a service-account
//! client of its own so that the bootstrap admin is used only once.

mod external;
pub mod managed;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use keycloak_operator_api::Keycloak;
use keycloak_operator_sdk::{Capability, Description, KeycloakScope, ReconcileError, Reconciler, Request, Response};

/// The shipped component.
pub struct KeycloakReconciler;

impl Reconciler for KeycloakReconciler {
    fn describe() -> Description {
        Description::for_resource::<Keycloak>("keycloak-operator/keycloak", env!("CARGO_PKG_VERSION"))
            .scope(KeycloakScope::Instance)
            .capability(Capability::ReadSecrets)
            .child::<Deployment>()
            .child::<Service>()
            .child::<Secret>()
            .child::<PodDisruptionBudget>()
            .child::<NetworkPolicy>()
            .child::<Ingress>()
            .related::<Pod>()
            .crd(include_str!("../../../crds/keycloaks.keycloak.wasmop.dev.yaml"))
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
