//! Identity providers of a realm (OpenID Connect, SAML and the social ones
//! Keycloak ships) and their mappers, as a `KeycloakRealm` declares them.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::client::SecretKeyReference;

/// An identity provider users of the realm can log in through. Only the
/// fields given are managed: config keys not listed, and mappers not
/// listed, keep what Keycloak holds; a mapper removed from the list is
/// deleted only if the operator created it. The client secret comes from a
/// Secret, never from the spec.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealmIdentityProvider {
    /// Alias, unique in the realm; part of the provider's redirect URI
    /// (`/realms/<realm>/broker/<alias>/endpoint`).
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))]
    pub alias: String,
    /// The kind of provider: `oidc`, `keycloak-oidc`, `saml`, or a social
    /// one (`google`, `github`, `gitlab`, `microsoft`, `facebook`,
    /// `linkedin-openid-connect`...). Immutable in Keycloak: changing it
    /// recreates the provider.
    #[serde(rename = "providerId")]
    #[schemars(length(min = 1, max = 64))]
    pub provider: String,
    /// Name on the login page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub display_name: Option<String>,
    /// Whether users can log in through it. Keycloak's default is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Trust the email addresses it asserts as verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_email: Option<bool>,
    /// Keep the provider's tokens after login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_token: Option<bool>,
    /// Only for linking existing accounts, not for logging in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_only: Option<bool>,
    /// Hide it on the login page (it stays usable with `kc_idp_hint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hide_on_login: Option<bool>,
    /// The flow run after a user's first login through it, by alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub first_broker_login_flow: Option<String>,
    /// The flow run after every login through it, by alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub post_broker_login_flow: Option<String>,
    /// The provider's configuration, as Keycloak names it (`clientId`,
    /// `authorizationUrl`, `tokenUrl`, `issuer`, `defaultScope`,
    /// `syncMode`, `singleSignOnServiceUrl`...). Only the keys listed are
    /// managed. The client secret cannot be given here: use
    /// `clientSecretRef`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("!('clientSecret' in self)").message("the client secret cannot be in the spec: use clientSecretRef"))]
    pub config: BTreeMap<String, String>,
    /// The key of a Secret in this resource's namespace holding the client
    /// secret Keycloak sends to the provider. Keycloak never shows it back;
    /// the operator sends it again only when the Secret's value changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyReference>,
    /// Mappers turning what the provider asserts into user attributes,
    /// roles and groups, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub mappers: Vec<IdentityProviderMapper>,
}

/// A mapper of an identity provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderMapper {
    /// Name, unique in the provider.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// The mapper's type: `hardcoded-role-idp-mapper`,
    /// `oidc-user-attribute-idp-mapper`, `oidc-advanced-group-idp-mapper`,
    /// `saml-user-attribute-idp-mapper`...
    #[schemars(length(min = 1, max = 255))]
    pub identity_provider_mapper: String,
    /// Its configuration, as Keycloak names it (`syncMode`, `claim`,
    /// `user.attribute`, `role`, `group`...). Only the keys given are
    /// managed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}
