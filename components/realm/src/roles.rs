//! Realm roles, converged by name.
//!
//! Listed in one request (with their attributes) only when the spec declares
//! roles or the operator recorded some, so a realm without roles costs
//! nothing more. A role is addressed by id, which any name can carry.

use std::collections::{BTreeMap, BTreeSet};

use keycloak_operator_api::RealmRole;
use keycloak_operator_sdk::{ReconcileError, keycloak};
use serde_json::{Value, json};

const ROLES: &str = "/realms/{realm}/roles";
const ROLE_BY_ID: &str = "/realms/{realm}/roles-by-id/{role}";

/// Every role of the realm, full representations (attributes included).
pub fn list(realm: &str) -> Result<Vec<Value>, ReconcileError> {
    keycloak::list(ROLES, &[realm], &[("briefRepresentation", "false")])
}

/// What converging the roles takes.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Bodies of roles to create.
    pub create: Vec<Value>,
    /// Roles to update: (id, full body).
    pub update: Vec<(String, Value)>,
    /// Roles the operator created that the spec no longer lists: (id, name).
    pub delete: Vec<(String, String)>,
    /// Recorded roles that are neither listed nor present any more.
    pub forget: Vec<String>,
}

impl Plan {
    /// Names of the roles about to be created.
    pub fn created_names(&self) -> impl Iterator<Item = String> + '_ {
        self.create
            .iter()
            .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
    }
}

fn name_of(role: &Value) -> &str {
    role["name"].as_str().unwrap_or_default()
}

fn id_of(role: &Value) -> String {
    role["id"].as_str().unwrap_or_default().to_owned()
}

fn attributes_of(role: &Value) -> BTreeMap<String, Vec<String>> {
    serde_json::from_value(role["attributes"].clone()).unwrap_or_default()
}

fn body(role: &RealmRole) -> Value {
    let mut body = json!({ "name": role.name });
    if let Some(description) = &role.description {
        body["description"] = json!(description);
    }
    if !role.attributes.is_empty() {
        body["attributes"] = json!(role.attributes);
    }
    body
}

/// The update of `have` that `role` asks for, if anything differs. The body
/// is the whole role: Keycloak's update clears an omitted description and
/// replaces the attributes with those sent, so the unmanaged ones are kept.
fn update(role: &RealmRole, have: &Value) -> Option<Value> {
    let mut attributes = attributes_of(have);
    let attributes_differ = role
        .attributes
        .iter()
        .any(|(key, values)| attributes.get(key) != Some(values));
    let description_differs = role
        .description
        .as_deref()
        .is_some_and(|want| have["description"].as_str().unwrap_or_default() != want);
    if !attributes_differ && !description_differs {
        return None;
    }
    attributes.extend(role.attributes.clone());
    let mut body = have.clone();
    if let Some(description) = &role.description {
        body["description"] = json!(description);
    }
    body["attributes"] = json!(attributes);
    Some(body)
}

/// Plans the roles' convergence from what Keycloak holds and what the
/// operator recorded as its own.
pub fn plan(declared: &[RealmRole], current: &[Value], recorded: &BTreeSet<String>) -> Plan {
    let mut plan = Plan::default();
    for role in declared {
        match current.iter().find(|have| name_of(have) == role.name) {
            None => plan.create.push(body(role)),
            Some(have) => {
                if let Some(body) = update(role, have) {
                    plan.update.push((id_of(have), body));
                }
            }
        }
    }
    let listed: BTreeSet<&str> = declared.iter().map(|r| r.name.as_str()).collect();
    for name in recorded.iter().filter(|name| !listed.contains(name.as_str())) {
        match current.iter().find(|have| name_of(have) == name) {
            Some(have) => plan.delete.push((id_of(have), name.clone())),
            None => plan.forget.push(name.clone()),
        }
    }
    plan
}

/// Carries out a plan; returns the changed roles (names only, for Events).
pub fn apply(realm: &str, plan: &Plan) -> Result<Vec<String>, ReconcileError> {
    let mut changed = Vec::new();
    for (id, name) in &plan.delete {
        keycloak::delete(ROLE_BY_ID, &[realm, id])?;
        changed.push(format!("roles.{name}"));
    }
    for body in &plan.create {
        keycloak::create(ROLES, &[realm], body)?;
        changed.push(format!("roles.{}", name_of(body)));
    }
    for (id, body) in &plan.update {
        keycloak::update(ROLE_BY_ID, &[realm, id], body)?;
        changed.push(format!("roles.{}", name_of(body)));
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, description: Option<&str>, attributes: &[(&str, &str)]) -> RealmRole {
        RealmRole {
            name: name.into(),
            description: description.map(Into::into),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect(),
            composites: None,
        }
    }

    #[test]
    fn creates_missing_roles_updates_differing_ones_and_deletes_only_its_own() {
        let declared = [
            role("reader", Some("Reads"), &[]),
            role("writer", None, &[("tier", "gold")]),
            role("new", None, &[]),
        ];
        let current = vec![
            json!({"id": "1", "name": "reader", "description": "old"}),
            json!({"id": "2", "name": "writer", "description": "by hand", "attributes": {"tier": ["gold"], "x": ["y"]}}),
            json!({"id": "3", "name": "retired"}),
            json!({"id": "4", "name": "manual"}),
        ];
        let recorded: BTreeSet<String> = ["reader", "retired", "vanished"].map(str::to_owned).into();
        let plan = plan(&declared, &current, &recorded);
        assert_eq!(plan.create, vec![json!({"name": "new"})]);
        assert_eq!(plan.update.len(), 1, "writer matches: {plan:?}");
        assert_eq!(plan.update[0].0, "1");
        assert_eq!(plan.update[0].1["description"], "Reads");
        assert_eq!(plan.delete, vec![("3".to_owned(), "retired".to_owned())]);
        assert_eq!(plan.forget, vec!["vanished".to_owned()]);
    }

    #[test]
    fn an_update_keeps_unmanaged_attributes_and_the_description() {
        let have = json!({"id": "2", "name": "writer", "description": "by hand", "attributes": {"x": ["y"]}});
        let body = update(&role("writer", None, &[("tier", "gold")]), &have).expect("attributes differ");
        assert_eq!(body["description"], "by hand");
        assert_eq!(body["attributes"], json!({"tier": ["gold"], "x": ["y"]}));
    }
}
