//! Default and optional client scopes of a client.
//!
//! Keycloak ignores scope lists on a client update; they change one by one
//! through endpoints taking the scope's id. The client representation names
//! the current scopes, so steady state costs no extra read; the realm's
//! scopes are listed only when something has to change.

use std::collections::BTreeSet;

use keycloak_operator_api::KeycloakClientSpec;
use keycloak_operator_sdk::ReconcileError;
use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::keycloak::{self, Method};
use serde_json::Value;

const REALM_SCOPES: &str = "/realms/{realm}/client-scopes";
const DEFAULT_SCOPE: &str = "/realms/{realm}/clients/{id}/default-client-scopes/{scope}";
const OPTIONAL_SCOPE: &str = "/realms/{realm}/clients/{id}/optional-client-scopes/{scope}";

/// Scopes Keycloak attaches and detaches itself (with the service account);
/// an exact list in the spec does not remove them.
const KEYCLOAK_MANAGED: &[&str] = &["service_account"];

/// Which list a scope is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Default,
    Optional,
}

impl List {
    fn field(self) -> &'static str {
        match self {
            List::Default => "defaultClientScopes",
            List::Optional => "optionalClientScopes",
        }
    }

    fn route(self) -> &'static str {
        match self {
            List::Default => DEFAULT_SCOPE,
            List::Optional => OPTIONAL_SCOPE,
        }
    }
}

#[derive(Debug, Default, PartialEq)]
struct Plan {
    remove: Vec<(List, String)>,
    add: Vec<(List, String)>,
}

fn plan(spec: &KeycloakClientSpec, client: &Value) -> Plan {
    let mut plan = Plan::default();
    let lists = [
        (List::Default, spec.default_client_scopes.as_ref()),
        (List::Optional, spec.optional_client_scopes.as_ref()),
    ];
    for (list, wanted) in lists {
        let Some(wanted) = wanted else { continue };
        let wanted: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
        let have: BTreeSet<&str> = client
            .get(list.field())
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        plan.add
            .extend(wanted.difference(&have).map(|s| (list, (*s).to_owned())));
        plan.remove.extend(
            have.difference(&wanted)
                .filter(|s| !KEYCLOAK_MANAGED.contains(s))
                .map(|s| (list, (*s).to_owned())),
        );
    }
    plan
}

/// Converges the scope lists the spec sets; returns the lists that changed.
pub fn converge(realm: &str, spec: &KeycloakClientSpec, client: &Value) -> Result<Vec<String>, ReconcileError> {
    let plan = plan(spec, client);
    if plan.add.is_empty() && plan.remove.is_empty() {
        return Ok(Vec::new());
    }
    let id = client["id"].as_str().unwrap_or_default();
    let scopes = keycloak::list(REALM_SCOPES, &[realm], &[])?;
    let scope_id = |name: &str| {
        scopes
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["id"].as_str())
            .map(str::to_owned)
    };
    let mut changed = BTreeSet::new();
    // Removals first: a scope moving from one list to the other must leave
    // the first before Keycloak accepts it in the second.
    for (list, name) in &plan.remove {
        if let Some(scope) = scope_id(name) {
            keycloak::delete(list.route(), &[realm, id, &scope])?;
            changed.insert(list.field().to_owned());
        }
    }
    for (list, name) in &plan.add {
        let scope = scope_id(name).ok_or_else(|| {
            transient(
                "ClientScopeNotFound",
                format!(
                    "{} names client scope {name:?}, which realm {realm} does not have",
                    list.field()
                ),
            )
        })?;
        let reply = keycloak::send(Method::Put, list.route(), &[realm, id, &scope], &[], None)?;
        if !reply.is_success() {
            return Err(keycloak::unexpected(
                &format!("adding client scope {name} to {}", list.field()),
                &reply,
            ));
        }
        changed.insert(list.field().to_owned());
    }
    Ok(changed.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exact_lists_except_scopes_keycloak_manages_and_unset_lists_are_left_alone() {
        let spec: KeycloakClientSpec = serde_json::from_value(json!({
            "realmRef": {"name": "r"}, "clientId": "c",
            "defaultClientScopes": ["profile", "email"],
        }))
        .expect("valid spec");
        let client = json!({
            "defaultClientScopes": ["profile", "roles", "service_account"],
            "optionalClientScopes": ["address"],
        });
        let plan = plan(&spec, &client);
        assert_eq!(plan.add, vec![(List::Default, "email".to_owned())]);
        assert_eq!(plan.remove, vec![(List::Default, "roles".to_owned())]);
        let steady = json!({"defaultClientScopes": ["email", "profile", "service_account"]});
        assert_eq!(super::plan(&spec, &steady), Plan::default());
    }
}
