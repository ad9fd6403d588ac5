//! What a tenant's resource may not grant, whatever its component: the
//! roles that administer the realm (those of the `realm-management` client),
//! directly or through composites and groups.
//!
//! A tenant is a resource placed in a realm from another namespace than the
//! realm resource's own. Its component is not trusted, so the host looks at
//! the meaning of each of its writes that can hand out roles — role
//! mappings of users and groups, composites of roles, group membership,
//! identity-provider and federation mappers that assign roles — resolves the
//! roles involved through the admin API, and refuses the write when any of
//! them, at any depth, belongs to `realm-management`. The refusal is made
//! before the write is sent, so Keycloak never holds the grant.

use std::collections::{BTreeSet, VecDeque};

use keycloak_operator_api::reasons;
use serde_json::Value;

use super::connection::{Connection, Outgoing};
use super::route::encode_segment;
use crate::runtime::model::{KeycloakError, KeycloakResponse, Method};

/// The client whose roles administer a realm.
pub const REALM_MANAGEMENT: &str = "realm-management";
/// Roles followed per write before the guard gives up (and refuses).
const MAX_ROLES: usize = 200;

/// What a write grants, read from its path.
#[derive(Debug, PartialEq, Eq)]
enum Grant {
    /// Realm roles (role mappings of a user or group, by name).
    RealmRoles,
    /// Roles of the client with this internal id (role mappings, by name).
    ClientRoles(String),
    /// Roles made composites of another (by id).
    Composites,
    /// Membership of the group with this id.
    Group(String),
    /// A mapper whose configuration may name roles.
    Mapper,
}

/// What a write to `segments` (under `/realms/{realm}`) may grant.
fn grant_of(method: Method, segments: &[String]) -> Option<Grant> {
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, parts.as_slice()) {
        (Method::Post, ["users" | "groups", _, "role-mappings", "realm"]) => Some(Grant::RealmRoles),
        (Method::Post, ["users" | "groups", _, "role-mappings", "clients", client]) => {
            Some(Grant::ClientRoles((*client).to_owned()))
        }
        (Method::Post, ["roles", _, "composites"])
        | (Method::Post, ["roles-by-id", _, "composites"])
        | (Method::Post, ["clients", _, "roles", _, "composites"]) => Some(Grant::Composites),
        (Method::Put, ["users", _, "groups", group]) => Some(Grant::Group((*group).to_owned())),
        (Method::Post | Method::Put, ["identity-provider", "instances", _, "mappers", ..])
        | (Method::Post | Method::Put, ["components", ..]) => Some(Grant::Mapper),
        _ => None,
    }
}

/// Checks the writes of one tenant's resource in one realm.
pub struct TenantGuard<'a> {
    connection: &'a Connection,
    realm: &'a str,
    namespace: &'a str,
}

fn refused(realm: &str, namespace: &str, why: String) -> KeycloakError {
    KeycloakError::Refused {
        reason: reasons::ROLE_NOT_ALLOWED.into(),
        message: format!(
            "a resource of namespace {namespace}, a tenant of realm {realm:?}, may not grant roles of {REALM_MANAGEMENT}, which administer the realm: {why}"
        ),
    }
}

impl<'a> TenantGuard<'a> {
    /// The guard of a tenant in `namespace` writing to `realm`.
    pub fn new(connection: &'a Connection, realm: &'a str, namespace: &'a str) -> Self {
        TenantGuard {
            connection,
            realm,
            namespace,
        }
    }

    async fn get(&self, path: &str, route: &str, query: &[(String, String)]) -> Result<Option<Value>, KeycloakError> {
        let response: KeycloakResponse = self
            .connection
            .execute(&Outgoing {
                method: Method::Get,
                path,
                route,
                query,
                body: None,
            })
            .await?;
        match response.status {
            200 => Ok(serde_json::from_str(&response.body).ok()),
            404 => Ok(None),
            status => Err(KeycloakError::Unavailable(format!(
                "the host could not check a role grant: GET {route} answered {status}"
            ))),
        }
    }

    fn realm_path(&self, rest: &[&str]) -> String {
        let mut path = format!("/realms/{}", encode_segment(self.realm));
        for segment in rest {
            path.push('/');
            path.push_str(&encode_segment(segment));
        }
        path
    }

    /// The internal id of `realm-management` in this realm.
    async fn realm_management_id(&self) -> Result<Option<String>, KeycloakError> {
        let found = self
            .get(
                &self.realm_path(&["clients"]),
                "/realms/{realm}/clients",
                &[("clientId".into(), REALM_MANAGEMENT.into())],
            )
            .await?;
        Ok(found
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|clients| clients.iter().find(|c| c["clientId"] == REALM_MANAGEMENT))
            .and_then(|c| c["id"].as_str())
            .map(str::to_owned))
    }

    /// Refuses the write if it would grant a `realm-management` role.
    pub async fn check(&self, method: Method, segments: &[String], body: Option<&str>) -> Result<(), KeycloakError> {
        let Some(after_realm) = segments
            .get(2..)
            .filter(|_| segments.first().map(String::as_str) == Some("realms"))
        else {
            return Ok(());
        };
        let Some(grant) = grant_of(method, after_realm) else {
            return Ok(());
        };
        let Some(management) = self.realm_management_id().await? else {
            // A realm without realm-management: nothing administers it.
            return Ok(());
        };
        let body: Value = body.and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
        let mut roles: Vec<Value> = Vec::new();
        match &grant {
            Grant::ClientRoles(client) if *client == management => {
                return Err(refused(
                    self.realm,
                    self.namespace,
                    "a direct mapping of its client roles".into(),
                ));
            }
            Grant::ClientRoles(client) => {
                for role in body.as_array().into_iter().flatten() {
                    if let Some(name) = role["name"].as_str() {
                        roles.extend(
                            self.get(
                                &self.realm_path(&["clients", client, "roles", name]),
                                "/realms/{realm}/clients/{id}/roles/{role}",
                                &[],
                            )
                            .await?,
                        );
                    }
                    roles.push(role.clone());
                }
            }
            Grant::RealmRoles | Grant::Composites => {
                for role in body.as_array().into_iter().flatten() {
                    if let Some(name) = role["name"]
                        .as_str()
                        .filter(|_| !role["clientRole"].as_bool().unwrap_or(false))
                    {
                        roles.extend(
                            self.get(&self.realm_path(&["roles", name]), "/realms/{realm}/roles/{role}", &[])
                                .await?,
                        );
                    }
                    roles.push(role.clone());
                }
            }
            Grant::Group(group) => roles.extend(self.group_roles(group).await?),
            Grant::Mapper => {
                for name in mapper_roles(&body) {
                    match name.split_once('.') {
                        Some((client, _)) if client == REALM_MANAGEMENT => {
                            return Err(refused(
                                self.realm,
                                self.namespace,
                                format!("a mapper that assigns {name}"),
                            ));
                        }
                        _ => roles.extend(
                            self.get(&self.realm_path(&["roles", &name]), "/realms/{realm}/roles/{role}", &[])
                                .await?,
                        ),
                    }
                }
            }
        }
        if let Some(path) = self.administering(&roles, &management).await? {
            return Err(refused(self.realm, self.namespace, path));
        }
        Ok(())
    }

    /// The roles a group grants: its own mappings and its ancestors'.
    async fn group_roles(&self, group: &str) -> Result<Vec<Value>, KeycloakError> {
        let mut roles = Vec::new();
        let mut next = Some(group.to_owned());
        let mut seen = BTreeSet::new();
        while let Some(id) = next.take() {
            if !seen.insert(id.clone()) || seen.len() > 50 {
                break;
            }
            let mappings = self
                .get(
                    &self.realm_path(&["groups", &id, "role-mappings"]),
                    "/realms/{realm}/groups/{id}/role-mappings",
                    &[],
                )
                .await?
                .unwrap_or(Value::Null);
            roles.extend(mappings["realmMappings"].as_array().into_iter().flatten().cloned());
            if let Some(clients) = mappings["clientMappings"].as_object() {
                for client in clients.values() {
                    roles.extend(client["mappings"].as_array().into_iter().flatten().map(|role| {
                        let mut role = role.clone();
                        role["clientRole"] = Value::Bool(true);
                        if role["containerId"].is_null() {
                            role["containerId"] = client["id"].clone();
                        }
                        role
                    }));
                }
            }
            let detail = self
                .get(&self.realm_path(&["groups", &id]), "/realms/{realm}/groups/{id}", &[])
                .await?
                .unwrap_or(Value::Null);
            next = detail["parentId"].as_str().map(str::to_owned);
        }
        Ok(roles)
    }

    /// The first path from `roles` to a role of `realm-management`, through
    /// composites; `None` when there is none.
    async fn administering(&self, roles: &[Value], management: &str) -> Result<Option<String>, KeycloakError> {
        let mut queue: VecDeque<(Value, String)> = roles
            .iter()
            .map(|r| (r.clone(), r["name"].as_str().unwrap_or("?").to_owned()))
            .collect();
        let mut seen = BTreeSet::new();
        while let Some((role, path)) = queue.pop_front() {
            if role["clientRole"].as_bool() == Some(true) && role["containerId"].as_str() == Some(management) {
                return Ok(Some(format!("{path} is a role of {REALM_MANAGEMENT}")));
            }
            let Some(id) = role["id"].as_str().map(str::to_owned) else {
                continue;
            };
            if !seen.insert(id.clone()) {
                continue;
            }
            if seen.len() > MAX_ROLES {
                return Ok(Some(format!(
                    "more than {MAX_ROLES} roles to follow from {path}; the host does not grant what it cannot check"
                )));
            }
            // Whether it is a composite is the server's word, not the body's.
            let stored = self
                .get(
                    &self.realm_path(&["roles-by-id", &id]),
                    "/realms/{realm}/roles-by-id/{id}",
                    &[],
                )
                .await?;
            let Some(stored) = stored else { continue };
            if stored["clientRole"].as_bool() == Some(true) && stored["containerId"].as_str() == Some(management) {
                return Ok(Some(format!("{path} is a role of {REALM_MANAGEMENT}")));
            }
            if stored["composite"].as_bool() == Some(true) {
                let composites = self
                    .get(
                        &self.realm_path(&["roles-by-id", &id, "composites"]),
                        "/realms/{realm}/roles-by-id/{id}/composites",
                        &[],
                    )
                    .await?
                    .unwrap_or(Value::Null);
                for inner in composites.as_array().into_iter().flatten() {
                    let name = inner["name"].as_str().unwrap_or("?");
                    queue.push_back((inner.clone(), format!("{path} > {name}")));
                }
            }
        }
        Ok(None)
    }
}

/// Role names a mapper's configuration assigns (`role`, `roles`), as
/// `client.role` or a realm role's name.
fn mapper_roles(body: &Value) -> Vec<String> {
    let config = &body["config"];
    let mut names = Vec::new();
    for key in ["role", "roles", "role.name"] {
        match &config[key] {
            Value::String(name) => names.push(name.clone()),
            Value::Array(values) => {
                for value in values {
                    if let Value::String(name) = value {
                        names.extend(name.split(',').map(|n| n.trim().to_owned()));
                    }
                }
            }
            _ => {}
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(path: &str) -> Vec<String> {
        path.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn writes_that_grant_roles_are_recognised_by_meaning() {
        assert_eq!(
            grant_of(Method::Post, &segments("users/u1/role-mappings/realm")),
            Some(Grant::RealmRoles)
        );
        assert_eq!(
            grant_of(Method::Post, &segments("groups/g1/role-mappings/clients/c1")),
            Some(Grant::ClientRoles("c1".into()))
        );
        assert_eq!(
            grant_of(Method::Post, &segments("roles/ops/composites")),
            Some(Grant::Composites)
        );
        assert_eq!(
            grant_of(Method::Post, &segments("clients/c1/roles/r/composites")),
            Some(Grant::Composites)
        );
        assert_eq!(
            grant_of(Method::Put, &segments("users/u1/groups/g2")),
            Some(Grant::Group("g2".into()))
        );
        assert_eq!(
            grant_of(Method::Post, &segments("identity-provider/instances/gh/mappers")),
            Some(Grant::Mapper)
        );
        assert_eq!(grant_of(Method::Get, &segments("users/u1/role-mappings/realm")), None);
        assert_eq!(grant_of(Method::Post, &segments("users")), None);
        assert_eq!(
            grant_of(Method::Delete, &segments("users/u1/role-mappings/realm")),
            None
        );
    }

    #[test]
    fn mapper_configurations_name_their_roles() {
        let body = serde_json::json!({"config": {"role": "realm-management.realm-admin", "roles": ["a, b"]}});
        assert_eq!(mapper_roles(&body), vec!["realm-management.realm-admin", "a", "b"]);
        assert!(mapper_roles(&serde_json::json!({"config": {}})).is_empty());
    }
}
