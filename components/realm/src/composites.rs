//! The composites of a role — a declared role's, or the realm's default
//! role's — kept exactly as declared.
//!
//! A role's composites are one read; clients named by `clientId` are looked
//! up once per reconcile, and a client's roles only when one of them must be
//! added. The reads are therefore bounded by the roles that declare
//! composites and the clients they name, not by the realm's size.

use std::collections::{BTreeMap, BTreeSet};

use keycloak_operator_api::RoleSet;
use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::keycloak::{self, Method};
use keycloak_operator_sdk::{ReconcileError, keycloak::Reply};
use serde_json::{Value, json};

const COMPOSITES: &str = "/realms/{realm}/roles-by-id/{role}/composites";
const CLIENTS: &str = "/realms/{realm}/clients";
const CLIENT_ROLES: &str = "/realms/{realm}/clients/{id}/roles";

/// A role as a composite: the internal id of the client defining it (`None`
/// for a realm role) and its name.
type Key = (Option<String>, String);

/// Finds the roles a composite or a role mapping names, caching what it
/// read: the realm's roles are listed at most once, and only when needed.
pub struct Resolver<'a> {
    realm: &'a str,
    /// The realm's roles, once listed.
    realm_roles: Option<Vec<Value>>,
    /// Internal ids of clients by `clientId` (`None`: no such client).
    clients: BTreeMap<String, Option<String>>,
    /// Roles of clients by internal id.
    client_roles: BTreeMap<String, Vec<Value>>,
}

/// The error of a role, or a client, that a declared set names and the realm
/// lacks.
pub fn role_not_found(message: String) -> ReconcileError {
    transient("RoleNotFound", message)
}

impl<'a> Resolver<'a> {
    /// A resolver in `realm`, over its roles when they were listed already.
    pub fn new(realm: &'a str, realm_roles: Option<Vec<Value>>) -> Self {
        Resolver {
            realm,
            realm_roles,
            clients: BTreeMap::new(),
            client_roles: BTreeMap::new(),
        }
    }

    /// The realm role `name`, if the realm has it.
    pub fn realm_role(&mut self, name: &str) -> Result<Option<Value>, ReconcileError> {
        if self.realm_roles.is_none() {
            self.realm_roles = Some(super::roles::list(self.realm)?);
        }
        Ok(self.realm_roles.iter().flatten().find(|r| r["name"] == name).cloned())
    }

    /// The internal id of the client whose `clientId` is given, if any.
    pub fn client_uuid(&mut self, client_id: &str) -> Result<Option<String>, ReconcileError> {
        if let Some(known) = self.clients.get(client_id) {
            return Ok(known.clone());
        }
        let uuid = keycloak::list(CLIENTS, &[self.realm], &[("clientId", client_id)])?
            .into_iter()
            .find(|c| c["clientId"] == client_id)
            .and_then(|c| c["id"].as_str().map(str::to_owned));
        self.clients.insert(client_id.to_owned(), uuid.clone());
        Ok(uuid)
    }

    /// The role `name` of the client with internal id `uuid`, if it has one.
    pub fn client_role(&mut self, uuid: &str, name: &str) -> Result<Option<Value>, ReconcileError> {
        if !self.client_roles.contains_key(uuid) {
            let roles = keycloak::list(CLIENT_ROLES, &[self.realm, uuid], &[])?;
            self.client_roles.insert(uuid.to_owned(), roles);
        }
        Ok(self
            .client_roles
            .get(uuid)
            .and_then(|roles| roles.iter().find(|r| r["name"] == name))
            .cloned())
    }

    /// The declared set as keys; `field` names it in errors.
    fn keys(&mut self, declared: &RoleSet, field: &str) -> Result<BTreeSet<Key>, ReconcileError> {
        let mut keys: BTreeSet<Key> = declared.realm_roles.iter().map(|n| (None, n.clone())).collect();
        for (client_id, names) in &declared.client_roles {
            let uuid = self.client_uuid(client_id)?.ok_or_else(|| {
                role_not_found(format!(
                    "{field}.clientRoles: realm {} has no client {client_id:?}",
                    self.realm
                ))
            })?;
            keys.extend(names.iter().map(|n| (Some(uuid.clone()), n.clone())));
        }
        Ok(keys)
    }

    /// The representation of the role `key`, to send in a composites body.
    fn role(&mut self, key: &Key, field: &str) -> Result<Value, ReconcileError> {
        let (container, name) = key;
        let found = match container {
            None => self.realm_role(name)?,
            Some(uuid) => self.client_role(uuid, name)?,
        };
        found.ok_or_else(|| {
            let place = if container.is_some() { "its client" } else { "the realm" };
            role_not_found(format!("{field}: {place} has no role {name:?} (realm {})", self.realm))
        })
    }
}

fn key_of(role: &Value) -> Key {
    let container = (role["clientRole"] == true).then(|| role["containerId"].as_str().unwrap_or_default().to_owned());
    (container, role["name"].as_str().unwrap_or_default().to_owned())
}

fn checked(what: &str, reply: Reply) -> Result<(), ReconcileError> {
    if reply.is_success() {
        Ok(())
    } else {
        Err(keycloak::unexpected(what, &reply))
    }
}

/// Makes the composites of the role `role_id` exactly `declared`; returns
/// whether anything changed. `known_empty` skips the read for a role known
/// to have none (just created, or not composite).
pub fn converge(
    resolver: &mut Resolver<'_>,
    role_id: &str,
    declared: &RoleSet,
    known_empty: bool,
    field: &str,
) -> Result<bool, ReconcileError> {
    let realm = resolver.realm;
    let current = if known_empty {
        Vec::new()
    } else {
        keycloak::list(COMPOSITES, &[realm, role_id], &[])?
    };
    let wanted = resolver.keys(declared, field)?;
    let remove: Vec<&Value> = current.iter().filter(|r| !wanted.contains(&key_of(r))).collect();
    let have: BTreeSet<Key> = current.iter().map(key_of).collect();
    let mut add = Vec::new();
    for key in wanted.iter().filter(|k| !have.contains(*k)) {
        add.push(resolver.role(key, field)?);
    }
    if !remove.is_empty() {
        let reply = keycloak::send(Method::Delete, COMPOSITES, &[realm, role_id], &[], Some(&json!(remove)))?;
        checked(&format!("removing composites of {field}"), reply)?;
    }
    if !add.is_empty() {
        let reply = keycloak::send(Method::Post, COMPOSITES, &[realm, role_id], &[], Some(&json!(add)))?;
        checked(&format!("adding composites of {field}"), reply)?;
    }
    Ok(!remove.is_empty() || !add.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composites_are_keyed_by_their_container() {
        let realm_role = json!({"id": "1", "name": "reader", "clientRole": false, "containerId": "realm-id"});
        let client_role = json!({"id": "2", "name": "reader", "clientRole": true, "containerId": "c1"});
        assert_eq!(key_of(&realm_role), (None, "reader".to_owned()));
        assert_eq!(key_of(&client_role), (Some("c1".to_owned()), "reader".to_owned()));
    }
}
