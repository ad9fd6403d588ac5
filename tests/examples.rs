//! The manifests in examples/ are what users copy: each is applied to the
//! real API server and reconciled by the operator here. (The quickstart is
//! applied by `make demo` and by the chart's story.)

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use keycloak_operator_e2e::managed::{apply_secret, install_cnpg_crd, managed_options};
use keycloak_operator_e2e::operator::Operator;
use keycloak_operator_e2e::resources::{apply, install_crds};
use keycloak_operator_e2e::testbed::{TestNamespace, eventually, kube_client, repo_root};
use kube::Client;
use kube::api::{Api, ApiResource};
use serde_json::Value;

/// The objects of an example, moved into `namespace` (its Namespace left out).
fn example(file: &str, namespace: &str) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(repo_root().join("examples").join(file))?;
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let mut object: Value = serde::Deserialize::deserialize(doc)?;
        if object.is_null() || object["kind"] == "Namespace" {
            continue;
        }
        object["metadata"]["namespace"] = Value::String(namespace.to_owned());
        objects.push(object);
    }
    Ok(objects)
}

async fn apply_all(client: &Client, namespace: &str, objects: Vec<Value>) -> Result<()> {
    for object in objects {
        let api_version = object["apiVersion"].as_str().context("no apiVersion")?.to_owned();
        let kind = object["kind"].as_str().context("no kind")?.to_owned();
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        let resource = ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: api_version.clone(),
            plural: format!("{}s", kind.to_ascii_lowercase()),
            kind,
        };
        // A CRD just installed may take a moment to be served.
        eventually(
            "the example to be accepted",
            Duration::from_secs(30),
            Duration::from_millis(500),
            || {
                let (client, resource, object) = (client.clone(), resource.clone(), object.clone());
                async move { Ok(apply(&client, &resource, namespace, object).await.ok().map(|_| ())) }
            },
        )
        .await?;
    }
    Ok(())
}

async fn wait_deployment(client: &Client, namespace: &str) -> Result<Value> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let deployment = eventually(
        "the Keycloak's Deployment",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async { Ok(deployments.get_opt("sso").await?) },
    )
    .await?;
    Ok(serde_json::to_value(deployment)?)
}

fn env(deployment: &Value, name: &str) -> Value {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .and_then(|e| e.iter().find(|v| v["name"] == name))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn the_managed_keycloak_examples_are_accepted_and_reconciled() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    install_cnpg_crd(&client).await?;

    // CloudNativePG: the cluster, and the Secret and Service its operator would make
    let cnpg = TestNamespace::create(&client, "example-cnpg").await?;
    apply_secret(
        &client,
        cnpg.name(),
        "keycloak-db-app",
        &[("username", "app"), ("password", "pw"), ("dbname", "app")],
    )
    .await?;
    let external = TestNamespace::create(&client, "example-pg").await?;
    apply_secret(
        &client,
        external.name(),
        "keycloak-db",
        &[("username", "keycloak"), ("password", "pw")],
    )
    .await?;
    let _operator = Operator::start(&managed_options(cnpg.name(), &[])).await?;
    let _other = Operator::start(&managed_options(external.name(), &[])).await?;

    apply_all(
        &client,
        cnpg.name(),
        example("managed-keycloak/cloudnativepg.yaml", cnpg.name())?,
    )
    .await?;
    let deployment = wait_deployment(&client, cnpg.name()).await?;
    assert_eq!(
        env(&deployment, "KC_DB_URL_HOST")["value"],
        format!("keycloak-db-rw.{}.svc", cnpg.name())
    );
    assert_eq!(
        env(&deployment, "KC_DB_USERNAME")["valueFrom"]["secretKeyRef"]["name"],
        "keycloak-db-app"
    );
    assert_eq!(deployment["spec"]["replicas"], 2);

    apply_all(
        &client,
        external.name(),
        example("managed-keycloak/external-postgres.yaml", external.name())?,
    )
    .await?;
    let deployment = wait_deployment(&client, external.name()).await?;
    assert_eq!(env(&deployment, "KC_DB_URL_HOST")["value"], "pg.example.internal");
    assert_eq!(
        env(&deployment, "KC_DB_USERNAME")["valueFrom"]["secretKeyRef"]["name"],
        "keycloak-db"
    );
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), external.name());
    eventually(
        "the Ingress",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async { Ok(ingresses.get_opt("sso").await?) },
    )
    .await?;
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), external.name());
    eventually(
        "the PodDisruptionBudget",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async { Ok(budgets.get_opt("sso").await?) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_component_examples_pass_the_api_servers_validation() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    for file in ["components/realm.yaml", "components/realm-shadow.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("examples").join(file))?;
        let object: Value = serde_yaml::from_str(&text)?;
        let api: Api<kube::api::DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource::erase::<keycloak_operator_api::ReconcilerComponent>(&()),
        );
        let object: kube::api::DynamicObject = serde_json::from_value(object)?;
        api.create(
            &kube::api::PostParams {
                dry_run: true,
                ..Default::default()
            },
            &object,
        )
        .await
        .with_context(|| format!("{file} refused"))?;
    }
    Ok(())
}
