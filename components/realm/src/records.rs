//! What the operator created inside a realm, recorded in Keycloak itself.
//!
//! A role, a group, a client scope or an identity provider the spec stops listing is deleted only if the operator
//! created it; those made by hand, or present before the realm was adopted,
//! are never deleted. That knowledge must survive operator restarts and lost
//! status writes, so it is a realm attribute per kind, read with the realm
//! in the same request.

use std::collections::BTreeSet;

use keycloak_operator_sdk::ownership::attribute;
use serde_json::Value;

/// Attribute key: names of the realm roles the operator created (JSON array).
pub const ROLES: &str = "keycloak.wasmop.dev/managed-roles";
/// Attribute key: paths of the groups the operator created (JSON array).
pub const GROUPS: &str = "keycloak.wasmop.dev/managed-groups";
/// Attribute key: names of the client scopes the operator created (JSON array).
pub const CLIENT_SCOPES: &str = "keycloak.wasmop.dev/managed-client-scopes";
/// Attribute key: aliases of the identity providers the operator created
/// (JSON array).
pub const IDENTITY_PROVIDERS: &str = "keycloak.wasmop.dev/managed-identity-providers";

/// Every bookkeeping key: changes to them are the operator's own, never
/// drift to report.
pub const ALL: [&str; 4] = [ROLES, GROUPS, CLIENT_SCOPES, IDENTITY_PROVIDERS];

/// Names of the sub-objects the operator created, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// Realm role names.
    pub roles: BTreeSet<String>,
    /// Group paths.
    pub groups: BTreeSet<String>,
    /// Client scope names.
    pub client_scopes: BTreeSet<String>,
    /// Identity provider aliases.
    pub identity_providers: BTreeSet<String>,
}

/// The names one attribute records. An unreadable record counts as empty:
/// the operator then deletes nothing, which is the safe side.
fn recorded(realm: &Value, key: &str) -> BTreeSet<String> {
    attribute(realm.get("attributes"), key)
        .and_then(|text| serde_json::from_str::<Vec<String>>(&text).ok())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// The attribute value recording `names`; empty (which removes the
/// attribute) when there are none.
fn value(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        String::new()
    } else {
        Value::from(names.iter().cloned().collect::<Vec<_>>()).to_string()
    }
}

impl Records {
    /// What a realm's attributes record.
    pub fn of(realm: &Value) -> Self {
        Records {
            roles: recorded(realm, ROLES),
            groups: recorded(realm, GROUPS),
            client_scopes: recorded(realm, CLIENT_SCOPES),
            identity_providers: recorded(realm, IDENTITY_PROVIDERS),
        }
    }

    /// The attributes that hold this record.
    pub fn attributes(&self) -> [(&'static str, String); 4] {
        [
            (ROLES, value(&self.roles)),
            (GROUPS, value(&self.groups)),
            (CLIENT_SCOPES, value(&self.client_scopes)),
            (IDENTITY_PROVIDERS, value(&self.identity_providers)),
        ]
    }
}

/// Whether a drifted field path is the operator's own bookkeeping.
pub fn is_bookkeeping(path: &str) -> bool {
    path.strip_prefix("attributes.").is_some_and(|key| ALL.contains(&key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_round_trip_and_unreadable_ones_mean_nothing_to_delete() {
        let records = Records {
            roles: ["a".to_owned(), "b.c".to_owned()].into(),
            groups: ["/eng".to_owned(), "/eng/backend".to_owned()].into(),
            client_scopes: ["orders".to_owned()].into(),
            identity_providers: ["corp".to_owned()].into(),
        };
        let attributes: serde_json::Map<String, Value> = records
            .attributes()
            .into_iter()
            .map(|(key, value)| (key.to_owned(), json!(value)))
            .collect();
        let realm = json!({ "attributes": attributes });
        assert_eq!(Records::of(&realm), records);
        assert_eq!(Records::of(&json!({"attributes": {ROLES: "nope"}})), Records::default());
        assert!(Records::default().attributes().iter().all(|(_, v)| v.is_empty()));
    }

    #[test]
    fn only_record_keys_are_bookkeeping() {
        assert!(is_bookkeeping("attributes.keycloak.wasmop.dev/managed-roles"));
        assert!(is_bookkeeping("attributes.keycloak.wasmop.dev/managed-groups"));
        assert!(is_bookkeeping("attributes.keycloak.wasmop.dev/managed-client-scopes"));
        assert!(!is_bookkeeping("attributes.team"));
        assert!(!is_bookkeeping("displayName"));
    }
}
