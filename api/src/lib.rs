//! The custom resources of the Keycloak operator (`keycloak.wasmop.dev`), as
//! Rust types.
//!
//! These types are the single source of the CRDs in `crds/` (generated, never
//! edited by hand) and are shared by the host, which resolves references and
//! authorizes them, and by the reconciler components, which read specs.

// kube's `printcolumn(...)` attributes repeat `type_ = "string"` by design.
#![allow(clippy::duplicated_attributes)]

pub mod client;
mod common;
pub mod component;
pub mod keycloak;
pub mod managed;
pub mod realm;

pub use client::{
    AccessType, ClientCredentials, ClientProtocol, ClientRole, KeycloakClient, KeycloakClientSpec,
    KeycloakClientStatus, NameIdFormat, OidcSettings, PkceMethod, ProtocolMapper, ROTATE_SECRET_ANNOTATION,
    SamlSettings, SamlSignatureAlgorithm, SecretKeyReference, SecretRotationStatus, ServiceAccountRoles,
};
pub use common::{
    ComponentIdentity, DeletionPolicy, NamespacePolicy, ObjectReference, RoleSet, component_reasons, condition_types,
    reasons,
};
pub use component::{
    Candidate, CandidateStatus, ComponentLimits, ComponentVersion, Grant, PlannedWrite, ReconcilerComponent,
    ReconcilerComponentSpec, ReconcilerComponentStatus, Rollout, RolloutMode,
};
pub use keycloak::{
    AdminCredentials, AdminGrant, ExternalKeycloak, Keycloak, KeycloakSpec, KeycloakStatus, RealmPlacement,
};
pub use realm::{
    ClientPlacement, CollectionShape, FlowBindings, IdentityProviderMapper, KeycloakRealm, KeycloakRealmSpec,
    KeycloakRealmStatus, KindPlacement, REPRESENTATION_COLLECTIONS, RealmClientScope, RealmGroup,
    RealmIdentityProvider, RealmRole, RealmSettings, RequiredAction, SslRequired,
};

/// The API group of every kind the operator serves.
pub const GROUP: &str = "keycloak.wasmop.dev";
/// The API version of every kind in this crate.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of the kinds in this crate.
pub const API_VERSION: &str = "keycloak.wasmop.dev/v1alpha1";

/// Keys the operator records on the Keycloak objects it owns (as attributes),
/// so that ownership survives operator restarts and is visible in Keycloak.
pub mod ownership {
    /// UID of the owning Kubernetes resource.
    pub const OWNER_UID: &str = "keycloak.wasmop.dev/owner-uid";
    /// Namespace of the owning Kubernetes resource.
    pub const OWNER_NAMESPACE: &str = "keycloak.wasmop.dev/owner-namespace";
    /// Name of the owning Kubernetes resource.
    pub const OWNER_NAME: &str = "keycloak.wasmop.dev/owner-name";
    /// Kind of the owning Kubernetes resource.
    pub const OWNER_KIND: &str = "keycloak.wasmop.dev/owner-kind";
}
