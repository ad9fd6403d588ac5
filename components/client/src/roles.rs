//! Roles of a client, converged by name.
//!
//! Read only when the spec lists roles or the operator recorded some, so a
//! client without roles costs no extra request. A role no longer listed is
//! deleted only if the operator recorded it as its own.

use std::collections::BTreeSet;

use keycloak_operator_api::{ClientRole, KeycloakClientSpec};
use keycloak_operator_sdk::{ReconcileError, keycloak};
use serde_json::{Value, json};

use crate::managed::Managed;

const ROLES: &str = "/realms/{realm}/clients/{id}/roles";
// By id, not by name: the host percent-encodes dots in path values and
// Keycloak refuses such paths ("Request path not normalized"), so a role
// named `orders.read` cannot be addressed by name.
const ROLE_BY_ID: &str = "/realms/{realm}/roles-by-id/{role}";

/// Roles to create (bodies), update ((id, body)) and delete ((id, name)).
#[derive(Debug, Default, PartialEq)]
struct Plan {
    create: Vec<Value>,
    update: Vec<(String, Value)>,
    delete: Vec<(String, String)>,
}

fn id_of(role: &Value) -> String {
    role["id"].as_str().unwrap_or_default().to_owned()
}

fn body(role: &ClientRole) -> Value {
    let mut body = json!({ "name": role.name });
    if let Some(description) = &role.description {
        body["description"] = json!(description);
    }
    body
}

fn plan(roles: &[ClientRole], current: &[Value], recorded: &Managed) -> Plan {
    let mut plan = Plan::default();
    for role in roles {
        match current.iter().find(|r| r["name"] == role.name.as_str()) {
            None => plan.create.push(body(role)),
            Some(have) => {
                let differs = role
                    .description
                    .as_deref()
                    .is_some_and(|want| have["description"].as_str().unwrap_or_default() != want);
                if differs {
                    plan.update.push((id_of(have), body(role)));
                }
            }
        }
    }
    let listed: BTreeSet<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    for have in current {
        let name = have["name"].as_str().unwrap_or_default();
        if !listed.contains(name) && recorded.roles.contains(name) {
            plan.delete.push((id_of(have), name.to_owned()));
        }
    }
    plan
}

/// Converges the roles of the client `id`; returns what changed.
pub fn converge(
    realm: &str,
    id: &str,
    spec: &KeycloakClientSpec,
    recorded: &Managed,
) -> Result<Vec<String>, ReconcileError> {
    if spec.roles.is_empty() && recorded.roles.is_empty() {
        return Ok(Vec::new());
    }
    let current = keycloak::list(ROLES, &[realm, id], &[])?;
    let plan = plan(&spec.roles, &current, recorded);
    let mut changed = Vec::new();
    for (role, name) in &plan.delete {
        keycloak::delete(ROLE_BY_ID, &[realm, role])?;
        changed.push(format!("roles.{name}"));
    }
    for body in &plan.create {
        keycloak::create(ROLES, &[realm, id], body)?;
        changed.push(format!("roles.{}", body["name"].as_str().unwrap_or_default()));
    }
    for (role, body) in &plan.update {
        keycloak::update(ROLE_BY_ID, &[realm, role], body)?;
        changed.push(format!("roles.{}", body["name"].as_str().unwrap_or_default()));
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, description: Option<&str>) -> ClientRole {
        ClientRole {
            name: name.into(),
            description: description.map(Into::into),
        }
    }

    #[test]
    fn creates_updates_and_removes_only_recorded_roles() {
        let roles = [role("reader", Some("Reads")), role("writer", None)];
        let current = vec![
            json!({"id": "1", "name": "reader", "description": "old"}),
            json!({"id": "2", "name": "gone"}),
            json!({"id": "3", "name": "manual"}),
        ];
        let recorded = Managed {
            roles: ["reader".to_owned(), "gone".to_owned()].into(),
            ..Managed::default()
        };
        let plan = plan(&roles, &current, &recorded);
        assert_eq!(plan.create, vec![json!({"name": "writer"})]);
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].0, "1");
        assert_eq!(plan.delete, vec![("2".to_owned(), "gone".to_owned())]);
    }

    #[test]
    fn an_unset_description_is_not_managed() {
        let current = vec![json!({"name": "writer", "description": "set by hand"})];
        assert_eq!(
            plan(&[role("writer", None)], &current, &Managed::default()),
            Plan::default()
        );
    }
}
