//! The `KeycloakClient` reconciler component.
//!
//! Creates, updates and (per deletion policy) deletes one OIDC or SAML client
//! in the realm of the resource's `KeycloakRealm`, with its protocol mappers,
//! client scopes, roles and service-account roles, and returns the Secret
//! holding its credentials as a child. Ownership is recorded in client
//! attributes; a client owned by another resource is never overwritten, and
//! an existing unowned client is adopted only on request. Keycloak is read
//! first and written only when a managed field differs.

mod converge;
mod credentials;
mod managed;
mod mappers;
mod representation;
mod roles;
mod rotation;
mod scopes;
mod service_account;
mod tenancy;

use keycloak_operator_api::{DeletionPolicy, KeycloakClient};
use keycloak_operator_sdk::error::{permanent, transient};
use keycloak_operator_sdk::keycloak;
use keycloak_operator_sdk::ownership::{Owner, Ownership, keeping_other_attributes};
use keycloak_operator_sdk::{
    Capability, Description, Finalized, KeycloakScope, KindRef, ReconcileError, Reconciler, Request, Response,
};
use serde_json::{Value, json};

use crate::converge::{Context, Outcome, converge};
use crate::managed::{Managed, keys};
use crate::rotation::Due;

/// The clients of a realm.
pub(crate) const CLIENTS: &str = "/realms/{realm}/clients";
/// One client, by its internal id.
pub(crate) const CLIENT: &str = "/realms/{realm}/clients/{id}";

/// What the component serves and needs.
pub fn describe() -> Description {
    Description {
        name: "keycloak-operator/client".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        group: keycloak_operator_api::GROUP.into(),
        kind: "KeycloakClient".into(),
        plural: "keycloakclients".into(),
        versions: vec![keycloak_operator_api::VERSION.into()],
        child_kinds: vec![KindRef {
            api_version: "v1".into(),
            kind: "Secret".into(),
            plural: "secrets".into(),
        }],
        related_kinds: vec![],
        capabilities: vec![Capability::KeycloakAdmin, Capability::ReadSecrets],
        keycloak_scope: KeycloakScope::InRealm,
        finalizer: true,
        crd: Some(include_str!("../../../crds/keycloakclients.keycloak.wasmop.dev.yaml").into()),
    }
}

/// The realm the host resolved for the resource.
fn realm_of(request: &Request) -> Result<String, ReconcileError> {
    request
        .target
        .as_ref()
        .and_then(|t| t.realm.clone())
        .ok_or_else(|| transient("RealmNotResolved", "the host did not resolve the client's realm"))
}

/// The client with `client_id`, if the realm has one.
pub(crate) fn find(realm: &str, client_id: &str) -> Result<Option<Value>, ReconcileError> {
    Ok(keycloak::list(CLIENTS, &[realm], &[("clientId", client_id)])?
        .into_iter()
        .find(|c| c["clientId"] == client_id))
}

/// One client by its internal id, which must exist.
pub(crate) fn read(realm: &str, id: &str) -> Result<Value, ReconcileError> {
    keycloak::get(CLIENT, &[realm, id])?.ok_or_else(|| {
        transient(
            "ClientNotFound",
            format!("client {id} of realm {realm} vanished while being reconciled"),
        )
    })
}

/// Creates the client with its mappers; `None` when Keycloak answers that a
/// client with this `clientId` exists already (409).
fn create(context: &Context<'_>) -> Result<Option<Value>, ReconcileError> {
    let spec = &context.resource.spec;
    let mut body = context.desired(&Managed::declared(spec));
    body["protocolMappers"] = spec
        .protocol_mappers
        .iter()
        .map(|m| mappers::representation(spec, m))
        .collect();
    let reply = keycloak::send(keycloak::Method::Post, CLIENTS, &[context.realm], &[], Some(&body))?;
    match reply.status {
        409 => Ok(None),
        s if (200..300).contains(&s) => match reply.created_id() {
            Some(id) => read(context.realm, id).map(Some),
            None => find(context.realm, &spec.client_id),
        },
        _ => Err(keycloak::unexpected(
            &format!("creating client {}", spec.client_id),
            &reply,
        )),
    }
}

/// Converges one client.
pub fn reconcile(request: Request) -> Result<Response, ReconcileError> {
    let resource: KeycloakClient = request.parent_as()?;
    let spec = &resource.spec;
    let realm = realm_of(&request)?;
    let owner = Owner::of(&request);
    let supplied = credentials::supplied_secret(spec)?;
    let tenancy = tenancy::Tenancy::of(&request);
    if tenancy.is_tenant() {
        tenancy::refuse_direct_grants(&resource)?;
    }
    let context = Context {
        resource: &resource,
        realm: &realm,
        owner: &owner,
        supplied_secret: supplied.as_deref(),
        now: rotation::now(),
        tenancy,
    };
    let client_id = spec.client_id.as_str();

    let (existing, created) = match find(&realm, client_id)? {
        Some(existing) => (existing, false),
        None => match create(&context)? {
            Some(created) => (created, true),
            // It appeared meanwhile: judge it like any existing client.
            None => (
                find(&realm, client_id)?.ok_or_else(|| {
                    transient(
                        "ClientNotFound",
                        format!("client {client_id} is neither creatable nor readable"),
                    )
                })?,
                false,
            ),
        },
    };
    let adopting = match owner.check(existing.get("attributes")) {
        Ownership::Ours => false,
        Ownership::Other(other) => {
            return Err(permanent(
                "Conflict",
                format!("client {client_id} of realm {realm} is already managed by {other}; it is left untouched"),
            ));
        }
        Ownership::Unowned if !spec.adopt_existing => {
            return Err(permanent(
                "AdoptionRequired",
                format!(
                    "client {client_id} already exists in realm {realm} and no resource manages it; \
                     set spec.adoptExisting to true to take it over"
                ),
            ));
        }
        Ownership::Unowned => true,
    };
    let outcome = converge(&context, existing)?;
    let mut response = Response::ready(
        "Reconciled",
        format!("Client {client_id} in realm {realm} matches the spec"),
    );
    response = if created {
        response.event(
            "ClientCreated",
            "Create",
            format!("Created client {client_id} in realm {realm}"),
        )
    } else if adopting {
        response.event("ClientAdopted", "Adopt", format!("Adopted existing client {client_id}"))
    } else if outcome.changed.is_empty() {
        response
    } else if request.spec_unchanged_since_last_reconcile() {
        response
            .event(
                "DriftCorrected",
                "Update",
                format!("Reverted changes made in Keycloak to {}", outcome.changed.join(", ")),
            )
            .drift_corrected(outcome.changed.clone())
    } else {
        response.event("ClientUpdated", "Update", format!("Updated client {client_id}"))
    };
    finish(response, &context, &request, &outcome)
}

/// Adds the status, the credentials Secret and the rotation Event.
fn finish(
    mut response: Response,
    context: &Context<'_>,
    request: &Request,
    outcome: &Outcome,
) -> Result<Response, ReconcileError> {
    let resource = context.resource;
    let client = &outcome.client;
    let mut status = json!({
        "clientUuid": client["id"],
        "realm": context.realm,
        "keycloak": request.target.as_ref().map(|t| t.keycloak.as_str()),
    });
    if representation::has_secret(&resource.spec) {
        let name = credentials::secret_name(resource)?;
        let url = request.target.as_ref().map(|t| t.url.as_str()).unwrap_or_default();
        let endpoints = credentials::Endpoints::new(url, context.realm);
        response = response.child(credentials::secret(
            &name,
            &resource.spec.client_id,
            client["secret"].as_str(),
            &endpoints,
        ));
        status["credentialsSecret"] = json!(name);
        if context.supplied_secret.is_none() {
            status["secretRotation"] = json!(rotation::status(resource, client, context.now));
            if let Some(seconds) = rotation::next_rotation_in(resource, client, context.now) {
                response = response.requeue_after(u32::try_from(seconds).unwrap_or(u32::MAX));
            }
        }
    }
    if let Some(due) = &outcome.rotated {
        let why = match due {
            Due::Requested(value) => format!("as requested ({value})"),
            Due::Period => "as its rotation period ended".to_owned(),
        };
        let previous = match rotation::status(resource, client, context.now).previous_secret_valid_until {
            Some(until) => format!("the previous secret stays valid until {until} (realm client policy)"),
            None => "the previous secret stopped working at once".to_owned(),
        };
        response = response.event(
            "SecretRotated",
            "Rotate",
            format!("Rotated the client secret {why}; {previous}"),
        );
    }
    Ok(response.status(status))
}

/// Applies the deletion policy before the resource goes away.
pub fn finalize(request: Request) -> Result<Finalized, ReconcileError> {
    let resource: KeycloakClient = request.parent_as()?;
    let realm = realm_of(&request)?;
    let client_id = resource.spec.client_id.as_str();
    let owner = Owner::of(&request);
    let Some(client) = find(&realm, client_id)? else {
        return Ok(Finalized::default().event(
            "ClientAlreadyGone",
            "Delete",
            format!("Client {client_id} no longer exists in realm {realm}"),
        ));
    };
    let id = client["id"].as_str().unwrap_or_default();
    match (owner.check(client.get("attributes")), resource.spec.deletion_policy) {
        (Ownership::Ours, DeletionPolicy::Delete) => {
            keycloak::delete(CLIENT, &[&realm, id])?;
            Ok(Finalized::default().event(
                "ClientDeleted",
                "Delete",
                format!("Deleted client {client_id} from realm {realm}"),
            ))
        }
        (Ownership::Ours, DeletionPolicy::Retain) => {
            // Release ownership and the records of sub-objects, so that a new
            // resource may adopt the client without removing anything.
            let mut attributes = Owner::released_attributes();
            attributes.extend(Managed::default().attributes());
            attributes.insert(keys::ROTATION_HANDLED.to_owned(), String::new());
            let body = json!({ "id": id, "clientId": client_id, "attributes": attributes });
            keycloak::update(CLIENT, &[&realm, id], &keeping_other_attributes(&body, &client))?;
            Ok(Finalized::default().event(
                "ClientRetained",
                "Retain",
                format!("Client {client_id} stays in realm {realm} (deletionPolicy: Retain)"),
            ))
        }
        (Ownership::Other(other), _) => Ok(Finalized::default().warning(
            "ClientNotOwned",
            "Delete",
            format!("Client {client_id} is managed by {other}; left untouched"),
        )),
        (Ownership::Unowned, _) => Ok(Finalized::default().event(
            "ClientNotOwned",
            "Delete",
            format!("Client {client_id} is not managed by this resource; left untouched"),
        )),
    }
}

/// The shipped component.
pub struct ClientReconciler;

impl Reconciler for ClientReconciler {
    fn describe() -> Description {
        describe()
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        reconcile(request)
    }

    fn finalize(request: Request) -> Result<Finalized, ReconcileError> {
        finalize(request)
    }
}

#[cfg(feature = "export")]
keycloak_operator_sdk::export_reconciler!(ClientReconciler);
