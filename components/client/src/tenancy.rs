//! What a tenant's client may be granted.
//!
//! The namespace of a `KeycloakRealm` belongs to whoever runs the realm. The
//! other namespaces that the realm lets in (`spec.clients.allowedNamespaces`)
//! are tenants. The roles of the realm's `realm-management` client
//! administer the realm itself: `realm-admin` manages every client, user and
//! role in it, tenants' included. So a tenant's service account is never
//! granted one, neither directly nor through a composite role that contains
//! one. Nor is it granted the roles of a client another tenant owns.

use std::collections::BTreeSet;

use keycloak_operator_api::KeycloakClient;
use keycloak_operator_api::reasons;
use keycloak_operator_sdk::error::{invalid_spec, transient};
use keycloak_operator_sdk::ownership::{attribute, keys};
use keycloak_operator_sdk::{ReconcileError, Request, keycloak};
use serde_json::Value;

/// The client whose roles administer the realm.
pub const REALM_MANAGEMENT: &str = "realm-management";

/// The direct composites of a role, by the role's id.
const COMPOSITES: &str = "/realms/{realm}/roles-by-id/{id}/composites";

/// Roles followed at most through composites. Keycloak allows cycles and
/// large graphs, and a reconcile must end.
const MAX_ROLES_VISITED: usize = 200;

/// Where a client resource stands: its own namespace and its realm
/// resource's.
#[derive(Debug, Clone, Default)]
pub struct Tenancy {
    /// The client resource's namespace.
    pub namespace: String,
    /// The `KeycloakRealm`'s namespace (the host always resolves the realm).
    pub realm_namespace: Option<String>,
}

impl Tenancy {
    /// The namespaces of the request's resource and of its realm resource.
    pub fn of(request: &Request) -> Self {
        let namespace = |object: &Value| {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Tenancy {
            namespace: namespace(&request.parent).unwrap_or_default(),
            realm_namespace: request.related_of_kind("KeycloakRealm").and_then(namespace),
        }
    }

    /// Whether the resource is a tenant's: its namespace is not its realm
    /// resource's. Without the realm resource, it counts as a tenant's: the
    /// safe side.
    pub fn is_tenant(&self) -> bool {
        self.realm_namespace.as_deref() != Some(self.namespace.as_str())
    }

    /// Refuses, for a tenant, roles of `client` (its representation) when a
    /// resource of another tenant owns it: one tenant may not take another's
    /// permissions. Clients of the realm's namespace, of the tenant's own
    /// namespace, and clients no resource owns stay grantable.
    pub fn refuse_foreign_client(&self, client: &Value) -> Result<(), ReconcileError> {
        if !self.is_tenant() {
            return Ok(());
        }
        match attribute(client.get("attributes"), keys::NAMESPACE) {
            Some(owner) if owner != self.namespace && Some(&owner) != self.realm_namespace.as_ref() => {
                Err(invalid_spec(
                    reasons::ROLE_NOT_ALLOWED,
                    format!(
                        "serviceAccountRoles.clientRoles.{} names a client that a KeycloakClient in namespace \
                         {owner} owns; a tenant may not be granted another tenant's roles",
                        client["clientId"].as_str().unwrap_or_default()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

fn refused(what: String) -> ReconcileError {
    invalid_spec(
        reasons::ROLE_NOT_ALLOWED,
        format!(
            "{what}: {REALM_MANAGEMENT} roles administer the whole realm, and only clients in the \
             KeycloakRealm's own namespace may be granted them"
        ),
    )
}

/// Refuses a tenant's spec that grants `realm-management` roles, before any
/// Keycloak call.
pub fn refuse_direct_grants(resource: &KeycloakClient) -> Result<(), ReconcileError> {
    let granted = resource
        .spec
        .oidc
        .as_ref()
        .and_then(|o| o.service_account_roles.as_ref())
        .and_then(|roles| roles.client_roles.get(REALM_MANAGEMENT));
    match granted {
        Some(names) if !names.is_empty() => Err(refused(format!(
            "serviceAccountRoles.clientRoles.{REALM_MANAGEMENT} grants {}",
            names.join(", ")
        ))),
        _ => Ok(()),
    }
}

/// Refuses the realm role `role` (its representation) when it contains a
/// `realm-management` role at any depth. `realm_management` is that client's
/// internal id.
pub fn refuse_composite(realm: &str, role: &Value, realm_management: &str) -> Result<(), ReconcileError> {
    let name = role["name"].as_str().unwrap_or_default();
    let mut visited: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<Value> = vec![role.clone()];
    while let Some(current) = pending.pop() {
        if current["clientRole"] == true && current["containerId"] == realm_management {
            return Err(refused(format!(
                "realm role {name:?} contains {REALM_MANAGEMENT} role {}",
                current["name"]
            )));
        }
        let Some(id) = current["id"].as_str() else { continue };
        if current["composite"] != true || !visited.insert(id.to_owned()) {
            continue;
        }
        if visited.len() > MAX_ROLES_VISITED {
            return Err(transient(
                reasons::ROLE_NOT_ALLOWED,
                format!("realm role {name:?} has more than {MAX_ROLES_VISITED} composite roles to check"),
            ));
        }
        pending.extend(keycloak::list(COMPOSITES, &[realm, id], &[])?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(own: &str, realm: Option<&str>) -> Request {
        Request {
            parent: json!({"metadata": {"namespace": own}}),
            children: vec![],
            related: realm
                .map(|ns| json!({"kind": "KeycloakRealm", "metadata": {"namespace": ns}}))
                .into_iter()
                .collect(),
            target: None,
        }
    }

    #[test]
    fn a_client_beside_its_realm_is_not_a_tenant() {
        assert!(!Tenancy::of(&request("platform", Some("platform"))).is_tenant());
        assert!(Tenancy::of(&request("team", Some("platform"))).is_tenant());
        assert!(Tenancy::of(&request("team", None)).is_tenant());
    }

    #[test]
    fn a_tenant_may_not_take_another_tenants_client_roles() {
        let owned_by = |ns: &str| json!({"clientId": "api", "attributes": {keys::NAMESPACE: ns}});
        let team = Tenancy::of(&request("team-a", Some("platform")));
        assert!(team.refuse_foreign_client(&owned_by("team-a")).is_ok());
        assert!(team.refuse_foreign_client(&owned_by("platform")).is_ok());
        assert!(team.refuse_foreign_client(&json!({"clientId": "by-hand"})).is_ok());
        assert!(team.refuse_foreign_client(&owned_by("team-b")).is_err());
        let platform = Tenancy::of(&request("platform", Some("platform")));
        assert!(platform.refuse_foreign_client(&owned_by("team-b")).is_ok());
    }

    #[test]
    fn a_role_that_is_not_composite_is_judged_without_a_call() {
        let plain = json!({"id": "r1", "name": "orders", "composite": false, "clientRole": false});
        assert!(refuse_composite("shop", &plain, "rm-id").is_ok());
        let admin =
            json!({"id": "r2", "name": "realm-admin", "composite": true, "clientRole": true, "containerId": "rm-id"});
        let refused = refuse_composite("shop", &admin, "rm-id").expect_err("realm-admin is refused");
        assert!(matches!(refused, ReconcileError::InvalidSpec(d) if d.reason == reasons::ROLE_NOT_ALLOWED));
    }
}
