//! Types shared by several kinds.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to an object of a known kind, in the referrer's namespace
/// unless `namespace` is set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// Name of the referenced object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the referenced object; defaults to the referrer's own.
    /// A cross-namespace reference must be allowed by the referenced object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

impl ObjectReference {
    /// The namespace this reference points into, given the referrer's.
    pub fn namespace_or<'a>(&'a self, referrer_namespace: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(referrer_namespace)
    }
}

/// Roles of the realm and of clients, by name: what a service account is
/// granted, what a composite role contains, the realm's default roles.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleSet {
    /// Realm roles, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200), extend("x-kubernetes-list-type" = "set"))]
    pub realm_roles: Vec<String>,
    /// Client roles, by the `clientId` of the client that defines them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub client_roles: BTreeMap<String, Vec<String>>,
}

impl RoleSet {
    /// Whether the set names no role.
    pub fn is_empty(&self) -> bool {
        self.realm_roles.is_empty() && self.client_roles.values().all(Vec::is_empty)
    }
}

/// Which namespaces may reference an object, in the way Gateway API lets a
/// Gateway choose its routes: the referenced object decides. The object's own
/// namespace is always allowed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacePolicy {
    /// Namespaces allowed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Namespaces allowed by their labels. An empty selector (`{}`) allows
    /// every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// What happens in Keycloak when the resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the Keycloak object (and its data) in place and release it, so
    /// that another resource may adopt it explicitly.
    Retain,
    /// Delete the Keycloak object.
    Delete,
}

/// The component (name, version and digest) that last reconciled a resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentIdentity {
    /// Component name, as the component describes itself.
    pub name: String,
    /// Component version.
    pub version: String,
    /// SHA-256 digest of the component file, `sha256:<hex>`.
    pub digest: String,
}

/// Condition types the host maintains on every kind, in the Kubernetes and
/// kstatus conventions.
pub mod condition_types {
    /// The resource is converged with its spec.
    pub const READY: &str = "Ready";
    /// Work towards the spec is under way (kstatus: in progress).
    pub const RECONCILING: &str = "Reconciling";
    /// Progress stopped until something changes (kstatus: failed).
    pub const STALLED: &str = "Stalled";
    /// A dependency (Keycloak) is down; the resource's last state stands.
    pub const DEGRADED: &str = "Degraded";
}

/// Stable condition reasons set by the host itself. Components add their own
/// (documented in docs/conditions.md).
pub mod reasons {
    /// Converged.
    pub const RECONCILED: &str = "Reconciled";
    /// Keycloak could not be reached, or its circuit breaker is open.
    pub const KEYCLOAK_UNAVAILABLE: &str = "KeycloakUnavailable";
    /// The host could not authenticate to Keycloak.
    pub const KEYCLOAK_UNAUTHENTICATED: &str = "KeycloakAuthenticationFailed";
    /// The referenced Keycloak or realm resource does not exist.
    pub const REFERENCE_NOT_FOUND: &str = "ReferenceNotFound";
    /// The referenced object does not allow this resource's namespace.
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    /// A quota set by the referenced object is used up.
    pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";
    /// The component trapped (panicked or hit a WebAssembly error).
    pub const COMPONENT_TRAPPED: &str = "ComponentTrapped";
    /// The component ran past its time budget.
    pub const COMPONENT_TIMED_OUT: &str = "ComponentTimedOut";
    /// The component tried to use more memory than allowed.
    pub const COMPONENT_OUT_OF_MEMORY: &str = "ComponentOutOfMemory";
    /// The component asked for a Keycloak path outside the resource's scope.
    pub const SCOPE_VIOLATION: &str = "ScopeViolation";
    /// The component returned children or status the host cannot apply.
    pub const INVALID_COMPONENT_OUTPUT: &str = "InvalidComponentOutput";
    /// The Kubernetes API refused a write.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// A child's name is taken by an object the resource does not control.
    pub const CHILD_CONFLICT: &str = "ChildConflict";
    /// The component returned a child of a kind its `ReconcilerComponent`
    /// does not grant (`spec.childKinds`).
    pub const CHILD_KIND_NOT_GRANTED: &str = "ChildKindNotGranted";
    /// A realm-scoped resource names the master realm, which administers
    /// the whole Keycloak: only the `Keycloak` resource itself reaches it.
    pub const MASTER_REALM_REFUSED: &str = "MasterRealmRefused";
    /// The realm is owned by an older resource (of any kind), or the Keycloak
    /// object by another resource.
    pub const CONFLICT: &str = "Conflict";
    /// A tenant's client asks for roles that administer the realm.
    pub const ROLE_NOT_ALLOWED: &str = "RoleNotAllowed";
    /// A client's protocol mapper names a type its Keycloak does not have
    /// (per `/admin/serverinfo`).
    pub const UNKNOWN_PROTOCOL_MAPPER: &str = "UnknownProtocolMapper";
    /// Everything the resource depends on answers.
    pub const DEPENDENCIES_HEALTHY: &str = "DependenciesHealthy";
}

/// Stable condition reasons of a `ReconcilerComponent`.
pub mod component_reasons {
    /// The declared version serves its kind.
    pub const SERVING: &str = "Serving";
    /// The declared version is being pulled and checked.
    pub const LOADING: &str = "Loading";
    /// The registry could not be reached, refused, or does not hold the
    /// reference. Retried with backoff.
    pub const PULL_FAILED: &str = "PullFailed";
    /// The pull Secret is missing or unusable.
    pub const PULL_SECRET_INVALID: &str = "PullSecretInvalid";
    /// What the registry returned does not match the pinned digest.
    pub const DIGEST_MISMATCH: &str = "DigestMismatch";
    /// The artifact is not a component in the expected layout.
    pub const NOT_A_COMPONENT: &str = "NotAComponent";
    /// The component serves another kind than `spec.kind`.
    pub const KIND_MISMATCH: &str = "KindMismatch";
    /// The component asks for a capability `spec.grants` does not give.
    pub const CAPABILITY_NOT_GRANTED: &str = "CapabilityNotGranted";
    /// The component does not compile, link or describe itself.
    pub const COMPILE_FAILED: &str = "CompileFailed";
    /// The component's description is unusable (child kinds not allowed...).
    pub const INVALID_COMPONENT: &str = "InvalidComponent";
    /// `spec.limits` asks for more than the host allows.
    pub const INVALID_LIMITS: &str = "InvalidLimits";
    /// An older `ReconcilerComponent` declares the same kind.
    pub const KIND_CONFLICT: &str = "KindConflict";
    /// The candidate runs in shadow mode.
    pub const SHADOWING: &str = "Shadowing";
}
