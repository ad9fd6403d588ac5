//! Realm roles and the realm's default roles, as a `KeycloakRealm` declares them.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::common::RoleSet;

/// A role of the realm. Only the fields given are managed: an unset
/// description, attributes not listed and (when `composites` is unset) the
/// role's composites keep what Keycloak holds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.composites) || !has(self.composites.realmRoles) || !(self.name in self.composites.realmRoles)").message("a role cannot be a composite of itself").field_path(".composites.realmRoles"))]
pub struct RealmRole {
    /// Name, unique in the realm.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Description shown in the admin console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub description: Option<String>,
    /// Attributes to set; attributes not listed are left alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The roles this role contains (a user granted this role gets them
    /// too). When set, the role's composites are exactly these: one added by
    /// hand is removed. When unset, they are not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composites: Option<RoleSet>,
}
