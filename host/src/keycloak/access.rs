//! Keycloak access as a host capability: which caches a kind's reconciles
//! read (its `Keycloak`, its realm, the namespaces their policies select),
//! which resources a change of those concerns, the scoped gateway each call
//! gets (or the refusal before any call), and `Degraded` when Keycloak
//! failed.

use std::sync::Arc;

use keycloak_operator_api::reasons;
use serde_json::Value;

use super::KeycloakPool;
use super::drift_watch::DriftWatch;
use super::placement::References;
use crate::capability::{HostCapability, Nudge, NudgeCause, Nudges, Preparation, Refusal};
use crate::controller::informer::{Informer, ObjectKey};
use crate::controller::status;
use crate::runtime::imports::CallStats;
use crate::runtime::model::{Capability, Description, Detail, KeycloakScope};

/// The Keycloak capability.
pub struct KeycloakAccess {
    pool: Arc<KeycloakPool>,
    references: Arc<References>,
    drift: Arc<DriftWatch>,
}

impl KeycloakAccess {
    /// Access through `pool`, targets resolved from `references`, drift
    /// watched by `drift`.
    pub fn new(pool: Arc<KeycloakPool>, references: Arc<References>, drift: Arc<DriftWatch>) -> Self {
        KeycloakAccess {
            pool,
            references,
            drift,
        }
    }

    /// Whether the resource `data` (in `namespace`) refers to the object
    /// `key` of kind `kind`: directly, or (for a `Keycloak`) through its realm.
    fn refers_to(&self, data: &Value, namespace: &str, kind: &str, key: &ObjectKey) -> bool {
        let points_to = |field: &str, data: &Value, own: &str| {
            let name = data.pointer(&format!("/spec/{field}/name")).and_then(Value::as_str);
            let ns = data
                .pointer(&format!("/spec/{field}/namespace"))
                .and_then(Value::as_str)
                .unwrap_or(own);
            name == Some(key.name.as_str()) && ns == key.namespace
        };
        match kind {
            "Keycloak" => {
                if points_to("keycloakRef", data, namespace) {
                    return true;
                }
                let realm = data.pointer("/spec/realmRef/name").and_then(Value::as_str);
                let realm_ns = data
                    .pointer("/spec/realmRef/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(namespace);
                realm
                    .and_then(|name| self.references.realms.get(&ObjectKey::new(realm_ns, name)))
                    .is_some_and(|realm| points_to("keycloakRef", &realm.data, realm_ns))
            }
            "KeycloakRealm" => points_to("realmRef", data, namespace),
            _ => false,
        }
    }
}

impl HostCapability for KeycloakAccess {
    fn watches(&self, description: &Description) -> Vec<Arc<Informer>> {
        match description.keycloak_scope {
            KeycloakScope::Realm | KeycloakScope::InRealm => vec![
                self.references.keycloaks.clone(),
                self.references.realms.clone(),
                self.references.namespaces.clone(),
            ],
            KeycloakScope::None | KeycloakScope::Instance => Vec::new(),
        }
    }

    fn affected(&self, informer: &Informer, key: &ObjectKey, parents: &Informer) -> Vec<ObjectKey> {
        let kind = informer.resource.kind.as_str();
        if kind == "Namespace" {
            // A namespace's labels decide policies; they are looked at at the
            // next resync, like before (a label change is rare).
            return Vec::new();
        }
        parents
            .list()
            .into_iter()
            .filter(|parent| {
                self.refers_to(
                    &parent.data,
                    parent.metadata.namespace.as_deref().unwrap_or_default(),
                    kind,
                    key,
                )
            })
            .map(|parent| ObjectKey::of(&parent))
            .collect()
    }

    fn after_departure(&self, parents: &Informer) -> Vec<ObjectKey> {
        parents
            .list()
            .into_iter()
            .filter(|object| {
                status::current_ready_reason(object.data.get("status")).as_deref() == Some(reasons::QUOTA_EXCEEDED)
            })
            .map(|object| ObjectKey::of(&object))
            .collect()
    }

    fn kind_started(&self, kind: &str, description: &Description, parents: &Arc<Informer>) {
        // Resources of a kind that owns realms are claimants of their realm
        // for every kind: one realm, one owner.
        if description.keycloak_scope == KeycloakScope::Realm {
            self.references.realm_owners.register(kind, parents.clone());
        }
    }

    fn kind_stopped(&self, kind: &str) {
        self.references.realm_owners.unregister(kind);
    }

    fn nudges(&self) -> Vec<Nudges> {
        vec![
            Nudges {
                cause: NudgeCause::Drift,
                receiver: self.drift.subscribe(),
            },
            Nudges {
                cause: NudgeCause::Recovery,
                receiver: self.pool.recoveries(),
            },
        ]
    }

    fn departed(&self, kind: &str, key: &ObjectKey) {
        self.drift.forget(&Nudge {
            kind: kind.to_owned(),
            key: key.clone(),
        });
    }

    fn prepare(&self, call: &mut Preparation<'_>) -> Result<(), Refusal> {
        let scope = call.description.keycloak_scope;
        let Some(resolved) = self.references.resolve(call.object, call.kind, scope, call.peers)? else {
            return Ok(());
        };
        if call.grants.contains(&Capability::KeycloakAdmin) {
            let connection = self.pool.connection(&resolved.endpoint);
            let who = Nudge {
                kind: call.kind.to_owned(),
                key: ObjectKey::of(call.object),
            };
            let recorder = self.drift.recorder(&connection, &resolved.scope, who.clone());
            call.keycloak = Some(KeycloakPool::gateway(
                connection,
                resolved.scope.clone(),
                resolved.tenant.clone(),
                recorder,
                who,
            ));
        }
        call.dependency = Some(format!("Keycloak {}", resolved.target.keycloak));
        call.target = Some(resolved.target);
        call.related.extend(resolved.related);
        Ok(())
    }

    fn degraded(&self, stats: &CallStats, dependency: Option<&str>) -> Option<Detail> {
        stats.keycloak_unavailable.then(|| {
            Detail::new(
                reasons::KEYCLOAK_UNAVAILABLE,
                format!(
                    "{} is unreachable or failing; the last applied state stands and changes wait for it",
                    dependency.unwrap_or("Keycloak")
                ),
            )
        })
    }
}
