//! Stories of a managed `Keycloak`'s database: a missing Secret, a
//! CloudNativePG cluster, and an unreachable database told apart from a bad
//! image. (tests/managed_keycloak.rs holds the boot and the children.)

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use keycloak_operator_e2e::managed::{apply_secret, kubelet_reports_container, managed_keycloak, managed_options};
use keycloak_operator_e2e::operator::Operator;
use keycloak_operator_e2e::resources::{apply, condition, install_crds, keycloak_kind, wait_condition};
use keycloak_operator_e2e::testbed::{TestNamespace, eventually, kube_client, repo_root};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

#[tokio::test]
async fn a_missing_database_secret_is_reported_and_nothing_starts_until_it_exists() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "managed-nodb").await?;
    let ns = ns.name();
    let _operator = Operator::start(&managed_options(ns, &[])).await?;
    let spec = json!({"database": {"postgres": {"host": "db.example", "database": "keycloak", "credentialsSecret": "not-yet"}}});

    // When the database Secret does not exist
    apply(&client, &keycloak_kind(), ns, managed_keycloak("sso", spec)).await?;

    // Then the condition says so, and no Deployment is created
    let object = wait_condition(
        &client,
        &keycloak_kind(),
        ns,
        "sso",
        "Ready=False/DatabaseSecretMissing",
        Duration::from_secs(90),
    )
    .await?;
    assert!(
        condition(&object, "Ready")
            .and_then(|c| c["message"].as_str())
            .unwrap_or_default()
            .contains("not-yet")
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    assert!(deployments.get_opt("sso").await?.is_none());

    // When the Secret appears, the Keycloak is deployed
    apply_secret(
        &client,
        ns,
        "not-yet",
        &[("username", "keycloak"), ("password", "secret")],
    )
    .await?;
    eventually(
        "the Deployment",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async { Ok(deployments.get_opt("sso").await?) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_cloudnativepg_cluster_is_wired_through_its_secret_and_service() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    // Given CloudNativePG's real Cluster CRD (no CNPG controller runs)
    keycloak_operator_e2e::managed::install_cnpg_crd(&client).await?;
    let ns = TestNamespace::create(&client, "managed-cnpg").await?;
    let ns = ns.name();
    // And a Cluster with the Secret and Service CloudNativePG makes for it
    let cluster_kind = kube::api::ApiResource {
        group: "postgresql.cnpg.io".into(),
        version: "v1".into(),
        api_version: "postgresql.cnpg.io/v1".into(),
        kind: "Cluster".into(),
        plural: "clusters".into(),
    };
    eventually(
        "the Cluster CRD to be served",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let created = apply(
                &client,
                &cluster_kind,
                ns,
                json!({
                    "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg"},
                    "spec": {"instances": 1, "storage": {"size": "1Gi"}},
                }),
            )
            .await;
            Ok(created.ok().map(|_| ()))
        },
    )
    .await?;
    apply_secret(
        &client,
        ns,
        "pg-app",
        &[("username", "app"), ("password", "secret"), ("dbname", "app")],
    )
    .await?;
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "pg-rw", "namespace": ns},
        "spec": {"ports": [{"port": 5432}], "selector": {"cnpg.io/cluster": "pg"}},
    }))?;
    Api::<Service>::namespaced(client.clone(), ns)
        .patch(
            "pg-rw",
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&service),
        )
        .await?;
    let _operator = Operator::start(&managed_options(ns, &[])).await?;

    // When a managed Keycloak names the cluster
    apply(
        &client,
        &keycloak_kind(),
        ns,
        managed_keycloak("sso", json!({"database": {"cloudNativePG": {"clusterName": "pg"}}})),
    )
    .await?;

    // Then its pods take the database from the cluster's Secret and Service
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let deployment = eventually(
        "the Deployment",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async { Ok(deployments.get_opt("sso").await?) },
    )
    .await?;
    let env = serde_json::to_value(deployment)?["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    let var = |name: &str| {
        env.as_array()
            .and_then(|e| e.iter().find(|v| v["name"] == name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(var("KC_DB")["value"], "postgres");
    assert_eq!(var("KC_DB_URL_HOST")["value"], format!("pg-rw.{ns}.svc"));
    assert_eq!(var("KC_DB_USERNAME")["valueFrom"]["secretKeyRef"]["name"], "pg-app");
    assert_eq!(var("KC_DB_PASSWORD")["valueFrom"]["secretKeyRef"]["key"], "password");
    assert_eq!(var("KC_DB_URL_DATABASE")["valueFrom"]["secretKeyRef"]["key"], "dbname");
    Ok(())
}

#[tokio::test]
async fn a_bad_image_and_an_unreachable_database_are_told_apart() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "managed-stuck").await?;
    let ns = ns.name();
    let _operator = Operator::start(&managed_options(ns, &[])).await?;
    apply(
        &client,
        &keycloak_kind(),
        ns,
        managed_keycloak("sso", json!({"database": {"dev": true}})),
    )
    .await?;
    let object = wait_condition(
        &client,
        &keycloak_kind(),
        ns,
        "sso",
        "Ready=False/RolloutInProgress",
        Duration::from_secs(90),
    )
    .await?;
    // The dev database is flagged as not for production
    assert_eq!(
        condition(&object, "ProductionReady").map(|c| c["reason"].clone()),
        Some(json!("DevDatabase"))
    );

    // When the kubelet cannot pull the image
    kubelet_reports_container(
        &client,
        ns,
        "sso",
        json!({
            "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}},
        }),
    )
    .await?;
    // Then the Keycloak is stalled, saying so
    let object = wait_condition(
        &client,
        &keycloak_kind(),
        ns,
        "sso",
        "Ready=False/ImagePullFailed",
        Duration::from_secs(90),
    )
    .await?;
    assert_eq!(
        condition(&object, "Stalled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );

    // When Keycloak keeps exiting with what it prints when its database does not answer
    let log = std::fs::read_to_string(repo_root().join("tests/fixtures/keycloak-database-unreachable.log"))?;
    kubelet_reports_container(
        &client,
        ns,
        "sso",
        json!({
            "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": log}},
        }),
    )
    .await?;
    // Then the reason names the database
    let object = wait_condition(
        &client,
        &keycloak_kind(),
        ns,
        "sso",
        "Ready=False/DatabaseUnreachable",
        Duration::from_secs(90),
    )
    .await?;
    let message = condition(&object, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default();
    assert!(
        message.contains("Failed to obtain JDBC connection") || message.contains("refused"),
        "{message}"
    );
    Ok(())
}
