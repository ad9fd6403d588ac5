//! Groups of a realm and its default groups, as a `KeycloakRealm` declares
//! them.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::common::RoleSet;

/// A group of the realm, named by its path: `/engineering` is a top-level
/// group, `/engineering/backend` its subgroup. A subgroup's parent is either
/// declared too or already exists in Keycloak. Only the fields given are
/// managed: attributes not listed and (when `roles` is unset) the group's
/// role mappings keep what Keycloak holds. Members are not managed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealmGroup {
    /// Path of the group, from the realm's top: `/parent/child`. A name
    /// holding `/` cannot be declared.
    #[schemars(length(min = 2, max = 1024), regex(pattern = r"^(/[^/]+)+$"))]
    pub path: String,
    /// Attributes to set; attributes not listed are left alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Vec<String>>,
    /// The roles the group's members get. When set, the group's role
    /// mappings are exactly these: one added by hand is removed. When unset,
    /// they are not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<RoleSet>,
}

impl RealmGroup {
    /// The path of the group's parent; `None` for a top-level group.
    pub fn parent_path(&self) -> Option<&str> {
        parent_path(&self.path)
    }

    /// The group's own name: the last segment of its path.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

/// The parent of a group path; `None` for a top-level group.
pub fn parent_path(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) | None => None,
        Some(at) => Some(&path[..at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_its_parent_and_the_group() {
        let group = RealmGroup {
            path: "/eng/backend".into(),
            ..Default::default()
        };
        assert_eq!(group.parent_path(), Some("/eng"));
        assert_eq!(group.name(), "backend");
        assert_eq!(parent_path("/eng"), None);
    }
}
