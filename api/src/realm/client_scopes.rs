//! Client scopes of a realm and the realm's default and optional client
//! scopes, as a `KeycloakRealm` declares them.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::client::{ClientProtocol, ProtocolMapper};

/// A client scope of the realm: a set of protocol mappers (and role scope
/// mappings, not managed here) that clients include by name. Only the fields
/// given are managed: an unset description, attributes not listed and
/// mappers not listed keep what Keycloak holds; a mapper removed from the
/// list is deleted only if the operator created it. The scopes Keycloak
/// ships (`profile`, `email`, `roles`...) can be declared too, to manage
/// some of their fields.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealmClientScope {
    /// Name, unique in the realm; it is the value clients ask for in the
    /// `scope` parameter, so Keycloak allows no space, `"` or `\` in it.
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[\x21\x23-\x5B\x5D-\x7E]+$"))]
    pub name: String,
    /// Description shown in the admin console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub description: Option<String>,
    /// Protocol of the scope and of its mappers. Defaults to
    /// `openid-connect`.
    #[serde(default)]
    pub protocol: ClientProtocol,
    /// Scope attributes to set, as Keycloak names them (for instance
    /// `include.in.token.scope`, `display.on.consent.screen`,
    /// `consent.screen.text`). Attributes not listed are left alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Protocol mappers of the scope, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub protocol_mappers: Vec<ProtocolMapper>,
}
