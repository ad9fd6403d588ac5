//! Converging an existing client the resource owns: the secret's rotation,
//! the client's fields, then its sub-objects, reading before every write so
//! that steady state sends none.

use keycloak_operator_api::KeycloakClient;
use keycloak_operator_sdk::diff::drifted_fields;
use keycloak_operator_sdk::ownership::{Owner, keeping_other_attributes};
use keycloak_operator_sdk::{ReconcileError, keycloak};
use serde_json::{Value, json};

use crate::managed::{Managed, keys};
use crate::representation::{self, Bookkeeping};
use crate::rotation::{self, Due};
use crate::tenancy::Tenancy;
use crate::{CLIENT, mappers, roles, scopes, service_account};

/// Everything one reconcile knows before it looks at the client.
pub struct Context<'a> {
    /// The resource.
    pub resource: &'a KeycloakClient,
    /// The realm the client lives in.
    pub realm: &'a str,
    /// The owning resource.
    pub owner: &'a Owner,
    /// A user-supplied client secret (never logged).
    pub supplied_secret: Option<&'a str>,
    /// Seconds since the epoch.
    pub now: i64,
    /// Where the resource stands among tenants (see `tenancy`).
    pub tenancy: Tenancy,
}

/// What converging did.
pub struct Outcome {
    /// The client as Keycloak holds it now.
    pub client: Value,
    /// Managed fields and sub-objects that were changed, for Events and the
    /// drift metric (names only, never values).
    pub changed: Vec<String>,
    /// Why the secret was rotated, if it was.
    pub rotated: Option<Due>,
}

impl Context<'_> {
    /// Whether the operator generates (and may rotate) the client's secret.
    fn generates_secret(&self) -> bool {
        representation::has_secret(&self.resource.spec) && self.supplied_secret.is_none()
    }

    /// The representation to write, recording `managed` as the operator's.
    pub fn desired(&self, managed: &Managed) -> Value {
        let rotation_handled = if self.generates_secret() {
            rotation::requested(self.resource)
        } else {
            None
        };
        representation::desired(
            &self.resource.spec,
            &Bookkeeping {
                owner: self.owner,
                managed,
                rotation_handled,
                supplied_secret: self.supplied_secret,
            },
        )
    }
}

/// Converges `client`, which the resource owns (or is adopting).
pub fn converge(context: &Context<'_>, client: Value) -> Result<Outcome, ReconcileError> {
    let realm = context.realm;
    let spec = &context.resource.spec;
    let id = client["id"].as_str().unwrap_or_default().to_owned();
    let declared = Managed::declared(spec);
    let recorded = Managed::recorded(&client);
    // Until removals are done, both the old and the new sub-objects are
    // recorded, so a failure half-way never forgets one the operator made.
    let both = recorded.union(&declared);
    let mut wrote = false;

    let rotated = if context.generates_secret() {
        rotation::due(context.resource, &client, context.now)
    } else {
        None
    };
    if rotated.is_some() {
        rotation::rotate(realm, &id)?;
        wrote = true;
    }

    let desired = context.desired(&both);
    let drifted = drifted_fields(&desired, &client);
    if !drifted.is_empty() {
        keycloak::update(
            CLIENT,
            &[realm, &id],
            &with_id(&keeping_other_attributes(&desired, &client), &id),
        )?;
        wrote = true;
    }
    let mut changed: Vec<String> = drifted.into_iter().filter(|path| !is_bookkeeping(path)).collect();
    changed.extend(mappers::converge(realm, spec, &client, &recorded)?);
    changed.extend(scopes::converge(realm, spec, &client)?);
    changed.extend(roles::converge(realm, &id, spec, &recorded)?);
    changed.extend(service_account::converge(
        realm,
        &id,
        &declared,
        &recorded,
        &context.tenancy,
    )?);
    wrote |= !changed.is_empty();

    if both != declared {
        let mut body = json!({ "clientId": spec.client_id, "attributes": declared.attributes() });
        body = with_id(&keeping_other_attributes(&body, &client), &id);
        keycloak::update(CLIENT, &[realm, &id], &body)?;
        wrote = true;
    }
    let client = if wrote { crate::read(realm, &id)? } else { client };
    Ok(Outcome {
        client,
        changed,
        rotated,
    })
}

/// Changes to the operator's own records are not drift.
fn is_bookkeeping(path: &str) -> bool {
    path.strip_prefix("attributes.")
        .is_some_and(|key| keys::ALL.contains(&key))
}

fn with_id(body: &Value, id: &str) -> Value {
    let mut body = body.clone();
    body["id"] = json!(id);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_changes_are_not_reported_as_drift() {
        assert!(is_bookkeeping("attributes.keycloak.wasmop.dev/managed-roles"));
        assert!(is_bookkeeping("attributes.keycloak.wasmop.dev/rotate-secret-handled"));
        assert!(!is_bookkeeping("attributes.pkce.code.challenge.method"));
        assert!(!is_bookkeeping("redirectUris"));
    }
}
