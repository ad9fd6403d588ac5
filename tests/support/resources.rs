//! Given-steps of the stories: CRDs, a `Keycloak` pointing at the bed's
//! Keycloak, realms, and waiting on their conditions.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use keycloak_operator_api::{Keycloak, KeycloakClient, KeycloakRealm, ReconcilerComponent};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::testbed::{eventually, repo_root, testbed};

/// Field manager of the tests' own writes (a user applying manifests).
pub const TEST_MANAGER: &str = "e2e-test";

/// The kinds the tests touch.
pub fn keycloak_kind() -> ApiResource {
    ApiResource::erase::<Keycloak>(&())
}

/// `KeycloakRealm`.
pub fn realm_kind() -> ApiResource {
    ApiResource::erase::<KeycloakRealm>(&())
}

/// `KeycloakClient`.
pub fn client_kind() -> ApiResource {
    ApiResource::erase::<KeycloakClient>(&())
}

/// The test-only `IntruderProbe`.
pub fn intruder_kind() -> ApiResource {
    ApiResource {
        group: "test.wasmop.dev".into(),
        version: "v1".into(),
        api_version: "test.wasmop.dev/v1".into(),
        kind: "IntruderProbe".into(),
        plural: "intruderprobes".into(),
    }
}

/// `ReconcilerComponent` (cluster-scoped: use the namespace `""`).
pub fn component_kind() -> ApiResource {
    ApiResource::erase::<ReconcilerComponent>(&())
}

/// A kind of the tests' own group `test.wasmop.dev/v1`, or of another
/// group and version: `kind("users.extensions.wasmop.dev/v1alpha1",
/// "KeycloakUser", "keycloakusers")`.
pub fn kind(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Installs the CRD a component describes, as an admin would:
/// `keycloak-operator describe --crd <file> | kubectl apply -f -`, and waits
/// until it is established.
pub async fn install_described_crd(client: &Client, component: &std::path::Path) -> Result<String> {
    let output = tokio::process::Command::new(crate::operator::binary())
        .args(["describe", "--crd"])
        .arg(component)
        .output()
        .await
        .context("running keycloak-operator describe --crd")?;
    anyhow::ensure!(
        output.status.success(),
        "describe --crd {} failed: {}",
        component.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let crd: CustomResourceDefinition =
        serde_yaml::from_slice(&output.stdout).with_context(|| format!("the CRD {} describes", component.display()))?;
    let name = crd.metadata.name.clone().unwrap_or_default();
    establish(client, &crd).await?;
    Ok(name)
}

/// Applies a CRD and waits until the API server serves it.
async fn establish(client: &Client, crd: &CustomResourceDefinition) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::apply(TEST_MANAGER).force(), &Patch::Apply(crd))
        .await?;
    eventually(
        &format!("CRD {name} to be established"),
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let crd = api.get(&name).await?;
                let established = crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                Ok(established.then_some(()))
            }
        },
    )
    .await
}

/// The test-only `ChaosProbe`.
pub fn chaos_kind() -> ApiResource {
    ApiResource {
        group: "test.wasmop.dev".into(),
        version: "v1".into(),
        api_version: "test.wasmop.dev/v1".into(),
        kind: "ChaosProbe".into(),
        plural: "chaosprobes".into(),
    }
}

/// Installs the operator's CRDs (from `crds/`) and the test CRDs, once per
/// test process, and waits until the API server serves them.
pub async fn install_crds(client: &Client) -> Result<()> {
    static ONCE: OnceCell<()> = OnceCell::const_new();
    ONCE.get_or_try_init(|| async {
        let mut files: Vec<_> = std::fs::read_dir(repo_root().join("crds"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.push(repo_root().join("tests/components/chaos/crd.yaml"));
        files.push(repo_root().join("tests/components/intruder/crd.yaml"));
        for file in files {
            let crd: CustomResourceDefinition = serde_yaml::from_str(&std::fs::read_to_string(&file)?)
                .with_context(|| format!("parsing {}", file.display()))?;
            establish(client, &crd).await?;
        }
        // Discovery of new CRDs is eventually consistent; give it a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok::<(), anyhow::Error>(())
    })
    .await?;
    Ok(())
}

/// The API of a kind in a namespace; an empty namespace means a
/// cluster-scoped kind.
fn api(client: &Client, kind: &ApiResource, namespace: &str) -> Api<DynamicObject> {
    if namespace.is_empty() {
        Api::all_with(client.clone(), kind)
    } else {
        Api::namespaced_with(client.clone(), namespace, kind)
    }
}

/// Applies an object (server-side apply, as `kubectl apply --server-side`).
/// An empty namespace applies a cluster-scoped object.
pub async fn apply(client: &Client, kind: &ApiResource, namespace: &str, object: Value) -> Result<DynamicObject> {
    let name = object["metadata"]["name"]
        .as_str()
        .context("object without a name")?
        .to_owned();
    let api = api(client, kind, namespace);
    api.patch(&name, &PatchParams::apply(TEST_MANAGER).force(), &Patch::Apply(&object))
        .await
        .with_context(|| format!("applying {} {namespace}/{name}", kind.kind))
}

/// Reads an object as JSON; `None` when it does not exist.
pub async fn get(client: &Client, kind: &ApiResource, namespace: &str, name: &str) -> Result<Option<Value>> {
    let api = api(client, kind, namespace);
    Ok(api
        .get_opt(name)
        .await?
        .map(|o| serde_json::to_value(o).unwrap_or_default()))
}

/// Deletes an object (foreground is not needed: finalizers do the work).
pub async fn delete(client: &Client, kind: &ApiResource, namespace: &str, name: &str) -> Result<()> {
    let api = api(client, kind, namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A condition of an object, by type.
pub fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Waits until a condition holds, written `Type=Status` or
/// `Type=Status/Reason` (as in `Ready=False/Conflict`); returns the object.
pub async fn wait_condition(
    client: &Client,
    kind: &ApiResource,
    namespace: &str,
    name: &str,
    want: &str,
    timeout: Duration,
) -> Result<Value> {
    let (condition_type, rest) = want.split_once('=').unwrap_or((want, "True"));
    let (status, reason) = match rest.split_once('/') {
        Some((status, reason)) => (status, Some(reason)),
        None => (rest, None),
    };
    let what = format!(
        "{} {namespace}/{name} to have {condition_type}={status} {}",
        kind.kind,
        reason.unwrap_or("")
    );
    let last = std::sync::Mutex::new(Value::Null);
    let result = eventually(&what, timeout, Duration::from_millis(250), || {
        let last = &last;
        async move {
            let Some(object) = get(client, kind, namespace, name).await? else {
                return Ok(None);
            };
            let hit = condition(&object, condition_type)
                .is_some_and(|c| c["status"] == status && reason.is_none_or(|r| c["reason"] == r));
            if let Ok(mut last) = last.lock() {
                *last = object["status"].clone();
            }
            Ok(hit.then_some(object))
        }
    })
    .await;
    let last = last.lock().map(|l| l.clone()).unwrap_or_default();
    result.map_err(|e| anyhow!("{e}; last seen status: {last}"))
}

/// Waits, up to 90 s, until a realm resource is `Ready=False` for
/// `reason`; returns the condition's message.
pub async fn wait_realm_refused(client: &Client, namespace: &str, name: &str, reason: &str) -> Result<String> {
    let object = wait_condition(
        client,
        &realm_kind(),
        namespace,
        name,
        &format!("Ready=False/{reason}"),
        Duration::from_secs(90),
    )
    .await?;
    Ok(condition(&object, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned())
}

/// Waits until the resource is Ready for its current generation.
pub async fn wait_ready(client: &Client, kind: &ApiResource, namespace: &str, name: &str) -> Result<Value> {
    let object = wait_condition(client, kind, namespace, name, "Ready=True", Duration::from_secs(120)).await?;
    let generation = object["metadata"]["generation"].as_i64();
    if object["status"]["observedGeneration"].as_i64() != generation {
        // Ready for an older spec: wait for the current one.
        return wait_generation(client, kind, namespace, name).await;
    }
    Ok(object)
}

async fn wait_generation(client: &Client, kind: &ApiResource, namespace: &str, name: &str) -> Result<Value> {
    eventually(
        "the current generation to be Ready",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            let Some(object) = get(client, kind, namespace, name).await? else {
                return Ok(None);
            };
            let current = object["status"]["observedGeneration"] == object["metadata"]["generation"];
            let ready = condition(&object, "Ready").is_some_and(|c| c["status"] == "True");
            Ok((current && ready).then_some(object))
        },
    )
    .await
}

/// A Secret with the bed's Keycloak admin user, as a platform team would
/// create for the operator.
pub async fn admin_secret(client: &Client, namespace: &str, name: &str) -> Result<()> {
    let bed = testbed();
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"username": bed.keycloak_admin_user, "password": bed.keycloak_admin_password},
    }))?;
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::apply(TEST_MANAGER).force(), &Patch::Apply(&secret))
        .await?;
    Ok(())
}

/// A `Keycloak` for the bed's Keycloak (or `url`), with its admin Secret,
/// allowing realms from `allowed` namespaces besides its own.
pub async fn keycloak(client: &Client, namespace: &str, name: &str, url: Option<&str>, allowed: &[&str]) -> Result<()> {
    let secret = format!("{name}-admin");
    admin_secret(client, namespace, &secret).await?;
    let url = url.unwrap_or(&testbed().keycloak_url);
    apply(
        client,
        &keycloak_kind(),
        namespace,
        json!({
            "apiVersion": "keycloak.wasmop.dev/v1alpha1",
            "kind": "Keycloak",
            "metadata": {"name": name},
            "spec": {
                "external": {"url": url, "adminCredentials": {"secretName": secret}},
                "realms": {"allowedNamespaces": {"names": allowed}},
            },
        }),
    )
    .await?;
    Ok(())
}

/// A `KeycloakRealm` manifest.
pub fn realm(
    name: &str,
    realm_name: &str,
    keycloak: &str,
    keycloak_namespace: Option<&str>,
    extra_spec: Value,
) -> Value {
    let mut spec = json!({
        "keycloakRef": {"name": keycloak},
        "realmName": realm_name,
    });
    if let Some(ns) = keycloak_namespace {
        spec["keycloakRef"]["namespace"] = json!(ns);
    }
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra_spec) {
        spec.extend(extra);
    }
    json!({
        "apiVersion": "keycloak.wasmop.dev/v1alpha1",
        "kind": "KeycloakRealm",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// A `KeycloakClient` manifest placing `client_id` in the realm of the
/// `KeycloakRealm` named `realm` (in `realm_namespace`, or the client's own).
pub fn keycloak_client(
    name: &str,
    client_id: &str,
    realm: &str,
    realm_namespace: Option<&str>,
    extra_spec: Value,
) -> Value {
    let mut spec = json!({
        "realmRef": {"name": realm},
        "clientId": client_id,
    });
    if let Some(ns) = realm_namespace {
        spec["realmRef"]["namespace"] = json!(ns);
    }
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra_spec) {
        spec.extend(extra);
    }
    json!({
        "apiVersion": "keycloak.wasmop.dev/v1alpha1",
        "kind": "KeycloakClient",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// Waits until an object no longer exists (its finalizers are done).
pub async fn wait_gone(
    client: &Client,
    kind: &ApiResource,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<()> {
    eventually(
        &format!("{} {namespace}/{name} to be gone", kind.kind),
        timeout,
        Duration::from_millis(250),
        || async { Ok(get(client, kind, namespace, name).await?.is_none().then_some(())) },
    )
    .await
}

/// The data of a Secret, decoded; `None` when it does not exist.
pub async fn secret_data(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<std::collections::BTreeMap<String, String>>> {
    let Some(secret) = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect(),
    ))
}

/// Deletes the declaration when the test ends, also when it fails: a
/// leftover would change which version serves in later tests.
pub struct Declared {
    /// The `ReconcilerComponent`'s name.
    pub name: String,
}

impl Drop for Declared {
    fn drop(&mut self) {
        // A client of its own: the test's runtime is not running any more.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(async {
                    let client = crate::testbed::kube_client().await?;
                    delete(&client, &component_kind(), "", &name).await
                });
            }
        })
        .join();
    }
}

/// The given-state of the realm stories: CRDs installed, a namespace of the
/// test's own, a `Keycloak` named `sso` in it pointing at the bed's
/// Keycloak, and an admin client of that Keycloak.
pub struct KeycloakBed {
    /// A client of the bed's API server.
    pub client: Client,
    /// An admin client of the bed's Keycloak.
    pub admin: crate::testbed::KeycloakAdmin,
    /// The test's namespace (deleted when dropped).
    pub ns: crate::testbed::TestNamespace,
}

impl KeycloakBed {
    /// Applies the story's `KeycloakRealm` `r`, for realm `realm_name` on
    /// `sso`, with `spec` besides those two fields.
    pub async fn apply_realm(&self, realm_name: &str, spec: Value) -> Result<()> {
        apply(
            &self.client,
            &realm_kind(),
            self.ns.name(),
            realm("r", realm_name, "sso", None, spec),
        )
        .await?;
        Ok(())
    }

    /// A new namespace named after `prefix`, with its `Keycloak` `sso`.
    pub async fn given(prefix: &str) -> Result<Self> {
        let client = crate::testbed::kube_client().await?;
        install_crds(&client).await?;
        let ns = crate::testbed::TestNamespace::create(&client, prefix).await?;
        keycloak(&client, ns.name(), "sso", None, &[]).await?;
        Ok(KeycloakBed {
            client,
            admin: crate::testbed::KeycloakAdmin::connect().await?,
            ns,
        })
    }
}
