//! `KeycloakRealm`: a realm kept converged with its spec.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ComponentIdentity, DeletionPolicy, NamespacePolicy, ObjectReference};

/// A realm in a Keycloak.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keycloak.wasmop.dev",
    version = "v1alpha1",
    kind = "KeycloakRealm",
    namespaced,
    status = "KeycloakRealmStatus",
    shortname = "kcrealm",
    category = "keycloak",
    doc = "A realm in a Keycloak, kept converged with this spec.",
    printcolumn(name = "Realm", type_ = "string", json_path = ".spec.realmName"),
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
#[serde(rename_all = "camelCase")]
pub struct KeycloakRealmSpec {
    /// The `Keycloak` to place the realm on. A `Keycloak` in another namespace
    /// must allow this namespace in `spec.realms.allowedNamespaces`.
    pub keycloak_ref: ObjectReference,
    /// Name of the realm in Keycloak. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("realmName is immutable"))]
    #[x_kube(validation = Rule::new("self != 'master'").message("the master realm cannot be managed by a KeycloakRealm"))]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"))]
    pub realm_name: String,
    /// Name shown to users on the login pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Whether users can log in to the realm. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Realm settings. Only the settings given here are managed; the others
    /// keep whatever value they have in Keycloak.
    #[serde(default)]
    pub settings: RealmSettings,
    /// Realm attributes to set. Attributes not listed are left alone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Any other fields of Keycloak's RealmRepresentation, passed through as
    /// given, for settings the typed fields do not cover yet. Managed like the
    /// typed settings: only the fields given are compared and written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::realm::free_form_object")]
    pub representation: Option<serde_json::Map<String, serde_json::Value>>,
    /// What deleting this resource does to the realm: `Retain` (default) keeps
    /// the realm and its users; `Delete` removes it from Keycloak.
    #[serde(default = "default_realm_deletion_policy")]
    pub deletion_policy: DeletionPolicy,
    /// Take over a realm that already exists in Keycloak and is not owned by
    /// another resource. Without it, such a realm is reported as a conflict
    /// and left untouched.
    #[serde(default)]
    pub adopt_existing: bool,
    /// Which namespaces may place clients in this realm, and how many.
    #[serde(default)]
    pub clients: ClientPlacement,
    /// Which namespaces may place resources of other kinds inside this realm
    /// (users, groups, kinds of extensions...), per kind. The first entry
    /// naming a kind (or `*`) decides; a kind no entry names may be placed
    /// only from this resource's own namespace. `KeycloakClient`s follow
    /// `spec.clients`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub placement: Vec<KindPlacement>,
}

/// Which namespaces may place resources of some kinds inside a realm.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KindPlacement {
    /// The kinds this entry is for: `group/Kind`, a bare `Kind`, or `*` for
    /// every kind no earlier entry names.
    #[schemars(length(min = 1, max = 32), inner(length(min = 1, max = 320)))]
    #[x_kube(validation = Rule::new("self.all(k, k != 'KeycloakClient' && k != 'keycloak.wasmop.dev/KeycloakClient')").message("KeycloakClients are placed by spec.clients"))]
    pub kinds: Vec<String>,
    /// Namespaces allowed, besides the realm resource's own.
    #[serde(default)]
    pub allowed_namespaces: NamespacePolicy,
    /// Largest number of resources of these kinds in the realm, from all
    /// namespaces together, counted per kind; unlimited when unset. The
    /// oldest are served first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // The API server does not check `format: uint32`: a larger number
    // would pass admission and fail only when the spec is read.
    #[schemars(range(min = 0, max = u32::MAX))]
    pub max_per_realm: Option<u32>,
}

/// Which namespaces may place `KeycloakClient`s in a realm.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientPlacement {
    /// Namespaces allowed to reference this realm from a `KeycloakClient`,
    /// besides the realm resource's own.
    #[serde(default)]
    pub allowed_namespaces: NamespacePolicy,
    /// Largest number of clients in this realm, from all namespaces together;
    /// unlimited when unset. The oldest clients are served first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // The API server does not check `format: uint32`: a larger number
    // would pass admission and fail only when the spec is read.
    #[schemars(range(min = 0, max = u32::MAX))]
    pub max_clients: Option<u32>,
}

fn default_realm_deletion_policy() -> DeletionPolicy {
    DeletionPolicy::Retain
}

/// Typed realm settings. Unset fields are not managed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RealmSettings {
    /// Users may register themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_allowed: Option<bool>,
    /// Users may log in with their email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_with_email_allowed: Option<bool>,
    /// Show a "forgot password" link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_password_allowed: Option<bool>,
    /// Show a "remember me" checkbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remember_me: Option<bool>,
    /// Users must verify their email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_email: Option<bool>,
    /// Detect and lock out brute-force login attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brute_force_protected: Option<bool>,
    /// Which requests must use HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_required: Option<SslRequired>,
    /// Lifetime of access tokens, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub access_token_lifespan_seconds: Option<i32>,
    /// Idle time after which an SSO session expires, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub sso_session_idle_timeout_seconds: Option<i32>,
    /// Longest life of an SSO session, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub sso_session_max_lifespan_seconds: Option<i32>,
    /// Theme of the login pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_theme: Option<String>,
}

/// Which requests must use HTTPS.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SslRequired {
    /// Never required.
    None,
    /// Required for requests from outside private address ranges.
    External,
    /// Always required.
    All,
}

impl SslRequired {
    /// The value Keycloak's API uses.
    pub fn as_keycloak(self) -> &'static str {
        match self {
            SslRequired::None => "none",
            SslRequired::External => "external",
            SslRequired::All => "all",
        }
    }
}

/// Observed state of a realm.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeycloakRealmStatus {
    /// The generation of the spec last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled and Degraded, with stable reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The component that last reconciled this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_by: Option<ComponentIdentity>,
    /// Keycloak's internal id of the realm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm_id: Option<String>,
    /// The `Keycloak` the realm lives on, as `namespace/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<String>,
}

/// Schema of a JSON object whose fields Kubernetes keeps as given.
pub(crate) fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
