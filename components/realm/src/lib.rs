//! The `KeycloakRealm` reconciler component.
//!
//! Creates, updates and (per deletion policy) deletes one realm. Ownership is
//! recorded in realm attributes; a realm owned by another resource is never
//! overwritten, and an existing unowned realm is adopted only on request.
//! Keycloak is read first and written only when a managed field differs, so
//! steady state costs one read per resync.

mod representation;

use keycloak_operator_api::{DeletionPolicy, KeycloakRealm};
use keycloak_operator_sdk::error::{permanent, transient};
use keycloak_operator_sdk::keycloak;
use keycloak_operator_sdk::ownership::{Owner, Ownership, keeping_other_attributes};
use keycloak_operator_sdk::{
    Capability, Description, Finalized, KeycloakScope, ReconcileError, Reconciler, Request, Response,
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
    Description {
        name: "keycloak-operator/realm".into(),
        version: options.version.into(),
        group: keycloak_operator_api::GROUP.into(),
        kind: "KeycloakRealm".into(),
        plural: "keycloakrealms".into(),
        versions: vec![keycloak_operator_api::VERSION.into()],
        child_kinds: vec![],
        related_kinds: vec![],
        capabilities: vec![Capability::KeycloakAdmin],
        keycloak_scope: KeycloakScope::Realm,
        finalizer: true,
        crd: Some(include_str!("../../../crds/keycloakrealms.keycloak.wasmop.dev.yaml").into()),
    }
}

/// Converges one realm.
pub fn reconcile(options: &Options, request: Request) -> Result<Response, ReconcileError> {
    let resource: KeycloakRealm = request.parent_as()?;
    let name = resource.spec.realm_name.as_str();
    let owner = Owner::of(&request);
    let desired = desired_representation(&resource.spec, &owner, options.extra_attributes);

    let existing = match keycloak::get(REALM, &[name])? {
        Some(existing) => existing,
        None => match create(name, &desired)? {
            Some(created) => {
                let response = ready(name).event("RealmCreated", "Create", format!("Created realm {name}"));
                return Ok(with_status(response, &created, &request));
            }
            // It appeared meanwhile (another resource, or an earlier attempt
            // of ours that timed out): judge it like any existing realm.
            None => keycloak::get(REALM, &[name])?.ok_or_else(|| {
                transient(
                    "RealmNotFound",
                    format!("realm {name} is neither creatable nor readable"),
                )
            })?,
        },
    };
    let response = match owner.check(existing.get("attributes")) {
        Ownership::Other(other) => {
            return Err(permanent(
                "Conflict",
                format!("realm {name} is already managed by {other}; it is left untouched"),
            ));
        }
        Ownership::Unowned if !resource.spec.adopt_existing => {
            return Err(permanent(
                "AdoptionRequired",
                format!(
                    "realm {name} already exists in Keycloak and no resource manages it; \
                     set spec.adoptExisting to true to take it over"
                ),
            ));
        }
        Ownership::Unowned => {
            keycloak::update(REALM, &[name], &keeping_other_attributes(&desired, &existing))?;
            ready(name).event("RealmAdopted", "Adopt", format!("Adopted existing realm {name}"))
        }
        Ownership::Ours => converge(name, &desired, &existing, &request)?,
    };
    Ok(with_status(response, &existing, &request))
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

fn with_status(response: Response, realm: &Value, request: &Request) -> Response {
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
    let Some(current) = keycloak::get(REALM, &[name])? else {
        return Ok(Finalized::default().event("RealmAlreadyGone", "Delete", format!("Realm {name} no longer exists")));
    };
    match (owner.check(current.get("attributes")), resource.spec.deletion_policy) {
        (Ownership::Ours, DeletionPolicy::Delete) => {
            keycloak::delete(REALM, &[name])?;
            Ok(Finalized::default().event("RealmDeleted", "Delete", format!("Deleted realm {name}")))
        }
        (Ownership::Ours, DeletionPolicy::Retain) => {
            // Release ownership so that a new resource can adopt the realm.
            let release = json!({ "realm": name, "attributes": Owner::released_attributes() });
            keycloak::update(REALM, &[name], &keeping_other_attributes(&release, &current))?;
            Ok(Finalized::default().event(
                "RealmRetained",
                "Retain",
                format!("Realm {name} and its data stay in Keycloak (deletionPolicy: Retain)"),
            ))
        }
        (Ownership::Other(other), _) => Ok(Finalized::default().warning(
            "RealmNotOwned",
            "Delete",
            format!("Realm {name} is managed by {other}; left untouched"),
        )),
        (Ownership::Unowned, _) => Ok(Finalized::default().event(
            "RealmNotOwned",
            "Delete",
            format!("Realm {name} is not managed by this resource; left untouched"),
        )),
    }
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
