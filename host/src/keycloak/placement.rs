//! Resolving where a resource's Keycloak requests go, and whether it may send
//! them at all. This runs before the component is called: a refused
//! reference costs no Keycloak request.

use std::sync::Arc;

use keycloak_operator_api::managed::naming;
use keycloak_operator_api::{Keycloak, KeycloakRealm, NamespacePolicy, reasons};
use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::Value;

use super::Endpoint;
use super::route::Scope;
use crate::capability::Refusal;
use crate::controller::informer::{Informer, ObjectKey};
use crate::controller::selector;
use crate::runtime::model::{Detail, KeycloakScope, Target};

/// The caches references are resolved from.
pub struct References {
    /// `Keycloak` resources.
    pub keycloaks: Arc<Informer>,
    /// `KeycloakRealm` resources.
    pub realms: Arc<Informer>,
    /// Namespaces, for label-selector policies.
    pub namespaces: Arc<Informer>,
    /// Addresses that replace managed Keycloaks' in-cluster URLs, by
    /// `namespace/name` (for tests and for running the host outside the
    /// cluster; see docs/configuration.md).
    pub address_overrides: std::collections::BTreeMap<String, String>,
    /// The resources of every kind that owns a realm (the realm scope), by
    /// kind: one realm has one owner, the oldest claimant, whatever its kind.
    pub realm_owners: RealmOwners,
}

/// The caches of the kinds that own realms, kept by their controllers.
#[derive(Default)]
pub struct RealmOwners {
    kinds: std::sync::RwLock<std::collections::BTreeMap<String, Arc<Informer>>>,
}

impl RealmOwners {
    /// Counts the resources of `kind` (its controller's cache) as claimants.
    pub fn register(&self, kind: &str, informer: Arc<Informer>) {
        self.kinds
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(kind.to_owned(), informer);
    }

    /// Stops counting `kind` (its controller stopped).
    pub fn unregister(&self, kind: &str) {
        self.kinds.write().unwrap_or_else(|p| p.into_inner()).remove(kind);
    }

    /// The claimant of `realm` on `keycloak` that comes before `object`
    /// (older; ties by kind, namespace and name), if any: the owner.
    fn older_claimant(&self, object: &DynamicObject, kind: &str, keycloak: &ObjectKey, realm: &str) -> Option<String> {
        let rank = |o: &DynamicObject, k: &str| {
            (
                creation(o),
                k.to_owned(),
                o.namespace().unwrap_or_default(),
                o.name_any(),
            )
        };
        let mine = rank(object, kind);
        let kinds = self.kinds.read().unwrap_or_else(|p| p.into_inner());
        let mut best: Option<((String, String, String, String), String)> = None;
        for (peer_kind, informer) in kinds.iter() {
            for peer in informer.list() {
                if peer.uid() == object.uid()
                    || spec_str(&peer, "/spec/realmName") != Some(realm)
                    || reference(&peer, "keycloakRef").ok().as_ref() != Some(keycloak)
                {
                    continue;
                }
                let theirs = rank(&peer, peer_kind);
                if theirs < mine && best.as_ref().is_none_or(|(b, _)| theirs < *b) {
                    let name = peer_kind.rsplit('/').next().unwrap_or(peer_kind);
                    best = Some((theirs, format!("{name} {}", ObjectKey::of(&peer))));
                }
            }
        }
        best.map(|(_, who)| who)
    }
}

/// A resolved, authorized target.
pub struct Resolved {
    /// How to reach the Keycloak.
    pub endpoint: Endpoint,
    /// What the resource may touch.
    pub scope: Scope,
    /// What the component is told.
    pub target: Target,
    /// The namespace of a tenant: a resource placed in a realm from another
    /// namespace than the realm resource's. The host refuses its grants of
    /// realm administration.
    pub tenant: Option<String>,
    /// Referenced objects, as JSON, for the component.
    pub related: Vec<String>,
}

fn to_json(object: &DynamicObject) -> String {
    serde_json::to_string(object).unwrap_or_default()
}

fn spec_str<'a>(object: &'a DynamicObject, pointer: &str) -> Option<&'a str> {
    object
        .data
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub(super) fn reference(object: &DynamicObject, field: &str) -> Result<ObjectKey, Refusal> {
    let own_namespace = object.namespace().unwrap_or_default();
    let name = spec_str(object, &format!("/spec/{field}/name")).ok_or_else(|| {
        Refusal::Invalid(Detail::new(
            "InvalidReference",
            format!("spec.{field}.name is required"),
        ))
    })?;
    let namespace = spec_str(object, &format!("/spec/{field}/namespace")).unwrap_or(&own_namespace);
    Ok(ObjectKey::new(namespace, name))
}

fn is_deleting(object: &DynamicObject) -> bool {
    object.metadata.deletion_timestamp.is_some()
}

impl References {
    /// Whether `policy` (of an object in `owner_namespace`) lets resources
    /// of `namespace` refer to it. The owner's own namespace always may.
    pub fn namespace_allowed(&self, policy: &NamespacePolicy, owner_namespace: &str, namespace: &str) -> bool {
        if namespace == owner_namespace || policy.names.iter().any(|n| n == namespace) {
            return true;
        }
        let Some(selector) = &policy.selector else {
            return false;
        };
        let labels = self
            .namespaces
            .get(&ObjectKey::new("", namespace))
            .and_then(|ns| ns.metadata.labels.clone())
            .unwrap_or_default();
        selector::matches(selector, &labels)
    }

    fn keycloak(&self, key: &ObjectKey) -> Result<(Arc<DynamicObject>, Keycloak), Refusal> {
        let missing = || {
            Refusal::Missing(Detail::new(
                reasons::REFERENCE_NOT_FOUND,
                format!("Keycloak {key} does not exist"),
            ))
        };
        let object = self.keycloaks.get(key).ok_or_else(missing)?;
        if is_deleting(&object) {
            return Err(Refusal::Missing(Detail::new(
                reasons::REFERENCE_NOT_FOUND,
                format!("Keycloak {key} is being deleted"),
            )));
        }
        let typed: Keycloak = serde_json::to_value(&*object)
            .and_then(serde_json::from_value)
            .map_err(|e| {
                Refusal::Missing(Detail::new(
                    reasons::REFERENCE_NOT_FOUND,
                    format!("Keycloak {key} is not readable: {e}"),
                ))
            })?;
        Ok((object, typed))
    }

    /// How to reach `keycloak`; `setup` for the `Keycloak` resource's own
    /// reconciles (see [`Endpoint::managed`]).
    fn endpoint(&self, key: &ObjectKey, keycloak: &Keycloak, setup: bool) -> Result<Endpoint, Refusal> {
        if let Some(external) = &keycloak.spec.external {
            return Ok(Endpoint::new(
                &key.namespace,
                &key.name,
                &external.url,
                &external.admin_credentials,
            ));
        }
        let Some(managed) = &keycloak.spec.managed else {
            return Err(Refusal::Missing(Detail::new(
                "KeycloakNotReady",
                format!("Keycloak {key} has no address yet"),
            )));
        };
        let url = self
            .address_overrides
            .get(&key.to_string())
            .cloned()
            .unwrap_or_else(|| naming::url(&key.name, &key.namespace, managed.tls_secret_name.is_some()));
        Ok(Endpoint::managed(&key.namespace, &key.name, &url, setup))
    }

    /// Resolves the target of `object` for a kind with `scope`; `None` for
    /// kinds that never talk to Keycloak. `peers` holds the objects of the
    /// same kind, which quotas are counted among.
    pub fn resolve(
        &self,
        object: &DynamicObject,
        kind: &str,
        scope: KeycloakScope,
        peers: &Informer,
    ) -> Result<Option<Resolved>, Refusal> {
        match scope {
            KeycloakScope::None => Ok(None),
            KeycloakScope::Instance => self.resolve_instance(object).map(Some),
            KeycloakScope::Realm => self.resolve_realm_owner(object, kind, Some(peers)).map(Some),
            KeycloakScope::InRealm => self.resolve_in_realm(object, kind, peers).map(Some),
        }
    }

    fn resolve_instance(&self, object: &DynamicObject) -> Result<Resolved, Refusal> {
        let key = ObjectKey::of(object);
        let typed: Keycloak = serde_json::to_value(object)
            .and_then(serde_json::from_value)
            .map_err(|e| Refusal::Invalid(Detail::new("InvalidSpec", format!("not a valid Keycloak: {e}"))))?;
        let endpoint = self.endpoint(&key, &typed, true)?;
        Ok(Resolved {
            target: Target {
                keycloak: key.to_string(),
                url: endpoint.url.clone(),
                realm: None,
            },
            endpoint,
            scope: Scope::Instance,
            related: Vec::new(),
            tenant: None,
        })
    }

    /// A resource that owns a realm on a `Keycloak` (`spec.keycloakRef`,
    /// `spec.realmName`): the Keycloak must allow its namespace, and the
    /// namespace must be within the Keycloak's realm quota.
    fn resolve_realm_owner(
        &self,
        object: &DynamicObject,
        kind: &str,
        peers: Option<&Informer>,
    ) -> Result<Resolved, Refusal> {
        let namespace = object.namespace().unwrap_or_default();
        let keycloak_key = reference(object, "keycloakRef")?;
        let realm = spec_str(object, "/spec/realmName")
            .ok_or_else(|| Refusal::Invalid(Detail::new("InvalidSpec", "spec.realmName is required")))?
            .to_owned();
        // The master realm administers the whole Keycloak: no kind's
        // resource may own it, whatever its CRD allows.
        if realm == "master" {
            return Err(Refusal::Denied(Detail::new(
                reasons::MASTER_REALM_REFUSED,
                "the master realm administers the whole Keycloak; no resource may own it or place anything in it",
            )));
        }
        let (keycloak_object, keycloak) = self.keycloak(&keycloak_key)?;
        // One realm, one owner: the oldest claimant of any kind. Checked
        // before any request, also for a deletion, whose cleanup must not
        // touch a realm it never owned.
        if let Some(owner) = self.realm_owners.older_claimant(object, kind, &keycloak_key, &realm) {
            return Err(Refusal::Denied(Detail::new(
                reasons::CONFLICT,
                format!("realm {realm:?} on Keycloak {keycloak_key} is owned by {owner}, which claimed it first"),
            )));
        }
        let placement = &keycloak.spec.realms;
        // A resource being deleted always gets its cleanup, even if its
        // namespace lost its place: the cleanup touches only what it owns.
        if !is_deleting(object)
            && !self.namespace_allowed(&placement.allowed_namespaces, &keycloak_key.namespace, &namespace)
        {
            return Err(Refusal::Denied(Detail::new(
                reasons::NAMESPACE_NOT_ALLOWED,
                format!(
                    "Keycloak {keycloak_key} does not allow realms from namespace {namespace} (see its spec.realms.allowedNamespaces)"
                ),
            )));
        }
        if let (Some(max), Some(peers)) = (placement.max_per_namespace, peers) {
            let same_namespace_and_keycloak = |peer: &DynamicObject| {
                peer.namespace().as_deref() == Some(namespace.as_str())
                    && reference(peer, "keycloakRef").is_ok_and(|k| k == keycloak_key)
            };
            if position_among(object, peers, same_namespace_and_keycloak) >= max as usize {
                return Err(Refusal::Denied(Detail::new(
                    reasons::QUOTA_EXCEEDED,
                    format!(
                        "Keycloak {keycloak_key} allows {max} realm(s) per namespace and namespace {namespace} has more; the oldest are served"
                    ),
                )));
            }
        }
        let endpoint = self.endpoint(&keycloak_key, &keycloak, false)?;
        Ok(Resolved {
            target: Target {
                keycloak: keycloak_key.to_string(),
                url: endpoint.url.clone(),
                realm: Some(realm.clone()),
            },
            endpoint,
            scope: Scope::OwnedRealm(realm),
            related: vec![to_json(&keycloak_object)],
            tenant: None,
        })
    }

    /// A resource inside a realm (`spec.realmRef`): the realm resource must
    /// allow its namespace (`spec.clients.allowedNamespaces`), and the realm's
    /// Keycloak must still allow the realm.
    fn resolve_in_realm(&self, object: &DynamicObject, kind: &str, peers: &Informer) -> Result<Resolved, Refusal> {
        let namespace = object.namespace().unwrap_or_default();
        let realm_key = reference(object, "realmRef")?;
        let missing = |why: &str| {
            Refusal::Missing(Detail::new(
                reasons::REFERENCE_NOT_FOUND,
                format!("KeycloakRealm {realm_key} {why}"),
            ))
        };
        let realm_object = self.realms.get(&realm_key).ok_or_else(|| missing("does not exist"))?;
        if is_deleting(&realm_object) {
            return Err(missing("is being deleted"));
        }
        let realm: KeycloakRealm = serde_json::to_value(&*realm_object)
            .and_then(serde_json::from_value)
            .map_err(|e| missing(&format!("is not readable: {e}")))?;
        let placement = placement_for(&realm, kind);
        let what = kind.rsplit('/').next().unwrap_or(kind);
        if !is_deleting(object)
            && !self.namespace_allowed(&placement.allowed_namespaces, &realm_key.namespace, &namespace)
        {
            return Err(Refusal::Denied(Detail::new(
                reasons::NAMESPACE_NOT_ALLOWED,
                format!(
                    "KeycloakRealm {realm_key} does not allow {what}s from namespace {namespace} (see its {})",
                    placement.field
                ),
            )));
        }
        if let Some(max) = placement.max {
            // Resources refused for their namespace take no place in the quota.
            let same_realm = |peer: &DynamicObject| {
                reference(peer, "realmRef").is_ok_and(|r| r == realm_key)
                    && self.namespace_allowed(
                        &placement.allowed_namespaces,
                        &realm_key.namespace,
                        &peer.namespace().unwrap_or_default(),
                    )
            };
            if position_among(object, peers, same_realm) >= max as usize {
                return Err(Refusal::Denied(Detail::new(
                    reasons::QUOTA_EXCEEDED,
                    format!("KeycloakRealm {realm_key} allows {max} {what}(s) and has more; the oldest are served"),
                )));
            }
        }
        let realm_name = realm.spec.realm_name.clone();
        // The realm's own placement on its Keycloak must still hold.
        let owner = self.resolve_realm_owner(&realm_object, REALM_KIND, None)?;
        Ok(Resolved {
            target: Target {
                keycloak: owner.target.keycloak,
                url: owner.target.url,
                realm: Some(realm_name.clone()),
            },
            endpoint: owner.endpoint,
            scope: Scope::InRealm(realm_name),
            related: [to_json(&realm_object)].into_iter().chain(owner.related).collect(),
            tenant: (namespace != realm_key.namespace).then_some(namespace),
        })
    }
}

/// The kind of the realm resources in-realm kinds refer to.
const REALM_KIND: &str = "keycloak.wasmop.dev/KeycloakRealm";

/// Who may place resources of one kind in a realm.
struct Placement {
    allowed_namespaces: NamespacePolicy,
    max: Option<u32>,
    /// The field of the realm resource that says so, for messages.
    field: String,
}

/// The placement policy a realm resource states for `kind` (`group/Kind`):
/// `spec.clients` for `KeycloakClient`s, the first `spec.placement` entry
/// naming the kind (or `*`) for every other kind, and only the realm
/// resource's own namespace when none does.
fn placement_for(realm: &KeycloakRealm, kind: &str) -> Placement {
    let bare = kind.rsplit('/').next().unwrap_or(kind);
    if kind == "keycloak.wasmop.dev/KeycloakClient" {
        return Placement {
            allowed_namespaces: realm.spec.clients.allowed_namespaces.clone(),
            max: realm.spec.clients.max_clients,
            field: "spec.clients.allowedNamespaces".into(),
        };
    }
    let entry = realm
        .spec
        .placement
        .iter()
        .enumerate()
        .find(|(_, p)| p.kinds.iter().any(|k| k == kind || k == bare || k == "*"));
    match entry {
        Some((i, entry)) => Placement {
            allowed_namespaces: entry.allowed_namespaces.clone(),
            max: entry.max_per_realm,
            field: format!("spec.placement[{i}]"),
        },
        None => Placement {
            allowed_namespaces: NamespacePolicy::default(),
            max: None,
            field: format!("spec.placement, which names no entry for {bare}"),
        },
    }
}

/// Where `object` stands among the live peers that `counts` selects, oldest
/// first (ties by namespace and name), so that a quota serves the oldest.
/// A resource being deleted no longer counts against the quota, and always
/// stands first itself: its cleanup must run (it touches only what the
/// resource owns, so a resource that was refused all along changes nothing).
fn position_among(object: &DynamicObject, peers: &Informer, counts: impl Fn(&DynamicObject) -> bool) -> usize {
    if is_deleting(object) {
        return 0;
    }
    let key = |o: &DynamicObject| (creation(o), o.namespace().unwrap_or_default(), o.name_any());
    let mut ranked: Vec<_> = peers
        .list()
        .iter()
        .filter(|p| !is_deleting(p) && counts(p))
        .map(|p| key(p))
        .collect();
    ranked.sort();
    let me = key(object);
    ranked.iter().position(|p| *p == me).unwrap_or(ranked.len())
}

fn creation(object: &DynamicObject) -> String {
    object
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default()
}
