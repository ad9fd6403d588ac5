//! What the operator created inside a realm, recorded in Keycloak itself.
//!
//! A role the spec stops listing is deleted only if the operator created
//! it; roles made by hand, or present before the realm was adopted, are
//! never deleted. That knowledge must survive operator restarts and lost
//! status writes, so it is a realm attribute, read with the realm in the
//! same request.

use std::collections::BTreeSet;

use keycloak_operator_sdk::ownership::attribute;
use serde_json::Value;

/// Attribute key: names of the realm roles the operator created (JSON array).
pub const ROLES: &str = "keycloak.wasmop.dev/managed-roles";

/// Every bookkeeping key: changes to them are the operator's own, never
/// drift to report.
pub const ALL: [&str; 1] = [ROLES];

/// Names of the sub-objects the operator created, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// Realm role names.
    pub roles: BTreeSet<String>,
}

impl Records {
    /// What a realm's attributes record. An unreadable record counts as
    /// empty: the operator then deletes nothing, which is the safe side.
    pub fn of(realm: &Value) -> Self {
        let roles = attribute(realm.get("attributes"), ROLES)
            .and_then(|text| serde_json::from_str::<Vec<String>>(&text).ok())
            .unwrap_or_default()
            .into_iter()
            .collect();
        Records { roles }
    }

    /// The attributes that hold this record. An empty record is an empty
    /// value, which removes the attribute.
    pub fn attributes(&self) -> [(&'static str, String); 1] {
        let roles = if self.roles.is_empty() {
            String::new()
        } else {
            Value::from(self.roles.iter().cloned().collect::<Vec<_>>()).to_string()
        };
        [(ROLES, roles)]
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
        };
        let [(key, value)] = records.attributes();
        let realm = json!({ "attributes": { key: value } });
        assert_eq!(Records::of(&realm), records);
        assert_eq!(Records::of(&json!({"attributes": {ROLES: "nope"}})), Records::default());
        assert_eq!(Records::default().attributes()[0].1, "");
    }

    #[test]
    fn only_record_keys_are_bookkeeping() {
        assert!(is_bookkeeping("attributes.keycloak.wasmop.dev/managed-roles"));
        assert!(!is_bookkeeping("attributes.team"));
        assert!(!is_bookkeeping("displayName"));
    }
}
