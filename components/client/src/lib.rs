//! The `KeycloakClient` reconciler component.
//!
//! Creates, updates and (per deletion policy) deletes one OIDC or SAML client
//! in the realm of the resource's `KeycloakRealm`, with its protocol mappers,
//! client scopes, roles and service-account roles, and returns the Secret
//! holding its credentials as a child. Ownership is recorded in client
//! attributes; a client owned by another resource is never overwritten, and
//! an existing unowned client is adopted only on request. Names only the
//! server can vouch for (protocol mapper types) are checked against it before
//! anything is written. Keycloak is read first and written only when a
//! managed field differs.

mod converge;
mod credentials;
mod managed;
mod mappers;
mod representation;
mod roles;
mod rotation;
mod scopes;
mod service_account;
mod supported;
mod tenancy;

use k8s_openapi::api::core::v1::Secret;
use keycloak_operator_api::{DeletionPolicy, KeycloakClient};
use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::keycloak;
use keycloak_operator_sdk::ownership::{Owner, keeping_other_attributes};
use keycloak_operator_sdk::{
    Capability, Description, Established, Finalized, KeycloakScope, Lifecycle, ReconcileError, Reconciler, Request,
    Response,
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
    Description::for_resource::<KeycloakClient>("keycloak-operator/client", env!("CARGO_PKG_VERSION"))
        .scope(KeycloakScope::InRealm)
        .capability(Capability::ReadSecrets)
        .child::<Secret>()
        .finalizer()
        .crd(include_str!("../../../crds/keycloakclients.keycloak.wasmop.dev.yaml"))
}

/// The lifecycle of the client a resource owns.
fn lifecycle<'a>(client_id: &str, realm: &str, owner: &'a Owner) -> Lifecycle<'a> {
    Lifecycle::new("Client", format!("client {client_id} of realm {realm}"), owner)
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
    supported::check(spec)?;
    let context = Context {
        resource: &resource,
        realm: &realm,
        owner: &owner,
        supplied_secret: supplied.as_deref(),
        now: rotation::now(),
        tenancy,
    };
    let client_id = spec.client_id.as_str();

    // A resource that never recorded its client's id most likely has none
    // yet: create first (the lifecycle finds it on 409).
    let never_established = resource.status.as_ref().and_then(|s| s.client_uuid.as_ref()).is_none();
    let lifecycle = lifecycle(client_id, &realm, &owner)
        .adopting(spec.adopt_existing)
        .expecting_new(never_established);
    let established = lifecycle.establish(|| find(&realm, client_id), || create(&context))?;
    let settled = !matches!(established, Established::Owned(_));
    let existing = established.object().clone();
    let outcome = converge(&context, existing)?;
    let mut response = Response::ready(
        "Reconciled",
        format!("Client {client_id} in realm {realm} matches the spec"),
    );
    response = if settled {
        lifecycle.announce(&established, response)
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
        ))?;
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
    response.status(status)
}

/// Applies the deletion policy before the resource goes away.
pub fn finalize(request: Request) -> Result<Finalized, ReconcileError> {
    let resource: KeycloakClient = request.parent_as()?;
    let realm = realm_of(&request)?;
    let client_id = resource.spec.client_id.as_str();
    let owner = Owner::of(&request);
    lifecycle(client_id, &realm, &owner).end(
        find(&realm, client_id)?,
        resource.spec.deletion_policy == DeletionPolicy::Retain,
        |client| {
            let id = client["id"].as_str().unwrap_or_default();
            keycloak::delete(CLIENT, &[&realm, id]).map(|_| ())
        },
        |client| {
            // Release ownership and the records of sub-objects, so that a new
            // resource may adopt the client without removing anything.
            let id = client["id"].as_str().unwrap_or_default();
            let mut attributes = Owner::released_attributes();
            attributes.extend(Managed::default().attributes());
            attributes.insert(keys::ROTATION_HANDLED.to_owned(), String::new());
            let body = json!({ "id": id, "clientId": client_id, "attributes": attributes });
            keycloak::update(CLIENT, &[&realm, id], &keeping_other_attributes(&body, client))
        },
    )
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
