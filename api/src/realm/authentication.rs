//! How users of a realm log in, as a `KeycloakRealm` declares it: which
//! flow each of the realm's bindings uses, and its required actions.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which authentication flow the realm uses for each purpose, by the flow's
/// alias. A flow must exist in the realm (one of Keycloak's own, such as
/// `browser`, or one made by hand). Unset bindings are not managed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowBindings {
    /// Logging in with a browser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub browser: Option<String>,
    /// The direct grant (resource owner password credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub direct_grant: Option<String>,
    /// Registering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub registration: Option<String>,
    /// Resetting one's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub reset_credentials: Option<String>,
    /// Authenticating clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub client_authentication: Option<String>,
    /// Authenticating Docker clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub docker_authentication: Option<String>,
    /// The first login through an identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub first_broker_login: Option<String>,
}

impl FlowBindings {
    /// Each binding as (field of this type, field of Keycloak's
    /// RealmRepresentation, flow alias when set).
    pub fn each(&self) -> [(&'static str, &'static str, Option<&str>); 7] {
        [
            ("browser", "browserFlow", self.browser.as_deref()),
            ("directGrant", "directGrantFlow", self.direct_grant.as_deref()),
            ("registration", "registrationFlow", self.registration.as_deref()),
            (
                "resetCredentials",
                "resetCredentialsFlow",
                self.reset_credentials.as_deref(),
            ),
            (
                "clientAuthentication",
                "clientAuthenticationFlow",
                self.client_authentication.as_deref(),
            ),
            (
                "dockerAuthentication",
                "dockerAuthenticationFlow",
                self.docker_authentication.as_deref(),
            ),
            (
                "firstBrokerLogin",
                "firstBrokerLoginFlow",
                self.first_broker_login.as_deref(),
            ),
        ]
    }
}

/// A required action of the realm (an action a user is asked to complete
/// at login: verify their email, configure OTP, accept the terms...), by
/// alias. Only the fields given are managed; required actions the spec does
/// not list keep what Keycloak holds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.defaultAction) && self.defaultAction && has(self.enabled) && !self.enabled)").message("a disabled required action cannot be a default action").field_path(".defaultAction"))]
pub struct RequiredAction {
    /// Alias of the action, as Keycloak names it: `VERIFY_EMAIL`,
    /// `CONFIGURE_TOTP`, `TERMS_AND_CONDITIONS`, `UPDATE_PASSWORD`,
    /// `webauthn-register`... An action Keycloak knows but the realm has not
    /// registered is registered.
    #[schemars(length(min = 1, max = 255))]
    pub alias: String,
    /// Whether users can be asked to complete it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Whether every new user is asked to complete it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<bool>,
    /// Order among the actions a user is asked for, lowest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}
