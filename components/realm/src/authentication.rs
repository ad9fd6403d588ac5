//! How users log in: the realm's flow bindings and its required actions.
//!
//! Flow bindings are fields of the realm, written with it; Keycloak answers
//! a binding to a flow it lacks with a bare 500, so a binding that is about
//! to change is checked against the realm's flows first (one read, only
//! then). Required actions are listed in one read when the spec declares
//! some, and each differing one is written whole.

use keycloak_operator_api::{KeycloakRealmSpec, RequiredAction};
use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::{ReconcileError, keycloak};
use serde_json::{Value, json};

const FLOWS: &str = "/realms/{realm}/authentication/flows";
const REQUIRED_ACTIONS: &str = "/realms/{realm}/authentication/required-actions";
const REQUIRED_ACTION: &str = "/realms/{realm}/authentication/required-actions/{alias}";
const UNREGISTERED: &str = "/realms/{realm}/authentication/unregistered-required-actions";
const REGISTER: &str = "/realms/{realm}/authentication/register-required-action";

/// The fields of Keycloak's RealmRepresentation that bind a flow, each
/// with the spec field that sets it in typed form.
fn bindings(spec: &KeycloakRealmSpec) -> Vec<(String, &'static str)> {
    let typed = spec.flow_bindings.clone().unwrap_or_default();
    typed
        .each()
        .into_iter()
        .map(|(field, realm_field, set)| {
            let origin = if set.is_some() {
                format!("spec.flowBindings.{field}")
            } else {
                format!("spec.representation.{realm_field}")
            };
            (origin, realm_field)
        })
        .collect()
}

/// `desired` without its flow bindings: a realm is created with Keycloak's
/// own flows, and bound once they are checked.
pub fn without_bindings(spec: &KeycloakRealmSpec, desired: &Value) -> Value {
    let mut body = desired.clone();
    if let Some(object) = body.as_object_mut() {
        for (_, realm_field) in bindings(spec) {
            object.remove(realm_field);
        }
    }
    body
}

/// Refuses, before the realm is written, a binding that would change to a
/// flow the realm lacks. Reads the flows only when a binding changes.
pub fn check_bindings(
    realm: &str,
    spec: &KeycloakRealmSpec,
    desired: &Value,
    existing: &Value,
) -> Result<(), ReconcileError> {
    let changing: Vec<(String, &str)> = bindings(spec)
        .into_iter()
        .filter_map(|(origin, realm_field)| {
            let want = desired[realm_field].as_str()?;
            (existing[realm_field].as_str() != Some(want)).then_some((origin, want))
        })
        .collect();
    if changing.is_empty() {
        return Ok(());
    }
    let flows = keycloak::list(FLOWS, &[realm], &[])?;
    for (origin, alias) in changing {
        if !flows.iter().any(|flow| flow["alias"] == alias) {
            return Err(transient(
                "FlowNotFound",
                format!("{origin} names authentication flow {alias:?}, which realm {realm} does not have"),
            ));
        }
    }
    Ok(())
}

/// `have` as `action` wants it, if anything differs.
fn update(action: &RequiredAction, have: &Value) -> Option<Value> {
    let wanted = [
        ("enabled", action.enabled.map(Value::from)),
        ("defaultAction", action.default_action.map(Value::from)),
        ("priority", action.priority.map(Value::from)),
    ];
    let mut body = have.clone();
    let mut differs = false;
    for (field, value) in wanted {
        if let Some(value) = value
            && have[field] != value
        {
            body[field] = value;
            differs = true;
        }
    }
    differs.then_some(body)
}

/// Makes the declared required actions what the spec says, registering
/// those Keycloak knows but the realm has not registered. Returns what
/// changed, for Events.
pub fn converge_required_actions(realm: &str, declared: &[RequiredAction]) -> Result<Vec<String>, ReconcileError> {
    if declared.is_empty() {
        return Ok(Vec::new());
    }
    let mut held = keycloak::list(REQUIRED_ACTIONS, &[realm], &[])?;
    let missing: Vec<(usize, &RequiredAction)> = declared
        .iter()
        .enumerate()
        .filter(|(_, action)| !held.iter().any(|have| have["alias"] == action.alias.as_str()))
        .collect();
    let mut changed = Vec::new();
    if !missing.is_empty() {
        let unregistered = keycloak::list(UNREGISTERED, &[realm], &[])?;
        // Checked all before any is registered, so that a wrong alias
        // writes nothing.
        let mut registrations = Vec::new();
        for (index, action) in &missing {
            let provider = unregistered
                .iter()
                .find(|p| p["providerId"] == action.alias.as_str())
                .ok_or_else(|| {
                    transient(
                        "RequiredActionNotFound",
                        format!(
                            "spec.requiredActions[{index}].alias: Keycloak has no required action {:?} (realm {realm})",
                            action.alias
                        ),
                    )
                })?;
            registrations.push(json!({"providerId": action.alias, "name": provider["name"]}));
        }
        for body in &registrations {
            keycloak::create(REGISTER, &[realm], body)?;
        }
        changed.extend(missing.iter().map(|(_, a)| format!("requiredActions.{}", a.alias)));
        held = keycloak::list(REQUIRED_ACTIONS, &[realm], &[])?;
    }
    for action in declared {
        let Some(have) = held.iter().find(|have| have["alias"] == action.alias.as_str()) else {
            continue;
        };
        if let Some(body) = update(action, have) {
            keycloak::update(REQUIRED_ACTION, &[realm, &action.alias], &body)?;
            changed.push(format!("requiredActions.{}", action.alias));
        }
    }
    changed.dedup();
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: Value) -> KeycloakRealmSpec {
        let mut base = json!({"keycloakRef": {"name": "kc"}, "realmName": "r"});
        if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), value) {
            base.extend(extra);
        }
        serde_json::from_value(base).expect("valid spec")
    }

    #[test]
    fn only_the_fields_given_are_compared_and_the_rest_is_sent_back() {
        let have = json!({"alias": "TERMS_AND_CONDITIONS", "name": "Terms", "providerId": "TERMS_AND_CONDITIONS",
                          "enabled": false, "defaultAction": false, "priority": 20, "config": {}});
        let action = RequiredAction {
            alias: "TERMS_AND_CONDITIONS".into(),
            enabled: Some(true),
            ..Default::default()
        };
        let body = update(&action, &have).expect("enabled differs");
        assert_eq!(body["enabled"], true);
        assert_eq!(body["priority"], 20);
        assert_eq!(body["name"], "Terms");
        let same = RequiredAction {
            priority: Some(20),
            ..action.clone()
        };
        assert!(update(&same, &body).is_none());
    }

    #[test]
    fn a_new_realm_is_created_without_its_bindings_and_the_error_names_the_typed_field() {
        let spec = spec(json!({"flowBindings": {"browser": "custom"}, "representation": {"directGrantFlow": "dg"}}));
        let desired = json!({"realm": "r", "browserFlow": "custom", "directGrantFlow": "dg", "enabled": true});
        assert_eq!(
            without_bindings(&spec, &desired),
            json!({"realm": "r", "enabled": true})
        );
        let origins: Vec<String> = bindings(&spec).into_iter().map(|(origin, _)| origin).take(2).collect();
        assert_eq!(
            origins,
            ["spec.flowBindings.browser", "spec.representation.directGrantFlow"]
        );
    }
}
