//! Ownership of Keycloak objects, recorded as attributes on them.
//!
//! Every object a component creates carries the UID, namespace, name and kind
//! of the resource that owns it. An object owned by another resource is never
//! overwritten; an unowned one is taken over only on explicit request.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::Request;

/// Attribute keys.
pub mod keys {
    /// UID of the owning resource.
    pub const UID: &str = "keycloak.wasmop.dev/owner-uid";
    /// Namespace of the owning resource.
    pub const NAMESPACE: &str = "keycloak.wasmop.dev/owner-namespace";
    /// Name of the owning resource.
    pub const NAME: &str = "keycloak.wasmop.dev/owner-name";
    /// Kind of the owning resource.
    pub const KIND: &str = "keycloak.wasmop.dev/owner-kind";
}

/// The resource that owns an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// UID.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
}

/// Who owns an existing Keycloak object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// The resource being reconciled.
    Ours,
    /// Nobody (created by hand, or released by a retained deletion).
    Unowned,
    /// Another resource.
    Other(Owner),
}

impl Owner {
    /// The resource of a request.
    pub fn of(request: &Request) -> Self {
        Owner {
            uid: request.uid().to_owned(),
            namespace: request.namespace().to_owned(),
            name: request.name().to_owned(),
            kind: request.kind().to_owned(),
        }
    }

    /// The attributes that record this owner.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        [
            (keys::UID, &self.uid),
            (keys::NAMESPACE, &self.namespace),
            (keys::NAME, &self.name),
            (keys::KIND, &self.kind),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
    }

    /// The same attributes for objects whose attribute values are lists of
    /// strings (roles, groups, users): Keycloak refuses a plain string there.
    pub fn multivalued_attributes(&self) -> BTreeMap<String, Vec<String>> {
        self.attributes().into_iter().map(|(k, v)| (k, vec![v])).collect()
    }

    /// The attributes that release ownership: present but empty, because
    /// Keycloak's update endpoints keep attributes that are left out.
    pub fn released_attributes() -> BTreeMap<String, String> {
        [keys::UID, keys::NAMESPACE, keys::NAME, keys::KIND]
            .into_iter()
            .map(|k| (k.to_owned(), String::new()))
            .collect()
    }

    /// Who owns an object, from its `attributes` map.
    pub fn check(&self, attributes: Option<&Value>) -> Ownership {
        let get = |key: &str| attribute(attributes, key).unwrap_or_default();
        let uid = get(keys::UID);
        if uid.is_empty() {
            Ownership::Unowned
        } else if uid == self.uid {
            Ownership::Ours
        } else {
            Ownership::Other(Owner {
                uid,
                namespace: get(keys::NAMESPACE),
                name: get(keys::NAME),
                kind: get(keys::KIND),
            })
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{} (uid {})", self.kind, self.namespace, self.name, self.uid)
    }
}

/// One attribute's value. Keycloak represents attributes as strings, or as
/// lists of strings on some objects (users, groups); both are read.
pub fn attribute(attributes: Option<&Value>, key: &str) -> Option<String> {
    match attributes?.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// The update body `desired` with `current`'s other attributes carried over,
/// the desired ones winning. Keycloak replaces a realm's custom attributes
/// with the map it is sent and merges a client's; sending the full map is
/// right under both, and attributes a resource does not list (set by hand or
/// by another tool) are not the operator's to remove.
pub fn keeping_other_attributes(desired: &Value, current: &Value) -> Value {
    let mut body = desired.clone();
    let mut attributes = current
        .get("attributes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(wanted) = desired.get("attributes").and_then(Value::as_object) {
        attributes.extend(wanted.clone());
    }
    body["attributes"] = Value::Object(attributes);
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner(uid: &str) -> Owner {
        Owner {
            uid: uid.into(),
            namespace: "team-a".into(),
            name: "sso".into(),
            kind: "KeycloakRealm".into(),
        }
    }

    #[test]
    fn recognises_its_own_objects_others_and_unowned_ones() {
        let me = owner("u1");
        let ours = json!(me.attributes());
        assert_eq!(me.check(Some(&ours)), Ownership::Ours);
        let theirs = json!(owner("u2").attributes());
        assert_eq!(me.check(Some(&theirs)), Ownership::Other(owner("u2")));
        assert_eq!(me.check(None), Ownership::Unowned);
        let released = json!(Owner::released_attributes());
        assert_eq!(me.check(Some(&released)), Ownership::Unowned);
    }

    #[test]
    fn list_valued_attributes_are_recognised_too() {
        let me = owner("u1");
        let ours = json!(me.multivalued_attributes());
        assert_eq!(ours[keys::UID], json!(["u1"]));
        assert_eq!(me.check(Some(&ours)), Ownership::Ours);
    }

    #[test]
    fn other_attributes_are_carried_over_and_desired_ones_win() {
        let desired = serde_json::json!({"attributes": {"a": "new", "gone": ""}});
        let current = serde_json::json!({"attributes": {"a": "old", "b": "kept"}});
        let body = keeping_other_attributes(&desired, &current);
        assert_eq!(
            body["attributes"],
            serde_json::json!({"a": "new", "b": "kept", "gone": ""})
        );
    }
}
