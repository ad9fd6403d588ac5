//! `Keycloak`: a Keycloak server the operator manages realms on.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ComponentIdentity, NamespacePolicy};
use crate::managed::ManagedKeycloak;

/// A Keycloak server: either external (already running, reached by URL with
/// admin credentials from a Secret) or managed (deployed and run by the
/// operator).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keycloak.wasmop.dev",
    version = "v1alpha1",
    kind = "Keycloak",
    namespaced,
    status = "KeycloakStatus",
    shortname = "kc",
    category = "keycloak",
    doc = "A Keycloak server that realms can be placed on.",
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new("has(self.external) != has(self.managed)").message("set exactly one of spec.external (a Keycloak that already runs) and spec.managed (a Keycloak the operator runs)"))]
#[serde(rename_all = "camelCase")]
pub struct KeycloakSpec {
    /// A Keycloak that already runs outside the operator's control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalKeycloak>,
    /// A Keycloak the operator runs in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedKeycloak>,
    /// Which namespaces may place realms on this Keycloak, and how many.
    #[serde(default)]
    pub realms: RealmPlacement,
}

/// Connection to a Keycloak that already runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalKeycloak {
    /// Base URL of Keycloak, such as `https://sso.example.com` (without
    /// `/admin` or `/realms`).
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/[^\s]*)?$"), length(max = 2048))]
    pub url: String,
    /// Admin credentials the operator authenticates with. Only the operator
    /// host reads them; reconciler components never see them.
    pub admin_credentials: AdminCredentials,
}

/// Where the operator's admin credentials for a Keycloak are kept.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCredentials {
    /// Name of a Secret in the Keycloak resource's namespace. For the
    /// `Password` grant it holds the keys `username` and `password`; for
    /// `ClientCredentials`, `client-id` and `client-secret`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// How the operator obtains its admin token.
    #[serde(default)]
    pub grant: AdminGrant,
    /// Realm the credentials belong to.
    #[serde(default = "default_admin_realm")]
    pub realm: String,
    /// Client used for the `Password` grant.
    #[serde(default = "default_admin_client")]
    pub client_id: String,
}

fn default_admin_realm() -> String {
    "master".to_owned()
}

fn default_admin_client() -> String {
    "admin-cli".to_owned()
}

/// How the operator obtains its admin token.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AdminGrant {
    /// Resource-owner password grant with a user's name and password.
    #[default]
    Password,
    /// Client-credentials grant of a confidential client with a service account
    /// (preferred: no user password, narrower roles).
    ClientCredentials,
}

/// Which namespaces may place realms on a Keycloak.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealmPlacement {
    /// Namespaces allowed to reference this Keycloak from a `KeycloakRealm`,
    /// besides its own.
    #[serde(default)]
    pub allowed_namespaces: NamespacePolicy,
    /// Largest number of realms one namespace may place on this Keycloak;
    /// unlimited when unset. The oldest realms are served first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // The API server does not check `format: uint32`: a larger number
    // would pass admission and fail only when the spec is read.
    #[schemars(range(min = 0, max = u32::MAX))]
    pub max_per_namespace: Option<u32>,
}

/// Observed state of a Keycloak.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeycloakStatus {
    /// The generation of the spec last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled and Degraded, with stable reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The component that last reconciled this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_by: Option<ComponentIdentity>,
    /// Keycloak's version, as its server-info endpoint reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The URL the operator reaches Keycloak at (in-cluster for a managed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Managed form: pods of the Deployment that are available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Managed form: which credentials the operator uses, `ServiceAccount`
    /// (its own client) or `BootstrapAdmin` (only until that client exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_credentials: Option<String>,
}
