//! Role mappings of a client's service account.
//!
//! Read only when the spec grants roles or the operator recorded some. The
//! realm's default roles, and mappings added by hand, are never removed:
//! only mappings the operator recorded as added by it.

use std::collections::{BTreeMap, BTreeSet};

use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::keycloak::{self, Method};
use keycloak_operator_sdk::{ReconcileError, keycloak::Reply};
use serde_json::{Value, json};

use crate::managed::{Managed, RoleRef};
use crate::tenancy::{self, Tenancy};

const SERVICE_ACCOUNT: &str = "/realms/{realm}/clients/{id}/service-account-user";
const MAPPINGS: &str = "/realms/{realm}/users/{user}/role-mappings";
const REALM_MAPPINGS: &str = "/realms/{realm}/users/{user}/role-mappings/realm";
const CLIENT_MAPPINGS: &str = "/realms/{realm}/users/{user}/role-mappings/clients/{client}";
// Roles are looked up by search, not by name in the path: the host
// percent-encodes dots in path values and Keycloak refuses such paths
// ("Request path not normalized"), so `orders.read` cannot be addressed.
const REALM_ROLES: &str = "/realms/{realm}/roles";
const CLIENTS: &str = "/realms/{realm}/clients";
const CLIENT_ROLES: &str = "/realms/{realm}/clients/{id}/roles";

/// The mappings a user has, as Keycloak's `role-mappings` answer holds them.
#[derive(Debug, Default)]
struct Current {
    /// Role representations (with ids) by reference.
    roles: BTreeMap<RoleRef, Value>,
    /// Internal ids of the clients whose roles are mapped, by `clientId`.
    client_ids: BTreeMap<String, String>,
}

fn current(mappings: &Value) -> Current {
    let mut current = Current::default();
    for role in mappings["realmMappings"].as_array().into_iter().flatten() {
        let name = role["name"].as_str().unwrap_or_default().to_owned();
        current.roles.insert(RoleRef { client: None, name }, role.clone());
    }
    if let Some(clients) = mappings["clientMappings"].as_object() {
        for (client_id, entry) in clients {
            if let Some(id) = entry["id"].as_str() {
                current.client_ids.insert(client_id.clone(), id.to_owned());
            }
            for role in entry["mappings"].as_array().into_iter().flatten() {
                let name = role["name"].as_str().unwrap_or_default().to_owned();
                let key = RoleRef {
                    client: Some(client_id.clone()),
                    name,
                };
                current.roles.insert(key, role.clone());
            }
        }
    }
    current
}

/// (to add, to remove)
fn plan(declared: &Managed, recorded: &Managed, current: &Current) -> (Vec<RoleRef>, Vec<RoleRef>) {
    let have: BTreeSet<&RoleRef> = current.roles.keys().collect();
    let add = declared
        .service_account_roles
        .iter()
        .filter(|r| !have.contains(r))
        .cloned()
        .collect();
    let remove = recorded
        .service_account_roles
        .iter()
        .filter(|r| !declared.service_account_roles.contains(r) && have.contains(r))
        .cloned()
        .collect();
    (add, remove)
}

/// Groups role references by the client defining them (`None`: the realm).
fn by_container(roles: &[RoleRef]) -> BTreeMap<Option<String>, Vec<String>> {
    let mut grouped: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    for role in roles {
        grouped.entry(role.client.clone()).or_default().push(role.name.clone());
    }
    grouped
}

fn checked(what: &str, reply: Reply) -> Result<(), ReconcileError> {
    if reply.is_success() {
        Ok(())
    } else {
        Err(keycloak::unexpected(what, &reply))
    }
}

fn role_not_found(what: String) -> ReconcileError {
    transient("RoleNotFound", what)
}

/// Converges the service account's role mappings of the client `id`;
/// returns what changed. A tenant's client is never granted a role that
/// contains a `realm-management` role, nor another tenant's client roles
/// (see `tenancy`).
pub fn converge(
    realm: &str,
    id: &str,
    declared: &Managed,
    recorded: &Managed,
    tenancy: &Tenancy,
) -> Result<Vec<String>, ReconcileError> {
    let tenant = tenancy.is_tenant();
    if declared.service_account_roles.is_empty() && recorded.service_account_roles.is_empty() {
        return Ok(Vec::new());
    }
    let reply = keycloak::send(Method::Get, SERVICE_ACCOUNT, &[realm, id], &[], None)?;
    if !reply.is_success() {
        // No service account (any more): nothing is mapped, nothing to remove.
        if declared.service_account_roles.is_empty() {
            return Ok(Vec::new());
        }
        return Err(keycloak::unexpected("reading the service account", &reply));
    }
    let user: Value = reply.json()?;
    let user = user["id"].as_str().unwrap_or_default().to_owned();
    let mappings = keycloak::get(MAPPINGS, &[realm, &user])?.unwrap_or_default();
    let current = current(&mappings);
    let (add, remove) = plan(declared, recorded, &current);
    let mut changed: Vec<String> = Vec::new();
    // Checked for each role about to be granted; looked up once, if needed.
    let mut realm_management: Option<String> = None;
    let mut allowed = |role: &Value| -> Result<(), ReconcileError> {
        if !tenant {
            return Ok(());
        }
        if realm_management.is_none() {
            realm_management = Some(client_uuid(realm, tenancy::REALM_MANAGEMENT)?);
        }
        tenancy::refuse_composite(realm, role, realm_management.as_deref().unwrap_or_default())
    };

    for (client, names) in by_container(&remove) {
        let bodies: Vec<&Value> = names
            .iter()
            .filter_map(|name| {
                current.roles.get(&RoleRef {
                    client: client.clone(),
                    name: name.clone(),
                })
            })
            .collect();
        let body = json!(bodies);
        let reply = match &client {
            None => keycloak::send(Method::Delete, REALM_MAPPINGS, &[realm, &user], &[], Some(&body))?,
            Some(client_id) => {
                let uuid = current
                    .client_ids
                    .get(client_id)
                    .map(String::as_str)
                    .unwrap_or_default();
                keycloak::send(Method::Delete, CLIENT_MAPPINGS, &[realm, &user, uuid], &[], Some(&body))?
            }
        };
        checked("removing service-account roles", reply)?;
        changed.extend(names.iter().map(|n| label(&client, n)));
    }

    for (client, names) in by_container(&add) {
        let reply = match &client {
            None => {
                let mut bodies = Vec::new();
                for name in &names {
                    let role = find_role(REALM_ROLES, &[realm], name)?
                        .ok_or_else(|| role_not_found(format!("realm {realm} has no role {name:?}")))?;
                    allowed(&role)?;
                    bodies.push(role);
                }
                keycloak::send(Method::Post, REALM_MAPPINGS, &[realm, &user], &[], Some(&json!(bodies)))?
            }
            Some(client_id) => {
                let uuid = match current.client_ids.get(client_id) {
                    Some(uuid) if !tenant => uuid.clone(),
                    _ => {
                        let client = client_named(realm, client_id)?;
                        tenancy.refuse_foreign_client(&client)?;
                        client["id"].as_str().unwrap_or_default().to_owned()
                    }
                };
                let mut bodies = Vec::new();
                for name in &names {
                    let role = find_role(CLIENT_ROLES, &[realm, &uuid], name)?.ok_or_else(|| {
                        role_not_found(format!("client {client_id} of realm {realm} has no role {name:?}"))
                    })?;
                    allowed(&role)?;
                    bodies.push(role);
                }
                keycloak::send(
                    Method::Post,
                    CLIENT_MAPPINGS,
                    &[realm, &user, &uuid],
                    &[],
                    Some(&json!(bodies)),
                )?
            }
        };
        checked("granting service-account roles", reply)?;
        changed.extend(names.iter().map(|n| label(&client, n)));
    }
    Ok(changed)
}

fn label(client: &Option<String>, name: &str) -> String {
    let role = RoleRef {
        client: client.clone(),
        name: name.to_owned(),
    };
    format!("serviceAccountRoles.{role}")
}

/// The role named exactly `name` among the roles at `route`.
fn find_role(route: &str, params: &[&str], name: &str) -> Result<Option<Value>, ReconcileError> {
    Ok(keycloak::list(route, params, &[("search", name), ("max", "1000")])?
        .into_iter()
        .find(|r| r["name"] == name))
}

/// The client `client_id` of `realm`, as Keycloak holds it.
fn client_named(realm: &str, client_id: &str) -> Result<Value, ReconcileError> {
    keycloak::list(CLIENTS, &[realm], &[("clientId", client_id)])?
        .into_iter()
        .find(|c| c["clientId"] == client_id && c["id"].is_string())
        .ok_or_else(|| role_not_found(format!("realm {realm} has no client {client_id:?} to take roles from")))
}

/// The internal id of the client `client_id` of `realm`.
fn client_uuid(realm: &str, client_id: &str) -> Result<String, ReconcileError> {
    Ok(client_named(realm, client_id)?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(client: Option<&str>, name: &str) -> RoleRef {
        RoleRef {
            client: client.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn adds_missing_and_removes_only_recorded_mappings() {
        let mappings = json!({
            "realmMappings": [{"id": "1", "name": "default-roles-r"}, {"id": "2", "name": "old"}],
            "clientMappings": {"api": {"id": "c1", "client": "api", "mappings": [{"id": "3", "name": "read"}]}},
        });
        let current = current(&mappings);
        assert_eq!(current.client_ids["api"], "c1");
        let declared = Managed {
            service_account_roles: [role(Some("api"), "read"), role(None, "offline_access")].into(),
            ..Managed::default()
        };
        let recorded = Managed {
            service_account_roles: [role(None, "old"), role(None, "never-mapped")].into(),
            ..Managed::default()
        };
        let (add, remove) = plan(&declared, &recorded, &current);
        assert_eq!(add, vec![role(None, "offline_access")]);
        assert_eq!(remove, vec![role(None, "old")]);
        assert_eq!(label(&Some("api".into()), "read"), "serviceAccountRoles.api/read");
    }
}
