//! A template for a reconciler component: a realm role per resource. Copy
//! this crate, rename the kind, and write what `reconcile` does.

use keycloak_operator_sdk::ownership::{Owner, keeping_other_attributes};
use keycloak_operator_sdk::{
    Description, Finalized, KeycloakScope, Lifecycle, ReconcileError, Reconciler, Request, Response, keycloak,
};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A realm role, kept converged with this spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(group = "example.com", version = "v1alpha1", kind = "ExampleRole", namespaced)]
#[kube(status = "keycloak_operator_sdk::HostStatus")]
#[serde(rename_all = "camelCase")]
pub struct ExampleRoleSpec {
    /// The `KeycloakRealm` the role goes in.
    pub realm_ref: RealmRef,
    /// The role's name.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
}

/// A reference to a `KeycloakRealm`.
#[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
pub struct RealmRef {
    /// Its name.
    pub name: String,
    /// Its namespace, when not the resource's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

const ROLE: &str = "/realms/{realm}/roles/{role}";

/// The component.
pub struct Template;

impl Reconciler for Template {
    fn describe() -> Description {
        Description::for_resource::<ExampleRole>("example/role", env!("CARGO_PKG_VERSION"))
            .scope(KeycloakScope::InRealm)
            .finalizer()
            // YAML is a superset of JSON.
            .crd(&serde_json::to_string(&ExampleRole::crd()).unwrap_or_default())
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        let spec = request.parent_as::<ExampleRole>()?.spec;
        let (realm, owner) = (request.realm()?, Owner::of(&request));
        let desired =
            json!({"name": spec.name, "description": spec.description, "attributes": owner.multivalued_attributes()});
        let lifecycle = Lifecycle::new("Role", format!("role {} of realm {realm}", spec.name), &owner);
        let role = lifecycle.establish(
            || keycloak::get(ROLE, &[realm, &spec.name]),
            || {
                Ok(
                    keycloak::create_unless_exists("/realms/{realm}/roles", &[realm], &desired)?
                        .map(|_| desired.clone()),
                )
            },
        )?;
        if role.object()["description"] != desired["description"] {
            keycloak::update(
                ROLE,
                &[realm, &spec.name],
                &keeping_other_attributes(&desired, role.object()),
            )?;
        }
        Ok(lifecycle.announce(&role, Response::ready("Reconciled", "the role matches the spec")))
    }

    fn finalize(request: Request) -> Result<Finalized, ReconcileError> {
        let spec = request.parent_as::<ExampleRole>()?.spec;
        let (realm, owner) = (request.realm()?, Owner::of(&request));
        let lifecycle = Lifecycle::new("Role", format!("role {} of realm {realm}", spec.name), &owner);
        lifecycle.end(
            keycloak::get(ROLE, &[realm, &spec.name])?,
            false,
            |_| keycloak::delete(ROLE, &[realm, &spec.name]).map(|_| ()),
            |_| Ok(()),
        )
    }
}

#[cfg(target_arch = "wasm32")]
keycloak_operator_sdk::export_reconciler!(Template);
