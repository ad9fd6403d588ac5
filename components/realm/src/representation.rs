//! The realm representation a `KeycloakRealm` spec asks for.

use keycloak_operator_api::KeycloakRealmSpec;
use keycloak_operator_sdk::ownership::Owner;
use serde_json::{Map, Value, json};

/// Fields of the pass-through representation that the typed spec or the
/// operator owns; the pass-through cannot set them.
const RESERVED: &[&str] = &["id", "realm", "attributes"];

/// The managed fields of the realm, as Keycloak's RealmRepresentation.
/// Settings the spec leaves unset are not included, so they stay unmanaged.
pub fn desired_representation(spec: &KeycloakRealmSpec, owner: &Owner, extra_attributes: &[(&str, &str)]) -> Value {
    let mut rep = Map::new();
    if let Some(extra) = &spec.representation {
        for (key, value) in extra {
            if !RESERVED.contains(&key.as_str()) {
                rep.insert(key.clone(), value.clone());
            }
        }
    }
    rep.insert("realm".into(), json!(spec.realm_name));
    rep.insert("enabled".into(), json!(spec.enabled.unwrap_or(true)));
    if let Some(display_name) = &spec.display_name {
        rep.insert("displayName".into(), json!(display_name));
    }
    let s = &spec.settings;
    let typed: [(&str, Option<Value>); 11] = [
        ("registrationAllowed", s.registration_allowed.map(Value::from)),
        ("loginWithEmailAllowed", s.login_with_email_allowed.map(Value::from)),
        ("resetPasswordAllowed", s.reset_password_allowed.map(Value::from)),
        ("rememberMe", s.remember_me.map(Value::from)),
        ("verifyEmail", s.verify_email.map(Value::from)),
        ("bruteForceProtected", s.brute_force_protected.map(Value::from)),
        ("sslRequired", s.ssl_required.map(|v| Value::from(v.as_keycloak()))),
        ("accessTokenLifespan", s.access_token_lifespan_seconds.map(Value::from)),
        (
            "ssoSessionIdleTimeout",
            s.sso_session_idle_timeout_seconds.map(Value::from),
        ),
        (
            "ssoSessionMaxLifespan",
            s.sso_session_max_lifespan_seconds.map(Value::from),
        ),
        ("loginTheme", s.login_theme.clone().map(Value::from)),
    ];
    for (key, value) in typed {
        if let Some(value) = value {
            rep.insert(key.into(), value);
        }
    }
    for (key, value) in s.policies.realm_fields() {
        rep.insert(key.into(), value);
    }
    for (_, realm_field, flow) in spec.flow_bindings.clone().unwrap_or_default().each() {
        if let Some(flow) = flow {
            rep.insert(realm_field.into(), json!(flow));
        }
    }
    let mut attributes: Map<String, Value> = spec.attributes.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    for (key, value) in extra_attributes {
        attributes.insert((*key).to_owned(), json!(value));
    }
    for (key, value) in owner.attributes() {
        attributes.insert(key, json!(value));
    }
    rep.insert("attributes".into(), Value::Object(attributes));
    Value::Object(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keycloak_operator_api::{ObjectReference, SslRequired};

    fn spec() -> KeycloakRealmSpec {
        serde_json::from_value(json!({
            "keycloakRef": {"name": "kc"},
            "realmName": "shop",
            "displayName": "Shop",
            "settings": {"sslRequired": "external", "accessTokenLifespanSeconds": 300},
            "attributes": {"team": "a"},
            "representation": {"realm": "other", "duplicateEmailsAllowed": false}
        }))
        .expect("valid spec")
    }

    fn owner() -> Owner {
        Owner {
            uid: "u1".into(),
            namespace: "ns".into(),
            name: "shop".into(),
            kind: "KeycloakRealm".into(),
        }
    }

    #[test]
    fn maps_typed_settings_and_pass_through_without_letting_it_rename_the_realm() {
        let rep = desired_representation(&spec(), &owner(), &[]);
        assert_eq!(rep["realm"], "shop");
        assert_eq!(rep["enabled"], true);
        assert_eq!(rep["displayName"], "Shop");
        assert_eq!(rep["sslRequired"], "external");
        assert_eq!(rep["accessTokenLifespan"], 300);
        assert_eq!(rep["duplicateEmailsAllowed"], false);
        assert!(
            rep.get("registrationAllowed").is_none(),
            "unset settings stay unmanaged"
        );
        assert_eq!(rep["attributes"]["team"], "a");
        assert_eq!(rep["attributes"]["keycloak.wasmop.dev/owner-uid"], "u1");
        let _ = (SslRequired::All, ObjectReference::default());
    }
}
