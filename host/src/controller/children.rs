//! Children: the objects a component declares, applied with server-side
//! apply under the host's field manager, owned by the parent (so the garbage
//! collector removes them with it), and pruned when no longer declared.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::informer::{Informer, NamespaceScope};
use crate::runtime::model::KindRef;

/// The label every child carries; child watches select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "keycloak-operator";

/// The `ApiResource` of a kind reference.
pub fn api_resource(kind: &KindRef) -> ApiResource {
    let (group, version) = match kind.api_version.rsplit_once('/') {
        Some((group, version)) => (group.to_owned(), version.to_owned()),
        None => (String::new(), kind.api_version.clone()),
    };
    ApiResource {
        group,
        version,
        api_version: kind.api_version.clone(),
        kind: kind.kind.clone(),
        plural: kind.plural.clone(),
    }
}

fn kind_key(api_version: &str, kind: &str) -> String {
    format!("{api_version}/{kind}")
}

/// Caches of the children kinds in use, created when a component first
/// declares a kind (a new component version may declare new ones).
pub struct ChildCaches {
    client: Client,
    scope: NamespaceScope,
    cancel: CancellationToken,
    informers: Mutex<HashMap<String, Arc<Informer>>>,
}

/// An invalid child returned by a component.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidChild(pub String);

impl ChildCaches {
    /// No caches yet.
    pub fn new(client: Client, scope: NamespaceScope, cancel: CancellationToken) -> Self {
        ChildCaches {
            client,
            scope,
            cancel,
            informers: Mutex::new(HashMap::new()),
        }
    }

    /// The caches of `kinds`, started on first use.
    pub fn ensure(&self, kinds: &[KindRef]) -> Vec<(KindRef, Arc<Informer>)> {
        let mut informers = self.informers.lock().unwrap_or_else(|p| p.into_inner());
        kinds
            .iter()
            .map(|kind| {
                let informer = informers
                    .entry(kind_key(&kind.api_version, &kind.kind))
                    .or_insert_with(|| {
                        Informer::spawn(
                            self.client.clone(),
                            api_resource(kind),
                            true,
                            &self.scope,
                            Some(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}")),
                            self.cancel.clone(),
                        )
                    })
                    .clone();
                (kind.clone(), informer)
            })
            .collect()
    }

    /// Every child cache, for routing child events to parents.
    pub fn all(&self) -> Vec<Arc<Informer>> {
        self.informers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// Children of `parent_uid` in `namespace` among the given caches.
pub fn observed(caches: &[(KindRef, Arc<Informer>)], namespace: &str, parent_uid: &str) -> Vec<Arc<DynamicObject>> {
    caches
        .iter()
        .flat_map(|(_, informer)| informer.list_namespace(namespace))
        .filter(|child| owned_by(child, parent_uid))
        .collect()
}

/// The label that names the resource a related object belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// Related objects of the resource named `name` in `namespace`: those
/// labelled with its name (the caches hold only the operator's objects).
pub fn labelled_for(caches: &[(KindRef, Arc<Informer>)], namespace: &str, name: &str) -> Vec<Arc<DynamicObject>> {
    caches
        .iter()
        .flat_map(|(_, informer)| informer.list_namespace(namespace))
        .filter(|o| o.labels().get(INSTANCE_LABEL).map(String::as_str) == Some(name))
        .collect()
}

/// Whether `uid` is the controlling owner of `object`.
pub fn owned_by(object: &DynamicObject, uid: &str) -> bool {
    object
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid && r.controller == Some(true)))
}

/// The parent that controls `object`, as (kind, name).
pub fn controller_of(object: &DynamicObject) -> Option<(String, String)> {
    object
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.clone(), r.name.clone()))
}

/// The parent's identity, for owner references.
pub struct Parent<'a> {
    /// apiVersion.
    pub api_version: &'a str,
    /// kind.
    pub kind: &'a str,
    /// name.
    pub name: &'a str,
    /// namespace.
    pub namespace: &'a str,
    /// uid.
    pub uid: &'a str,
}

/// Applies the desired children and prunes the observed ones no longer
/// desired. Returns how many were applied and pruned.
pub async fn sync(
    client: &Client,
    field_manager: &str,
    parent: &Parent<'_>,
    declared: &[KindRef],
    desired: &[String],
    observed: &[Arc<DynamicObject>],
) -> Result<(usize, usize), SyncError> {
    let mut keep = HashSet::new();
    let mut prepared = Vec::new();
    for text in desired {
        let (kind, object) = prepare(parent, declared, text)?;
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        keep.insert((
            object["apiVersion"].as_str().unwrap_or_default().to_owned(),
            kind.kind.clone(),
            name.clone(),
        ));
        prepared.push((kind, name, object));
    }
    let params = PatchParams::apply(field_manager).force();
    let existing: HashSet<(String, String, String)> = observed.iter().filter_map(|child| key_of(child)).collect();
    for (kind, name, object) in &prepared {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), parent.namespace, &api_resource(kind));
        if !existing.contains(&(kind.api_version.clone(), kind.kind.clone(), name.clone())) {
            refuse_takeover(&api, parent, kind, name).await?;
        }
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| SyncError::Apply(format!("applying {} {}/{name}: {e}", kind.kind, parent.namespace)))?;
    }
    let mut pruned = 0;
    for child in observed {
        let Some(key) = key_of(child) else { continue };
        let (api_version, kind_name, _) = &key;
        if keep.contains(&key) {
            continue;
        }
        let Some(kind) = declared
            .iter()
            .find(|k| &k.api_version == api_version && &k.kind == kind_name)
        else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), parent.namespace, &api_resource(kind));
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(&child.name_any(), &params).await {
            Ok(_) => pruned += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => {
                return Err(SyncError::Apply(format!(
                    "pruning {} {}/{}: {e}",
                    kind.kind,
                    parent.namespace,
                    child.name_any()
                )));
            }
        }
    }
    Ok((prepared.len(), pruned))
}

/// (apiVersion, kind, name) of an observed child.
fn key_of(child: &DynamicObject) -> Option<(String, String, String)> {
    let types = child.types.as_ref()?;
    Some((types.api_version.clone(), types.kind.clone(), child.name_any()))
}

/// Refuses to apply a child over an object of the same name that the parent
/// does not control: force-applying would silently take over (and later
/// prune) a Secret or Service somebody else made. Only children not yet
/// observed are looked up, so a steady resource makes no extra request.
async fn refuse_takeover(
    api: &Api<DynamicObject>,
    parent: &Parent<'_>,
    kind: &KindRef,
    name: &str,
) -> Result<(), SyncError> {
    let found = api
        .get_opt(name)
        .await
        .map_err(|e| SyncError::Apply(format!("reading {} {}/{name}: {e}", kind.kind, parent.namespace)))?;
    match found {
        Some(object) if !owned_by(&object, parent.uid) => {
            let holder = match controller_of(&object) {
                Some((kind, name)) => format!("is controlled by {kind} {name}"),
                None => "was not created by this operator for it".to_owned(),
            };
            Err(SyncError::Conflict(format!(
                "{} {}/{name} already exists and {holder}; the operator does not take over objects of others. Delete it or choose another name for it in the {}'s spec",
                kind.kind, parent.namespace, parent.kind
            )))
        }
        _ => Ok(()),
    }
}

/// Why children could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The component returned something the host will not apply.
    #[error("{0}")]
    Invalid(#[from] InvalidChild),
    /// A child's name is taken by an object the parent does not control.
    #[error("{0}")]
    Conflict(String),
    /// The API server refused.
    #[error("{0}")]
    Apply(String),
}

/// Checks one child and stamps it with namespace, label and owner reference.
fn prepare(parent: &Parent<'_>, declared: &[KindRef], text: &str) -> Result<(KindRef, Value), InvalidChild> {
    let mut object: Value =
        serde_json::from_str(text).map_err(|e| InvalidChild(format!("a child is not JSON: {e}")))?;
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind_name = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = declared
        .iter()
        .find(|k| k.api_version == api_version && k.kind == kind_name)
        .cloned()
        .ok_or_else(|| {
            InvalidChild(format!(
                "the component returned a {api_version} {kind_name}, a kind it did not declare"
            ))
        })?;
    let metadata = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| InvalidChild(format!("a {kind_name} child has no metadata")))?;
    let name = metadata.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() || name.len() > 253 {
        return Err(InvalidChild(format!("a {kind_name} child has no valid metadata.name")));
    }
    match metadata.get("namespace").and_then(Value::as_str) {
        Some(ns) if ns != parent.namespace => {
            return Err(InvalidChild(format!(
                "a {kind_name} child names namespace {ns}; children live in their parent's namespace {}",
                parent.namespace
            )));
        }
        _ => {}
    }
    metadata.insert("namespace".into(), json!(parent.namespace));
    let labels = metadata.entry("labels").or_insert_with(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY));
    }
    metadata.insert(
        "ownerReferences".into(),
        json!([{
            "apiVersion": parent.api_version,
            "kind": parent.kind,
            "name": parent.name,
            "uid": parent.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }]),
    );
    Ok((kind, object))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> Parent<'static> {
        Parent {
            api_version: "example.dev/v1",
            kind: "Thing",
            name: "t",
            namespace: "ns",
            uid: "u1",
        }
    }

    fn config_map() -> KindRef {
        KindRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
        }
    }

    #[test]
    fn stamps_namespace_label_and_controller_reference() {
        let (_, child) = prepare(
            &parent(),
            &[config_map()],
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
        )
        .expect("valid child");
        assert_eq!(child["metadata"]["namespace"], "ns");
        assert_eq!(child["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(child["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(child["metadata"]["ownerReferences"][0]["controller"], true);
    }

    #[test]
    fn refuses_undeclared_kinds_and_other_namespaces() {
        let secret = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#;
        assert!(prepare(&parent(), &[config_map()], secret).is_err());
        let elsewhere = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"kube-system"}}"#;
        assert!(prepare(&parent(), &[config_map()], elsewhere).is_err());
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::Map;

        use super::*;

        fn text() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<i64>().prop_map(Value::from),
                "\\PC{0,300}".prop_map(Value::from),
                Just(json!({"nested": [1, {"x": null}]})),
            ]
        }

        fn field(known: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
            prop_oneof![
                Just(None),
                proptest::sample::select(known).prop_map(|k| Some(json!(k))),
                text().prop_map(Some),
            ]
        }

        fn child() -> impl Strategy<Value = String> {
            let metadata = (
                field(&["c", "", "kube-system"]),
                field(&["ns", "kube-system", "default", ""]),
                field(&["x"]),
                prop_oneof![
                    Just(None),
                    text().prop_map(Some),
                    Just(Some(json!([{"uid": "other", "controller": true}])))
                ],
            )
                .prop_map(|(name, namespace, labels, owners)| {
                    let mut m = Map::new();
                    for (key, value) in [
                        ("name", name),
                        ("namespace", namespace),
                        ("labels", labels),
                        ("ownerReferences", owners),
                    ] {
                        if let Some(value) = value {
                            m.insert(key.into(), value);
                        }
                    }
                    Value::Object(m)
                });
            let object = (
                field(&["v1", "apps/v1", "rbac.authorization.k8s.io/v1"]),
                field(&["ConfigMap", "Secret", "ClusterRoleBinding", "Namespace"]),
                prop_oneof![metadata.boxed(), text().boxed()],
            )
                .prop_map(|(api_version, kind, metadata)| {
                    let mut o = Map::new();
                    for (key, value) in [
                        ("apiVersion", api_version),
                        ("kind", kind),
                        ("metadata", Some(metadata)),
                    ] {
                        if let Some(value) = value {
                            o.insert(key.into(), value);
                        }
                    }
                    Value::Object(o).to_string()
                });
            prop_oneof![4 => object, 1 => "\\PC{0,200}"]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(5000))]

            /// Whatever a component returns as a child, the host either
            /// refuses it or applies it in the parent's namespace, as a
            /// declared kind, controlled by the parent alone.
            #[test]
            fn no_child_escapes_its_parent(text in child()) {
                let Ok((kind, object)) = prepare(&parent(), &[config_map()], &text) else {
                    return Ok(());
                };
                prop_assert_eq!(kind, config_map());
                prop_assert_eq!(&object["apiVersion"], "v1");
                prop_assert_eq!(&object["kind"], "ConfigMap");
                prop_assert_eq!(&object["metadata"]["namespace"], "ns");
                prop_assert_eq!(
                    &object["metadata"]["ownerReferences"],
                    &json!([{"apiVersion": "example.dev/v1", "kind": "Thing", "name": "t", "uid": "u1", "controller": true, "blockOwnerDeletion": true}])
                );
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                prop_assert!(!name.is_empty() && name.len() <= 253);
            }
        }
    }

    #[test]
    fn api_resources_split_group_and_version() {
        let deployment = KindRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
        };
        assert_eq!(api_resource(&deployment).group, "apps");
        assert_eq!(api_resource(&config_map()).group, "");
    }
}
