//! `KeycloakRealm`: a realm kept converged with its spec.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ComponentIdentity, DeletionPolicy, NamespacePolicy, ObjectReference, RoleSet};

mod authentication;
mod client_scopes;
mod groups;
mod identity_providers;
mod policies;
mod roles;

pub use authentication::{FlowBindings, RequiredAction};
pub use client_scopes::RealmClientScope;
pub use groups::{RealmGroup, parent_path};
pub use identity_providers::{IdentityProviderMapper, RealmIdentityProvider};
pub use policies::{
    BruteForce, Events, Localization, OtpAlgorithm, OtpPolicy, OtpType, PasswordRule, Policies, RealmFields, Sessions,
    Themes, password_policy,
};
pub use roles::RealmRole;

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
#[x_kube(validation = Rule::new("!has(self.defaultClientScopes) || !has(self.optionalClientScopes) || self.defaultClientScopes.all(s, !(s in self.optionalClientScopes))").message("a client scope cannot be both a default and an optional scope of the realm").field_path(".optionalClientScopes"))]
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
    /// Roles of the realm. A role listed here is created if missing and its
    /// listed fields are kept as declared; a role removed from the list is
    /// deleted only if the operator created it. Roles made by hand are left
    /// alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub roles: Vec<RealmRole>,
    /// The roles every user of the realm gets (the composites of Keycloak's
    /// `default-roles-<realm>` role). When set, they are exactly these:
    /// Keycloak's own defaults (`offline_access`, `uma_authorization`,
    /// `account`'s roles) stay only if listed. When unset, not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_roles: Option<RoleSet>,
    /// Groups of the realm, by path. A group listed here is created if
    /// missing (its parent first) and its listed fields are kept as
    /// declared; a group removed from the list is deleted only if the
    /// operator created it and no group made by hand is below it. Groups
    /// made by hand are left alone, and members are never managed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["path"]))]
    pub groups: Vec<RealmGroup>,
    /// The groups every new user joins, by path. When set, they are exactly
    /// these; when unset, not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100), inner(length(min = 2, max = 1024), regex(pattern = r"^(/[^/]+)+$")), extend("x-kubernetes-list-type" = "set"))]
    pub default_groups: Option<Vec<String>>,
    /// Client scopes of the realm, by name. A scope listed here is created
    /// if missing and its listed fields are kept as declared; a scope
    /// removed from the list is deleted only if the operator created it.
    /// Scopes made by hand are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub client_scopes: Vec<RealmClientScope>,
    /// The client scopes every new client of the realm gets as default
    /// scopes (always in its tokens), by name. When set, they are exactly
    /// these; when unset, not managed. Clients that exist already keep
    /// their own lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 255)), extend("x-kubernetes-list-type" = "set"))]
    pub default_client_scopes: Option<Vec<String>>,
    /// The client scopes every new client of the realm gets as optional
    /// scopes (in its tokens when asked for), by name. When set, they are
    /// exactly these; when unset, not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 255)), extend("x-kubernetes-list-type" = "set"))]
    pub optional_client_scopes: Option<Vec<String>>,
    /// Identity providers of the realm, by alias. A provider listed here is
    /// created if missing and its listed fields are kept as declared; one
    /// removed from the list is deleted only if the operator created it.
    /// Providers made by hand are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["alias"]))]
    pub identity_providers: Vec<RealmIdentityProvider>,
    /// Which authentication flow the realm uses for each purpose. Unset
    /// bindings are not managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_bindings: Option<FlowBindings>,
    /// Required actions of the realm, by alias. Only the listed ones and
    /// their listed fields are managed; none is ever removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["alias"]))]
    pub required_actions: Vec<RequiredAction>,
    /// Any other top-level fields of Keycloak's RealmRepresentation, passed
    /// through as given, for settings the typed fields do not cover yet.
    /// Managed like the typed settings: only the fields given are compared
    /// and written. Collections (users, clients, roles, groups, flows...)
    /// are refused: Keycloak's realm update ignores them, so they would be
    /// rewritten at every resync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::realm::representation_schema")]
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
    /// Password, one-time password, brute-force, session, event,
    /// localization, theme and browser header policies.
    #[serde(default, flatten)]
    pub policies: Policies,
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

/// The JSON shape of a collection field of Keycloak's RealmRepresentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionShape {
    /// A list of objects.
    Objects,
    /// A list of names.
    Names,
    /// An object (keyed by kind or by client).
    Map,
}

/// Fields of Keycloak's RealmRepresentation that hold collections of
/// sub-objects, which its realm update ignores: their shape, and what to
/// use instead.
pub const REPRESENTATION_COLLECTIONS: &[(&str, CollectionShape, &str)] = {
    use CollectionShape::{Map, Names, Objects};
    &[
        ("roles", Map, "use spec.roles"),
        ("defaultRoles", Names, "use spec.defaultRoles"),
        ("defaultRole", Map, "use spec.defaultRoles"),
        ("clients", Objects, "use KeycloakClient resources"),
        ("users", Objects, "users are not managed as part of a realm"),
        ("federatedUsers", Objects, "users are not managed as part of a realm"),
        ("groups", Objects, "use spec.groups"),
        ("defaultGroups", Names, "use spec.defaultGroups"),
        ("clientScopes", Objects, "use spec.clientScopes"),
        ("defaultDefaultClientScopes", Names, "use spec.defaultClientScopes"),
        ("defaultOptionalClientScopes", Names, "use spec.optionalClientScopes"),
        (
            "scopeMappings",
            Objects,
            "scope mappings are not managed by the operator yet",
        ),
        (
            "clientScopeMappings",
            Map,
            "scope mappings are not managed by the operator yet",
        ),
        ("identityProviders", Objects, "use spec.identityProviders"),
        (
            "identityProviderMappers",
            Objects,
            "use spec.identityProviders[].mappers",
        ),
        (
            "components",
            Map,
            "components (user federation, keys) are not managed by the operator yet",
        ),
        (
            "userFederationProviders",
            Objects,
            "user federation is not managed by the operator yet",
        ),
        (
            "userFederationMappers",
            Objects,
            "user federation is not managed by the operator yet",
        ),
        (
            "authenticationFlows",
            Objects,
            "authentication flows are not managed by the operator yet",
        ),
        (
            "authenticatorConfig",
            Objects,
            "authentication flows are not managed by the operator yet",
        ),
        ("requiredActions", Objects, "use spec.requiredActions"),
        (
            "protocolMappers",
            Objects,
            "set protocol mappers on KeycloakClient resources",
        ),
        (
            "organizations",
            Objects,
            "organizations are not managed by the operator yet",
        ),
        ("applications", Objects, "use KeycloakClient resources"),
        ("oauthClients", Objects, "use KeycloakClient resources"),
        ("clientTemplates", Objects, "use spec.clientScopes"),
    ]
};

/// Schema of `spec.representation`: a free-form object, refusing the
/// collections a realm update would ignore, each with its own message. The
/// collections are declared as properties of their shape, because CEL can
/// only test for fields the schema declares with a type.
pub(crate) fn representation_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut properties = serde_json::Map::new();
    let mut rules = Vec::new();
    let free_form = serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    for (field, shape, instead) in REPRESENTATION_COLLECTIONS {
        let mut schema = match shape {
            CollectionShape::Objects => serde_json::json!({"type": "array", "items": free_form}),
            CollectionShape::Names => serde_json::json!({"type": "array", "items": {"type": "string"}}),
            CollectionShape::Map => free_form.clone(),
        };
        schema["description"] = serde_json::json!(format!("Refused: {instead}."));
        properties.insert((*field).to_owned(), schema);
        rules.push(serde_json::json!({
            "rule": format!("!has(self.{field})"),
            "message": format!(
                "spec.representation.{field} is a collection, which Keycloak's realm update ignores (it would be rewritten at every resync): {instead}"
            ),
            "reason": "FieldValueForbidden",
            "fieldPath": format!(".{field}"),
        }));
    }
    schemars::json_schema!({
        "type": "object",
        "properties": properties,
        "x-kubernetes-preserve-unknown-fields": true,
        "x-kubernetes-validations": rules
    })
}

/// Schema of a JSON object whose fields Kubernetes keeps as given.
pub(crate) fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}
