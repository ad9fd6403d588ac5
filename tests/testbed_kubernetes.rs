//! The test bed's Kubernetes control plane is the real thing: a kube-apiserver
//! backed by etcd, with RBAC, service-account tokens, admission (including CEL
//! validation) and a kube-controller-manager running the garbage collector,
//! the namespace controller and the Deployment controller.
//!
//! Each test works in a namespace (and, for CRDs, an API kind) of its own, so
//! the tests run in parallel and leave nothing behind.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use keycloak_operator_e2e::testbed::{
    TestNamespace, api_error_code, eventually, kube_client, kube_client_with_token, unique_name,
};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

const GROUP: &str = "testbed.wasmop.dev";
const FIELD_MANAGER: &str = "testbed-e2e";
const CEL_MESSAGE: &str = "minReplicas must not be greater than replicas";

/// A CustomResourceDefinition made for one test: its kind carries a unique
/// suffix so that concurrent runs never share it; it is deleted on drop.
struct TestCrd {
    resource: ApiResource,
    crd_name: String,
}

impl TestCrd {
    async fn install(client: &Client) -> Result<Self> {
        // `probe-<suffix>` → kind `Probe<suffix>`, plural `probe<suffix>s`.
        let suffix: String = unique_name("").chars().filter(char::is_ascii_alphanumeric).collect();
        let kind = format!("Probe{suffix}");
        let plural = format!("probe{suffix}s");
        let crd_name = format!("{plural}.{GROUP}");
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": { "name": crd_name },
            "spec": {
                "group": GROUP,
                "scope": "Namespaced",
                "names": { "kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List") },
                "versions": [{
                    "name": "v1alpha1",
                    "served": true,
                    "storage": true,
                    "subresources": { "status": {} },
                    "schema": { "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["replicas"],
                                "properties": {
                                    "replicas": { "type": "integer", "minimum": 0 },
                                    "minReplicas": { "type": "integer", "minimum": 0 }
                                },
                                "x-kubernetes-validations": [{
                                    "rule": "!has(self.minReplicas) || self.minReplicas <= self.replicas",
                                    "message": CEL_MESSAGE
                                }]
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "observedGeneration": { "type": "integer" },
                                    "phase": { "type": "string" }
                                }
                            }
                        }
                    }}
                }]
            }
        }))?;
        let crds = Api::<CustomResourceDefinition>::all(client.clone());
        crds.create(&PostParams::default(), &crd)
            .await
            .context("creating the CRD")?;
        let installed = Self {
            resource: ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1alpha1", &kind), &plural),
            crd_name,
        };
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds, &installed.crd_name, conditions::is_crd_established()),
        )
        .await
        .context("CRD not established within 30s")??;
        Ok(installed)
    }

    fn api(&self, client: &Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), namespace, &self.resource)
    }

    fn object(&self, name: &str, spec: serde_json::Value) -> DynamicObject {
        DynamicObject::new(name, &self.resource).data(json!({ "spec": spec }))
    }
}

impl Drop for TestCrd {
    fn drop(&mut self) {
        let name = self.crd_name.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(client) = kube_client().await {
                    let _ = Api::<CustomResourceDefinition>::all(client)
                        .delete(&name, &DeleteParams::default())
                        .await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// Right after a CRD is established, its endpoint may answer 404 for a
/// moment while the API server's handlers catch up; retry such creates.
async fn create_when_served(api: &Api<DynamicObject>, object: &DynamicObject) -> Result<DynamicObject, kube::Error> {
    let mut attempts = 0;
    loop {
        match api.create(&PostParams::default(), object).await {
            Err(e) if api_error_code(&e) == Some(404) && attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

#[tokio::test]
async fn custom_resource_with_cel_validation_watch_and_server_side_apply_status() -> Result<()> {
    let client = kube_client().await?;
    let ns = TestNamespace::create(&client, "crd").await?;
    let crd = TestCrd::install(&client).await?;
    let api = crd.api(&client, ns.name());

    // An object that breaks the CEL rule is rejected at admission, with the rule's message.
    let invalid = crd.object("too-few", json!({ "replicas": 1, "minReplicas": 3 }));
    let rejected = create_when_served(&api, &invalid)
        .await
        .expect_err("the CEL rule must reject the object");
    let kube::Error::Api(status) = &rejected else {
        panic!("expected an API error, got {rejected:?}")
    };
    assert_eq!(status.code, 422, "{status:?}");
    assert!(
        status.message.contains(CEL_MESSAGE),
        "message should carry the rule's message: {}",
        status.message
    );

    // A watcher that has finished its initial list sees the valid object appear...
    let mut events = watcher(
        api.clone(),
        watcher::Config::default().fields("metadata.name=just-right"),
    )
    .boxed();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.try_next()).await?? {
            Some(watcher::Event::InitDone) => break,
            Some(_) => continue,
            None => panic!("watch stream ended"),
        }
    }
    let created = create_when_served(
        &api,
        &crd.object("just-right", json!({ "replicas": 3, "minReplicas": 1 })),
    )
    .await?;
    let seen = next_applied(&mut events).await?;
    assert_eq!(seen.uid(), created.uid());
    assert_eq!(seen.data["spec"]["replicas"], 3);

    // ...and its status, written through the status subresource with server-side apply...
    let status_patch = json!({
        "apiVersion": format!("{GROUP}/v1alpha1"),
        "kind": crd.resource.kind,
        "status": { "observedGeneration": created.metadata.generation, "phase": "Ready" }
    });
    let patched = api
        .patch_status(
            "just-right",
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&status_patch),
        )
        .await?;
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(
        patched.data["spec"]["replicas"], 3,
        "a status write leaves the spec alone"
    );
    let status_manager = patched
        .managed_fields()
        .iter()
        .find(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
        .context("our field manager is recorded")?;
    assert_eq!(status_manager.operation.as_deref(), Some("Apply"));
    assert_eq!(status_manager.subresource.as_deref(), Some("status"));

    // ...reaches the watcher as a modification.
    let seen = next_applied(&mut events).await?;
    assert_eq!(seen.data["status"]["phase"], "Ready");
    Ok(())
}

async fn next_applied(
    events: &mut (impl futures::Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Unpin),
) -> Result<DynamicObject> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.try_next()).await?? {
            Some(watcher::Event::Apply(object)) => return Ok(object),
            Some(_) => continue,
            None => anyhow::bail!("watch stream ended"),
        }
    }
}

#[tokio::test]
async fn lease_is_created_and_renewed_with_optimistic_concurrency() -> Result<()> {
    let client = kube_client().await?;
    let ns = TestNamespace::create(&client, "lease").await?;
    let leases = Api::<Lease>::namespaced(client.clone(), ns.name());

    // A replica takes the lease...
    let now = || MicroTime(k8s_openapi::jiff::Timestamp::now());
    let mut lease: Lease = serde_json::from_value(json!({
        "metadata": { "name": "leader" },
        "spec": { "holderIdentity": "replica-a", "leaseDurationSeconds": 15, "leaseTransitions": 0 }
    }))?;
    let spec = lease.spec.as_mut().context("spec")?;
    spec.acquire_time = Some(now());
    spec.renew_time = Some(now());
    let taken = leases.create(&PostParams::default(), &lease).await?;
    let first_renew = taken
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.clone())
        .context("renewTime")?;

    // ...and renews it: a replace carrying the resourceVersion it read.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut renewal = taken.clone();
    renewal.spec.as_mut().context("spec")?.renew_time = Some(now());
    let renewed = leases.replace("leader", &PostParams::default(), &renewal).await?;
    let second_renew = renewed
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.clone())
        .context("renewTime")?;
    assert!(
        second_renew.0 > first_renew.0,
        "renewTime advances: {first_renew:?} -> {second_renew:?}"
    );
    assert_ne!(
        renewed.resource_version(),
        taken.resource_version(),
        "resourceVersion changes"
    );
    assert_eq!(
        renewed.spec.as_ref().and_then(|s| s.holder_identity.as_deref()),
        Some("replica-a")
    );

    // A competitor writing from the stale copy loses: the API server answers 409 Conflict,
    // which is what makes Lease-based leader election safe.
    let mut stale = taken.clone();
    stale.spec.as_mut().context("spec")?.holder_identity = Some("replica-b".into());
    let conflict = leases
        .replace("leader", &PostParams::default(), &stale)
        .await
        .expect_err("stale write must fail");
    assert_eq!(api_error_code(&conflict), Some(409), "{conflict:?}");
    Ok(())
}

#[tokio::test]
async fn owned_configmap_is_garbage_collected_after_its_owner_is_deleted() -> Result<()> {
    let client = kube_client().await?;
    let ns = TestNamespace::create(&client, "gc").await?;
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), ns.name());

    let owner = configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "owner" } }))?,
        )
        .await?;
    let owned: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": "owned",
            "ownerReferences": [{ "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid() }]
        },
        "data": { "key": "value" }
    }))?;
    configmaps.create(&PostParams::default(), &owned).await?;

    // Only the API server is involved so far; deleting the owner leaves the
    // rest to kube-controller-manager's garbage collector.
    configmaps.delete("owner", &DeleteParams::background()).await?;
    eventually(
        "the garbage collector to delete the owned ConfigMap",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async { Ok(configmaps.get_opt("owned").await?.is_none().then_some(())) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn deployment_controller_creates_a_replicaset_that_never_runs_pods() -> Result<()> {
    let client = kube_client().await?;
    let ns = TestNamespace::create(&client, "deploy").await?;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "registry.invalid/web:1" }] }
            }
        }
    }))?;
    let deployment = Api::<Deployment>::namespaced(client.clone(), ns.name())
        .create(&PostParams::default(), &deployment)
        .await?;

    let replicasets = Api::<ReplicaSet>::namespaced(client.clone(), ns.name());
    let owned_by_deployment = eventually(
        "a ReplicaSet owned by the Deployment",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            let list = replicasets.list(&ListParams::default()).await?;
            Ok(list.items.into_iter().find(|rs| {
                rs.owner_references()
                    .iter()
                    .any(|o| o.uid == deployment.uid().unwrap_or_default())
            }))
        },
    )
    .await?;
    assert_eq!(owned_by_deployment.spec.replicas, Some(1));
    // There is no kubelet and no scheduler in the bed: nothing ever becomes ready.
    let status = replicasets.get(&owned_by_deployment.name_any()).await?.status;
    assert_eq!(status.and_then(|s| s.ready_replicas).unwrap_or(0), 0);
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_removes_it_and_its_contents() -> Result<()> {
    let client = kube_client().await?;
    let name = unique_name("ns-delete");
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": name } }))?,
        )
        .await?;
    Api::<ConfigMap>::namespaced(client.clone(), &name)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "content" } }))?,
        )
        .await?;

    // The namespace controller empties the namespace, then removes its finalizer.
    namespaces.delete(&name, &DeleteParams::default()).await?;
    eventually(
        "the namespace controller to finish deleting the namespace",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async { Ok(namespaces.get_opt(&name).await?.is_none().then_some(())) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn service_account_token_is_refused_until_rbac_grants_access() -> Result<()> {
    let admin = kube_client().await?;
    let ns = TestNamespace::create(&admin, "rbac").await?;
    let other_ns = TestNamespace::create(&admin, "rbac-other").await?;

    // A ServiceAccount and a short-lived token for it, minted with the TokenRequest API.
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), ns.name());
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "reader" } }))?,
        )
        .await?;
    let request: TokenRequest =
        serde_json::from_value(json!({ "spec": { "audiences": [], "expirationSeconds": 600 } }))?;
    let minted: TokenRequest = accounts
        .create_subresource("token", "reader", &PostParams::default(), &request)
        .await?;
    let token = minted
        .status
        .and_then(|s| s.token)
        .context("TokenRequest without a token")?;
    let as_reader = kube_client_with_token(&token).await?;
    let reader_configmaps = Api::<ConfigMap>::namespaced(as_reader.clone(), ns.name());

    // Authenticated, but RBAC allows nothing yet: 403 Forbidden.
    let refused = reader_configmaps
        .list(&ListParams::default())
        .await
        .expect_err("no RBAC yet");
    assert_eq!(api_error_code(&refused), Some(403), "{refused:?}");

    // A Role and RoleBinding grant read access to ConfigMaps in this namespace only.
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": "configmap-reader" },
        "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"] }]
    }))?;
    Api::<Role>::namespaced(admin.clone(), ns.name())
        .create(&PostParams::default(), &role)
        .await?;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "reader-reads-configmaps" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader" },
        "subjects": [{ "kind": "ServiceAccount", "name": "reader", "namespace": ns.name() }]
    }))?;
    Api::<RoleBinding>::namespaced(admin.clone(), ns.name())
        .create(&PostParams::default(), &binding)
        .await?;

    // The authorizer learns of the binding through a watch: allowed shortly after.
    eventually(
        "the RoleBinding to take effect",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            match reader_configmaps.list(&ListParams::default()).await {
                Ok(_) => Ok(Some(())),
                Err(e) if api_error_code(&e) == Some(403) => Ok(None),
                Err(e) => Err(e.into()),
            }
        },
    )
    .await?;

    // Still refused what was not granted: writing here, reading elsewhere.
    let write = reader_configmaps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "nope" } }))?,
        )
        .await
        .expect_err("create was not granted");
    assert_eq!(api_error_code(&write), Some(403), "{write:?}");
    let elsewhere = Api::<ConfigMap>::namespaced(as_reader, other_ns.name())
        .list(&ListParams::default())
        .await
        .expect_err("the grant is namespaced");
    assert_eq!(api_error_code(&elsewhere), Some(403), "{elsewhere:?}");
    Ok(())
}
