//! The `KeycloakRealm` reconciler component.
//!
//! Creates, updates and (per deletion policy) deletes one realm. Ownership is
//! recorded in realm attributes; a realm owned by another resource is never
//! overwritten, and an existing unowned realm is adopted only on request.
//! Keycloak is read first and written only when a managed field differs, so
//! steady state costs one read per resync.

mod representation;

use keycloak_operator_api::{DeletionPolicy, KeycloakRealm};
use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::keycloak;
use keycloak_operator_sdk::ownership::{Owner, keeping_other_attributes};
use keycloak_operator_sdk::{
    Description, Established, Finalized, KeycloakScope, Lifecycle, ReconcileError, Reconciler, Request, Response,
};
use serde_json::{Value, json};

pub use representation::desired_representation;

/// The route of one realm.
const REALM: &str = "/realms/{realm}";

/// What distinguishes one build of this reconciler from another: the shipped
/// component uses [`Options::SHIPPED`]; embedders (such as the test component
/// that plays a second version) may set their own.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Version reported by `describe`.
    pub version: &'static str,
    /// Attributes added to every realm, besides the spec's and ownership.
    pub extra_attributes: &'static [(&'static str, &'static str)],
}

impl Options {
    /// The options of the shipped component.
    pub const SHIPPED: Options = Options {
        version: env!("CARGO_PKG_VERSION"),
        extra_attributes: &[],
    };
}

/// What the component serves and needs.
pub fn describe(options: &Options) -> Description {
    Description::for_resource::<KeycloakRealm>("keycloak-operator/realm", options.version)
        .scope(KeycloakScope::Realm)
        .finalizer()
        .crd(include_str!("../../../crds/keycloakrealms.keycloak.wasmop.dev.yaml"))
}

/// The lifecycle of the realm a resource owns.
fn lifecycle<'a>(name: &str, owner: &'a Owner) -> Lifecycle<'a> {
    Lifecycle::new("Realm", format!("realm {name}"), owner)
}

/// Converges one realm.
pub fn reconcile(options: &Options, request: Request) -> Result<Response, ReconcileError> {
    let resource: KeycloakRealm = request.parent_as()?;
    let name = resource.spec.realm_name.as_str();
    let owner = Owner::of(&request);
    let desired = desired_representation(&resource.spec, &owner, options.extra_attributes);

    let established = lifecycle(name, &owner)
        .adopting(resource.spec.adopt_existing)
        .establish(|| keycloak::get(REALM, &[name]), || create(name, &desired))?;
    let response = match &established {
        Established::Created(_) => lifecycle(name, &owner).announce(&established, ready(name)),
        Established::Adopted(existing) => {
            keycloak::update(REALM, &[name], &keeping_other_attributes(&desired, existing))?;
            lifecycle(name, &owner).announce(&established, ready(name))
        }
        Established::Owned(existing) => converge(name, &desired, existing, &request)?,
    };
    with_status(response, established.object(), &request)
}

/// Writes the managed fields that differ, if any: steady state only reads.
fn converge(name: &str, desired: &Value, existing: &Value, request: &Request) -> Result<Response, ReconcileError> {
    let drifted = keycloak_operator_sdk::diff::drifted_fields(desired, existing);
    if drifted.is_empty() {
        return Ok(ready(name));
    }
    keycloak::update(REALM, &[name], &keeping_other_attributes(desired, existing))?;
    if request.spec_unchanged_since_last_reconcile() {
        let fields = drifted.join(", ");
        Ok(ready(name)
            .event(
                "DriftCorrected",
                "Update",
                format!("Reverted changes made in Keycloak to {fields}"),
            )
            .drift_corrected(drifted))
    } else {
        Ok(ready(name).event("RealmUpdated", "Update", format!("Updated realm {name}")))
    }
}

/// Creates the realm and reads it back; `None` when Keycloak answers that
/// it exists already (409).
fn create(name: &str, desired: &Value) -> Result<Option<Value>, ReconcileError> {
    let reply = keycloak::send(keycloak::Method::Post, "/realms", &[], &[], Some(desired))?;
    match reply.status {
        409 => Ok(None),
        s if (200..300).contains(&s) => keycloak::get(REALM, &[name])?.map(Some).ok_or_else(|| {
            transient(
                "RealmNotFound",
                format!("realm {name} was created but cannot be read back"),
            )
        }),
        _ => Err(keycloak::unexpected(&format!("creating realm {name}"), &reply)),
    }
}

fn with_status(response: Response, realm: &Value, request: &Request) -> Result<Response, ReconcileError> {
    response.status(json!({
        "realmId": realm.get("id").and_then(Value::as_str),
        "keycloak": request.target.as_ref().map(|t| t.keycloak.as_str()),
    }))
}

fn ready(name: &str) -> Response {
    Response::ready("Reconciled", format!("Realm {name} matches the spec"))
}

/// Applies the deletion policy before the resource goes away.
pub fn finalize(request: Request) -> Result<Finalized, ReconcileError> {
    let resource: KeycloakRealm = request.parent_as()?;
    let name = resource.spec.realm_name.as_str();
    let owner = Owner::of(&request);
    lifecycle(name, &owner).end(
        keycloak::get(REALM, &[name])?,
        resource.spec.deletion_policy == DeletionPolicy::Retain,
        |_| keycloak::delete(REALM, &[name]).map(|_| ()),
        |current| {
            // Released, so that a new resource can adopt the realm.
            let release = json!({ "realm": name, "attributes": Owner::released_attributes() });
            keycloak::update(REALM, &[name], &keeping_other_attributes(&release, current))
        },
    )
}

/// The shipped component.
pub struct RealmReconciler;

impl Reconciler for RealmReconciler {
    fn describe() -> Description {
        describe(&Options::SHIPPED)
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        reconcile(&Options::SHIPPED, request)
    }

    fn finalize(request: Request) -> Result<Finalized, ReconcileError> {
        finalize(request)
    }
}

#[cfg(feature = "export")]
keycloak_operator_sdk::export_reconciler!(RealmReconciler);
