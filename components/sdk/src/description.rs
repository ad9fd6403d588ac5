//! What a component serves and needs, built from the Rust type of its kind:
//! group, kind, plural and version come from `kube::Resource`, so they are
//! written once, where the CRD is derived.
//!
//! ```ignore
//! Description::for_resource::<KeycloakRealm>("keycloak-operator/realm", "0.1.0")
//!     .scope(KeycloakScope::Realm)
//!     .capability(Capability::KeycloakAdmin)
//!     .child::<Secret>()
//!     .finalizer()
//! ```

use kube::Resource;

use crate::{Capability, Description, KeycloakScope, KindRef};

fn kind_ref<T: Resource<DynamicType = ()>>() -> KindRef {
    KindRef {
        api_version: T::api_version(&()).into_owned(),
        kind: T::kind(&()).into_owned(),
        plural: T::plural(&()).into_owned(),
    }
}

impl Description {
    /// A component named `name` at `version`, serving the kind `T`; no
    /// Keycloak scope, capability, child, related kind or finalizer yet.
    pub fn for_resource<T: Resource<DynamicType = ()>>(name: &str, version: &str) -> Self {
        Description {
            name: name.to_owned(),
            version: version.to_owned(),
            group: T::group(&()).into_owned(),
            kind: T::kind(&()).into_owned(),
            plural: T::plural(&()).into_owned(),
            versions: vec![T::version(&()).into_owned()],
            child_kinds: Vec::new(),
            related_kinds: Vec::new(),
            capabilities: Vec::new(),
            keycloak_scope: KeycloakScope::None,
            finalizer: false,
            crd: None,
        }
    }

    /// How the kind's resources reach Keycloak (`keycloak-admin` is asked
    /// for with any scope but `None`).
    pub fn scope(mut self, scope: KeycloakScope) -> Self {
        self.keycloak_scope = scope;
        if scope != KeycloakScope::None {
            self = self.capability(Capability::KeycloakAdmin);
        }
        self
    }

    /// A capability the component needs.
    pub fn capability(mut self, capability: Capability) -> Self {
        if !self.capabilities.contains(&capability) {
            self.capabilities.push(capability);
        }
        self
    }

    /// A kind of children it returns (the host watches and prunes these).
    pub fn child<C: Resource<DynamicType = ()>>(mut self) -> Self {
        self.child_kinds.push(kind_ref::<C>());
        self
    }

    /// A kind of objects it wants to see but does not own.
    pub fn related<C: Resource<DynamicType = ()>>(mut self) -> Self {
        self.related_kinds.push(kind_ref::<C>());
        self
    }

    /// Deleting a resource waits for `finalize`.
    pub fn finalizer(mut self) -> Self {
        self.finalizer = true;
        self
    }

    /// The kind's CRD as YAML, for installers (`keycloak-operator describe --crd`).
    pub fn crd(mut self, yaml: &str) -> Self {
        self.crd = Some(yaml.to_owned());
        self
    }
}
