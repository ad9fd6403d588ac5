//! Protocol mappers of a client, converged by name.
//!
//! Mappers come with the client representation, so steady state costs no
//! extra read. A mapper the spec lists is created or updated (only the config
//! keys it gives are compared); a mapper it no longer lists is deleted only
//! if the operator recorded it as its own; any other mapper is left alone.

use keycloak_operator_api::{KeycloakClientSpec, ProtocolMapper};
use keycloak_operator_sdk::diff::drifted_fields;
use keycloak_operator_sdk::{ReconcileError, keycloak};
use serde_json::{Map, Value, json};

use crate::managed::Managed;

const MAPPERS: &str = "/realms/{realm}/clients/{id}/protocol-mappers/models";
const MAPPER: &str = "/realms/{realm}/clients/{id}/protocol-mappers/models/{mapper}";

/// A mapper as Keycloak represents it.
pub fn representation(spec: &KeycloakClientSpec, mapper: &ProtocolMapper) -> Value {
    json!({
        "name": mapper.name,
        "protocol": spec.protocol.as_keycloak(),
        "protocolMapper": mapper.protocol_mapper,
        "config": mapper.config,
    })
}

/// What has to change, computed from the client as read.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    create: Vec<Value>,
    /// (mapper id, full body)
    update: Vec<(String, Value)>,
    /// (mapper id, name)
    delete: Vec<(String, String)>,
}

fn plan(spec: &KeycloakClientSpec, client: &Value, recorded: &Managed) -> Plan {
    let current: Vec<&Value> = client
        .get("protocolMappers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let by_name = |name: &str| current.iter().find(|m| m["name"] == name).copied();
    let mut plan = Plan::default();
    for mapper in &spec.protocol_mappers {
        let want = representation(spec, mapper);
        match by_name(&mapper.name) {
            None => plan.create.push(want),
            Some(have) => {
                let id = have["id"].as_str().unwrap_or_default().to_owned();
                if have["protocolMapper"] != want["protocolMapper"] || have["protocol"] != want["protocol"] {
                    // Keycloak does not change a mapper's type in place.
                    plan.delete.push((id, mapper.name.clone()));
                    plan.create.push(want);
                } else if !drifted_fields(&want["config"], &have["config"]).is_empty() {
                    let mut config: Map<String, Value> = have["config"].as_object().cloned().unwrap_or_default();
                    if let Some(wanted) = want["config"].as_object() {
                        config.extend(wanted.clone());
                    }
                    let mut body = want.clone();
                    body["id"] = json!(id);
                    body["config"] = Value::Object(config);
                    plan.update.push((id, body));
                }
            }
        }
    }
    for have in &current {
        let name = have["name"].as_str().unwrap_or_default();
        let listed = spec.protocol_mappers.iter().any(|m| m.name == name);
        if !listed && recorded.mappers.contains(name) {
            let id = have["id"].as_str().unwrap_or_default().to_owned();
            plan.delete.push((id, name.to_owned()));
        }
    }
    plan
}

/// Converges the mappers of `client`; returns what changed, for Events.
pub fn converge(
    realm: &str,
    spec: &KeycloakClientSpec,
    client: &Value,
    recorded: &Managed,
) -> Result<Vec<String>, ReconcileError> {
    let id = client["id"].as_str().unwrap_or_default();
    let plan = plan(spec, client, recorded);
    let mut changed = Vec::new();
    for (mapper_id, name) in &plan.delete {
        keycloak::delete(MAPPER, &[realm, id, mapper_id])?;
        changed.push(format!("protocolMappers.{name}"));
    }
    for body in &plan.create {
        keycloak::create(MAPPERS, &[realm, id], body)?;
        changed.push(format!("protocolMappers.{}", body["name"].as_str().unwrap_or_default()));
    }
    for (mapper_id, body) in &plan.update {
        keycloak::update(MAPPER, &[realm, id, mapper_id], body)?;
        changed.push(format!("protocolMappers.{}", body["name"].as_str().unwrap_or_default()));
    }
    changed.sort();
    changed.dedup();
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> KeycloakClientSpec {
        serde_json::from_value(json!({
            "realmRef": {"name": "r"}, "clientId": "c",
            "protocolMappers": [
                {"name": "team", "protocolMapper": "oidc-hardcoded-claim-mapper",
                 "config": {"claim.name": "team", "claim.value": "orders"}},
                {"name": "new", "protocolMapper": "oidc-audience-mapper", "config": {}},
            ],
        }))
        .expect("valid spec")
    }

    fn mapper(id: &str, name: &str, kind: &str, config: Value) -> Value {
        json!({"id": id, "name": name, "protocol": "openid-connect", "protocolMapper": kind, "config": config})
    }

    #[test]
    fn creates_updates_and_removes_only_what_the_operator_manages() {
        let client = json!({"protocolMappers": [
            // Listed, with a changed value and a key Keycloak added itself.
            mapper("1", "team", "oidc-hardcoded-claim-mapper",
                   json!({"claim.name": "team", "claim.value": "by-hand", "introspection.token.claim": "true"})),
            // No longer listed and created by the operator.
            mapper("2", "old", "oidc-audience-mapper", json!({})),
            // Added by hand.
            mapper("3", "manual", "oidc-audience-mapper", json!({})),
        ]});
        let recorded = Managed {
            mappers: ["team".to_owned(), "old".to_owned()].into(),
            ..Managed::default()
        };
        let plan = plan(&spec(), &client, &recorded);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0]["name"], "new");
        assert_eq!(plan.update.len(), 1);
        let (id, body) = &plan.update[0];
        assert_eq!(id, "1");
        assert_eq!(body["config"]["claim.value"], "orders");
        assert_eq!(
            body["config"]["introspection.token.claim"], "true",
            "keys the spec does not give are kept"
        );
        assert_eq!(plan.delete, vec![("2".to_owned(), "old".to_owned())]);
    }

    #[test]
    fn steady_state_plans_nothing_and_a_changed_type_is_recreated() {
        let client = json!({"protocolMappers": [
            mapper("1", "team", "oidc-hardcoded-claim-mapper", json!({"claim.name": "team", "claim.value": "orders"})),
            mapper("2", "new", "oidc-audience-mapper", json!({"included.client.audience": "x"})),
        ]});
        assert_eq!(plan(&spec(), &client, &Managed::default()), Plan::default());
        let client = json!({"protocolMappers": [
            mapper("1", "team", "oidc-usermodel-attribute-mapper", json!({})),
            mapper("2", "new", "oidc-audience-mapper", json!({})),
        ]});
        let plan = plan(&spec(), &client, &Managed::default());
        assert_eq!(plan.delete, vec![("1".to_owned(), "team".to_owned())]);
        assert_eq!(plan.create.len(), 1);
    }
}
