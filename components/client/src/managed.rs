//! What the operator created inside a client, recorded in Keycloak itself.
//!
//! Sub-objects a resource stops listing (protocol mappers, client roles,
//! service-account role mappings) are removed only if the operator created
//! them. That knowledge must survive operator restarts and lost status
//! writes, so it is kept as client attributes next to the ownership ones,
//! read with the client in the same request.

use std::collections::{BTreeMap, BTreeSet};

use keycloak_operator_api::{KeycloakClientSpec, ServiceAccountRoles};
use keycloak_operator_sdk::ownership::attribute;
use serde_json::Value;

/// Attribute keys of the bookkeeping.
pub mod keys {
    /// Names of the protocol mappers the operator manages (JSON array).
    pub const MAPPERS: &str = "keycloak.wasmop.dev/managed-protocol-mappers";
    /// Names of the client roles the operator manages (JSON array).
    pub const ROLES: &str = "keycloak.wasmop.dev/managed-roles";
    /// Role mappings of the service account the operator added (JSON, the
    /// shape of `spec.oidc.serviceAccountRoles`).
    pub const SERVICE_ACCOUNT_ROLES: &str = "keycloak.wasmop.dev/managed-service-account-roles";
    /// The value of the rotate-secret annotation last acted on.
    pub const ROTATION_HANDLED: &str = "keycloak.wasmop.dev/rotate-secret-handled";

    /// Every bookkeeping key: changes to them are the operator's own, never
    /// drift to report.
    pub const ALL: [&str; 4] = [MAPPERS, ROLES, SERVICE_ACCOUNT_ROLES, ROTATION_HANDLED];
}

/// A role by name, of the realm (`client: None`) or of a client (by `clientId`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoleRef {
    /// The `clientId` of the client defining the role; `None` for a realm role.
    pub client: Option<String>,
    /// The role's name.
    pub name: String,
}

impl std::fmt::Display for RoleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.client {
            Some(client) => write!(f, "{client}/{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

/// Sub-objects of one client, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managed {
    /// Protocol mapper names.
    pub mappers: BTreeSet<String>,
    /// Client role names.
    pub roles: BTreeSet<String>,
    /// Service-account role mappings.
    pub service_account_roles: BTreeSet<RoleRef>,
}

impl Managed {
    /// What the spec lists.
    pub fn declared(spec: &KeycloakClientSpec) -> Self {
        let service_account_roles = spec
            .oidc
            .as_ref()
            .and_then(|o| o.service_account_roles.as_ref())
            .map(role_refs)
            .unwrap_or_default();
        Managed {
            mappers: spec.protocol_mappers.iter().map(|m| m.name.clone()).collect(),
            roles: spec.roles.iter().map(|r| r.name.clone()).collect(),
            service_account_roles,
        }
    }

    /// What a client's attributes record. Unreadable records count as
    /// empty: the operator then removes nothing, which is the safe side.
    pub fn recorded(client: &Value) -> Self {
        let attributes = client.get("attributes");
        let names = |key: &str| -> BTreeSet<String> {
            attribute(attributes, key)
                .and_then(|text| serde_json::from_str::<Vec<String>>(&text).ok())
                .unwrap_or_default()
                .into_iter()
                .collect()
        };
        let service_account_roles = attribute(attributes, keys::SERVICE_ACCOUNT_ROLES)
            .and_then(|text| serde_json::from_str::<ServiceAccountRoles>(&text).ok())
            .map(|roles| role_refs(&roles))
            .unwrap_or_default();
        Managed {
            mappers: names(keys::MAPPERS),
            roles: names(keys::ROLES),
            service_account_roles,
        }
    }

    /// Both together: what must be recorded while sub-objects are created
    /// or removed, so a failure half-way never loses track of one.
    pub fn union(&self, other: &Managed) -> Managed {
        Managed {
            mappers: self.mappers.union(&other.mappers).cloned().collect(),
            roles: self.roles.union(&other.roles).cloned().collect(),
            service_account_roles: self
                .service_account_roles
                .union(&other.service_account_roles)
                .cloned()
                .collect(),
        }
    }

    /// The attributes that record this. Empty records are written as empty
    /// values, which Keycloak treats as "remove the attribute".
    pub fn attributes(&self) -> BTreeMap<String, String> {
        let list = |names: &BTreeSet<String>| {
            if names.is_empty() {
                String::new()
            } else {
                Value::from(names.iter().cloned().collect::<Vec<_>>()).to_string()
            }
        };
        let service_account = if self.service_account_roles.is_empty() {
            String::new()
        } else {
            let mut roles = ServiceAccountRoles::default();
            for role in &self.service_account_roles {
                match &role.client {
                    Some(client) => roles
                        .client_roles
                        .entry(client.clone())
                        .or_default()
                        .push(role.name.clone()),
                    None => roles.realm_roles.push(role.name.clone()),
                }
            }
            serde_json::to_string(&roles).unwrap_or_default()
        };
        [
            (keys::MAPPERS, list(&self.mappers)),
            (keys::ROLES, list(&self.roles)),
            (keys::SERVICE_ACCOUNT_ROLES, service_account),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

fn role_refs(roles: &ServiceAccountRoles) -> BTreeSet<RoleRef> {
    let realm = roles.realm_roles.iter().map(|name| RoleRef {
        client: None,
        name: name.clone(),
    });
    let clients = roles.client_roles.iter().flat_map(|(client, names)| {
        names.iter().map(move |name| RoleRef {
            client: Some(client.clone()),
            name: name.clone(),
        })
    });
    realm.chain(clients).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: Value) -> KeycloakClientSpec {
        serde_json::from_value(value).expect("valid spec")
    }

    #[test]
    fn records_round_trip_through_attributes() {
        let declared = Managed::declared(&spec(json!({
            "realmRef": {"name": "r"},
            "clientId": "c",
            "protocolMappers": [{"name": "team", "protocolMapper": "oidc-hardcoded-claim-mapper"}],
            "roles": [{"name": "reader"}],
            "oidc": {"serviceAccountsEnabled": true, "serviceAccountRoles": {
                "realmRoles": ["offline_access"], "clientRoles": {"other": ["admin"]}}},
        })));
        assert_eq!(declared.mappers.len(), 1);
        assert_eq!(declared.service_account_roles.len(), 2);
        let client = json!({ "attributes": declared.attributes() });
        assert_eq!(Managed::recorded(&client), declared);
    }

    #[test]
    fn nothing_recorded_or_unreadable_records_mean_nothing_to_remove() {
        assert_eq!(Managed::recorded(&json!({})), Managed::default());
        let broken = json!({"attributes": {keys::MAPPERS: "not json"}});
        assert_eq!(Managed::recorded(&broken), Managed::default());
        assert!(Managed::default().attributes().values().all(String::is_empty));
    }

    #[test]
    fn union_keeps_what_is_about_to_be_removed() {
        let old = Managed {
            mappers: ["a".to_owned()].into(),
            ..Managed::default()
        };
        let new = Managed {
            mappers: ["b".to_owned()].into(),
            ..Managed::default()
        };
        let both = old.union(&new);
        assert_eq!(both.mappers.len(), 2);
    }
}
