//! Protocol mappers, converged by name: those of a client and those of a
//! client scope, which Keycloak serves at the same sub-routes and returns
//! inside their owner's representation (so steady state costs no read).
//!
//! A declared mapper is created, or updated when a config key it gives
//! differs (the other keys keep Keycloak's values), or recreated when its
//! type changed, which Keycloak does not do in place. A mapper no longer
//! declared is deleted only if its owner records it as the operator's own.

use serde_json::{Map, Value, json};

use crate::ReconcileError;
use crate::diff::drifted_fields;
use crate::keycloak;

/// What converging one owner's mappers takes.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Bodies of mappers to create.
    pub create: Vec<Value>,
    /// Mappers to update: (mapper id, full body).
    pub update: Vec<(String, Value)>,
    /// Mappers to delete: (mapper id, name).
    pub delete: Vec<(String, String)>,
}

impl Plan {
    /// Whether nothing has to change.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }

    /// Names of the mappers about to be created.
    pub fn created_names(&self) -> impl Iterator<Item = &str> {
        self.create.iter().map(name_of)
    }
}

fn name_of(mapper: &Value) -> &str {
    mapper["name"].as_str().unwrap_or_default()
}

/// A mapper as Keycloak represents it.
pub fn representation(name: &str, protocol: &str, mapper_type: &str, config: &Value) -> Value {
    json!({
        "name": name,
        "protocol": protocol,
        "protocolMapper": mapper_type,
        "config": config,
    })
}

/// Plans the convergence of `current` (the owner's `protocolMappers` as
/// read) towards `wanted` (bodies from [`representation`]); `owned` tells
/// the mappers the operator created.
pub fn plan(wanted: &[Value], current: &[Value], owned: impl Fn(&str) -> bool) -> Plan {
    let mut plan = Plan::default();
    for want in wanted {
        let name = name_of(want);
        match current.iter().find(|have| name_of(have) == name) {
            None => plan.create.push(want.clone()),
            Some(have) => {
                let id = have["id"].as_str().unwrap_or_default().to_owned();
                if have["protocolMapper"] != want["protocolMapper"] || have["protocol"] != want["protocol"] {
                    plan.delete.push((id, name.to_owned()));
                    plan.create.push(want.clone());
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
    for have in current {
        let name = name_of(have);
        if !wanted.iter().any(|want| name_of(want) == name) && owned(name) {
            plan.delete
                .push((have["id"].as_str().unwrap_or_default().to_owned(), name.to_owned()));
        }
    }
    plan
}

/// Carries out a plan on the mappers at `models` (a route whose last
/// placeholder is the owner's id) and `model` (the same, plus the mapper's
/// id); returns the changed mappers as `protocolMappers.<name>`.
pub fn apply(models: &str, model: &str, params: &[&str], plan: &Plan) -> Result<Vec<String>, ReconcileError> {
    let mut changed = Vec::new();
    let with_id = |id: &str| {
        params
            .iter()
            .copied()
            .chain([id])
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for (id, name) in &plan.delete {
        let params = with_id(id);
        keycloak::delete(model, &params.iter().map(String::as_str).collect::<Vec<_>>())?;
        changed.push(format!("protocolMappers.{name}"));
    }
    for body in &plan.create {
        keycloak::create(models, params, body)?;
        changed.push(format!("protocolMappers.{}", name_of(body)));
    }
    for (id, body) in &plan.update {
        let params = with_id(id);
        keycloak::update(model, &params.iter().map(String::as_str).collect::<Vec<_>>(), body)?;
        changed.push(format!("protocolMappers.{}", name_of(body)));
    }
    changed.sort();
    changed.dedup();
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper(id: &str, name: &str, kind: &str, config: Value) -> Value {
        json!({"id": id, "name": name, "protocol": "openid-connect", "protocolMapper": kind, "config": config})
    }

    fn wanted() -> Vec<Value> {
        vec![
            representation(
                "team",
                "openid-connect",
                "oidc-hardcoded-claim-mapper",
                &json!({"claim.name": "team", "claim.value": "orders"}),
            ),
            representation("new", "openid-connect", "oidc-audience-mapper", &json!({})),
        ]
    }

    #[test]
    fn creates_updates_and_removes_only_what_the_operator_owns() {
        let current = [
            // Declared, with a changed value and a key Keycloak added itself.
            mapper(
                "1",
                "team",
                "oidc-hardcoded-claim-mapper",
                json!({"claim.name": "team", "claim.value": "by-hand", "introspection.token.claim": "true"}),
            ),
            // No longer declared and created by the operator.
            mapper("2", "old", "oidc-audience-mapper", json!({})),
            // Added by hand.
            mapper("3", "manual", "oidc-audience-mapper", json!({})),
        ];
        let plan = plan(&wanted(), &current, |name| ["team", "old"].contains(&name));
        assert_eq!(plan.created_names().collect::<Vec<_>>(), ["new"]);
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
        let current = [
            mapper(
                "1",
                "team",
                "oidc-hardcoded-claim-mapper",
                json!({"claim.name": "team", "claim.value": "orders"}),
            ),
            mapper(
                "2",
                "new",
                "oidc-audience-mapper",
                json!({"included.client.audience": "x"}),
            ),
        ];
        assert!(plan(&wanted(), &current, |_| true).is_empty());
        let current = [
            mapper("1", "team", "oidc-usermodel-attribute-mapper", json!({})),
            mapper("2", "new", "oidc-audience-mapper", json!({})),
        ];
        let plan = plan(&wanted(), &current, |_| false);
        assert_eq!(plan.delete, vec![("1".to_owned(), "team".to_owned())]);
        assert_eq!(plan.created_names().collect::<Vec<_>>(), ["team"]);
    }
}
