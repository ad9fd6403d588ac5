//! Host capabilities, as the controllers see them: what a component may
//! reach beyond computing (Keycloak, Secrets), each in a module of its own
//! that knows its kinds, its caches and its rules.
//!
//! A controller knows no capability by name. For every kind it asks each
//! capability which caches it reads (and waits for them), which resources a
//! change of those caches concerns, how to prepare one call (the imports the
//! component gets, what it is told, or a refusal before any call), and what
//! the call's outcome means for the resource (Degraded). Adding a capability
//! touches its own module and the list in the operator.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::api::DynamicObject;

use crate::controller::informer::{Informer, ObjectKey};
use crate::runtime::imports::{CallStats, KeycloakGateway, SecretReader};
use crate::runtime::model::{Capability, Description, Detail, Target};

/// Why a resource may not be reconciled through a capability now; no call
/// is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A referenced object does not exist (yet), or is being deleted:
    /// retried with backoff.
    Missing(Detail),
    /// A rule of the host or of a referenced object forbids it: stalled.
    Denied(Detail),
    /// The reference fields of the spec are unusable: stalled.
    Invalid(Detail),
}

/// One call being prepared: the resource, and what the capabilities give
/// the component.
pub struct Preparation<'a> {
    /// The resource.
    pub object: &'a DynamicObject,
    /// Its kind, `group/Kind`.
    pub kind: &'a str,
    /// What its component describes.
    pub description: &'a Description,
    /// What its component is granted.
    pub grants: &'a BTreeSet<Capability>,
    /// The other resources of the kind (quotas count among them).
    pub peers: &'a Informer,
    /// Keycloak access, if a capability gives it.
    pub keycloak: Option<Arc<dyn KeycloakGateway>>,
    /// Secret access, if a capability gives it.
    pub secrets: Option<Arc<dyn SecretReader>>,
    /// Where the component's Keycloak requests go.
    pub target: Option<Target>,
    /// Objects the component sees beside its resource (its Keycloak, its realm).
    pub related: Vec<String>,
    /// The dependency the call relies on, for messages (`Keycloak ns/name`).
    pub dependency: Option<String>,
}

impl<'a> Preparation<'a> {
    /// A preparation with nothing granted yet.
    pub fn new(
        object: &'a DynamicObject,
        kind: &'a str,
        description: &'a Description,
        grants: &'a BTreeSet<Capability>,
        peers: &'a Informer,
    ) -> Self {
        Preparation {
            object,
            kind,
            description,
            grants,
            peers,
            keycloak: None,
            secrets: None,
            target: None,
            related: Vec::new(),
            dependency: None,
        }
    }
}

/// A resource a capability asks to be looked at again: something it watches
/// outside Kubernetes changed (Keycloak's admin events), or came back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nudge {
    /// Its kind, `group/Kind`.
    pub kind: String,
    /// The resource.
    pub key: ObjectKey,
}

#[cfg(test)]
impl Nudge {
    /// The `KeycloakClient` `ns/name`, for tests.
    pub(crate) fn client(name: &str) -> Self {
        Nudge {
            kind: "keycloak.wasmop.dev/KeycloakClient".into(),
            key: crate::controller::informer::ObjectKey::new("ns", name),
        }
    }
}

/// Why a capability asks for resources to be looked at again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NudgeCause {
    /// Their objects changed outside Kubernetes (an admin event).
    Drift,
    /// What they depend on answers again after failing them (a Keycloak's
    /// circuit closed): retrying now beats waiting out a grown backoff.
    Recovery,
}

impl NudgeCause {
    /// Metric label.
    pub fn as_label(self) -> &'static str {
        match self {
            NudgeCause::Drift => "drift",
            NudgeCause::Recovery => "recovery",
        }
    }
}

/// One stream of [`Nudge`]s and why they come.
pub struct Nudges {
    /// Why.
    pub cause: NudgeCause,
    /// The resources, as they come.
    pub receiver: tokio::sync::broadcast::Receiver<Nudge>,
}

/// A host capability.
pub trait HostCapability: Send + Sync {
    /// The caches reconciles of a kind read through this capability: the
    /// controller waits for them to sync before it reconciles, and follows
    /// their changes through [`HostCapability::affected`].
    fn watches(&self, description: &Description) -> Vec<Arc<Informer>>;

    /// The resources among `parents` to look at again after the object `key`
    /// of `informer` (one of [`HostCapability::watches`]) changed.
    fn affected(&self, informer: &Informer, key: &ObjectKey, parents: &Informer) -> Vec<ObjectKey>;

    /// The resources among `parents` to look at again when one of them went
    /// away (it may have freed a quota slot).
    fn after_departure(&self, _parents: &Informer) -> Vec<ObjectKey> {
        Vec::new()
    }

    /// A kind is served from now on, its resources in `parents`.
    fn kind_started(&self, _kind: &str, _description: &Description, _parents: &Arc<Informer>) {}

    /// A kind is no longer served.
    fn kind_stopped(&self, _kind: &str) {}

    /// Resources to look at again because of changes only this capability
    /// sees; each controller takes those of its kind.
    fn nudges(&self) -> Vec<Nudges> {
        Vec::new()
    }

    /// The resource `key` of `kind` is gone: forget what was kept about it.
    fn departed(&self, _kind: &str, _key: &ObjectKey) {}

    /// Prepares one call: adds what this capability gives the component to
    /// `call`, or refuses the resource.
    fn prepare(&self, call: &mut Preparation<'_>) -> Result<(), Refusal>;

    /// What the call's outcome means for the resource: a detail for its
    /// Degraded condition when this capability's dependency failed.
    fn degraded(&self, _stats: &CallStats, _dependency: Option<&str>) -> Option<Detail> {
        None
    }
}
