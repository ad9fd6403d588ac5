//! Stories of a managed `Keycloak`: the operator runs Keycloak itself.
//!
//! There is no kubelet in the test bed; see tests/support/managed.rs for how
//! the generated configuration is proven by booting the real Keycloak with it.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use keycloak_operator_e2e::managed::{
    BootedKeycloak, TestDatabase, kubelet_marks_pods_ready, kubelet_reports_container, reserve_ports,
};
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{
    apply, condition, delete, get, install_crds, keycloak_kind, realm, realm_kind, wait_condition, wait_ready,
};
use keycloak_operator_e2e::testbed::{TestNamespace, eventually, http_client, kube_client, repo_root, unique_name};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

fn managed(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "keycloak.wasmop.dev/v1alpha1",
        "kind": "Keycloak",
        "metadata": {"name": name},
        "spec": {"managed": spec},
    })
}

async fn secret(client: &kube::Client, ns: &str, name: &str, data: &[(&str, &str)]) -> Result<()> {
    let string_data: serde_json::Map<String, Value> = data.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "stringData": string_data,
    }))?;
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("e2e-test").force(), &Patch::Apply(&secret))
        .await?;
    Ok(())
}

fn secret_value(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default()
}

fn options(ns: &str, overrides: &[(String, String)]) -> OperatorOptions {
    let mut options = OperatorOptions::standard(&[ns]);
    if !overrides.is_empty() {
        options.extra.push_str("keycloakAddressOverrides:\n");
        for (key, url) in overrides {
            options.extra.push_str(&format!("  {key}: {url}\n"));
        }
    }
    options
}

#[tokio::test]
async fn a_managed_keycloak_boots_from_its_deployment_and_the_operator_moves_to_its_own_credentials() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "managed").await?;
    let ns = ns.name();
    // Given a PostgreSQL database and its credentials
    let database = TestDatabase::create()?;
    secret(
        &client,
        ns,
        "keycloak-db",
        &[("username", &database.user), ("password", &database.password)],
    )
    .await?;
    // And an operator that reaches this Keycloak where the test will boot it
    let ports = reserve_ports()?;
    let overrides = [(format!("{ns}/sso"), format!("http://127.0.0.1:{}", ports.0))];
    let operator = Operator::start(&options(ns, &overrides)).await?;

    // When a managed Keycloak is applied
    let spec = json!({
        "database": {"postgres": {
            "host": database.host, "port": database.port, "database": database.name,
            "credentialsSecret": "keycloak-db", "sslMode": "disable",
        }},
        "options": {"log-level": "INFO"},
    });
    apply(&client, &keycloak_kind(), ns, managed("sso", spec)).await?;

    // Then, while no pod is available, it reports the rollout
    let object = wait_condition(
        &client,
        &keycloak_kind(),
        ns,
        "sso",
        "Ready=False/RolloutInProgress",
        Duration::from_secs(90),
    )
    .await?;
    assert_eq!(
        condition(&object, "Reconciling").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    assert_eq!(
        condition(&object, "ProductionReady").map(|c| c["status"].clone()),
        Some(json!("True"))
    );

    // When the container the operator declared runs, exactly as declared
    let workdir = operator.dir.join("booted");
    std::fs::create_dir_all(&workdir)?;
    let mut booted = BootedKeycloak::boot(&client, ns, "sso", ports, &workdir).await?;
    booted.wait_ready(Duration::from_secs(300)).await?;
    // And the kubelet would report its pod Ready
    kubelet_marks_pods_ready(&client, ns, "sso").await?;

    // Then the Keycloak is Ready, reports its version, and the operator has its own client
    let object = wait_condition(
        &client,
        &keycloak_kind(),
        ns,
        "sso",
        "Ready=True/Running",
        Duration::from_secs(180),
    )
    .await?;
    assert_eq!(object["status"]["version"], "26.7.3");
    assert_eq!(object["status"]["availableReplicas"], 1);
    assert_eq!(object["status"]["operatorCredentials"], "ServiceAccount");
    assert_eq!(object["status"]["url"], format!("http://127.0.0.1:{}", ports.0));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let operator_client = secrets
        .get("sso-operator-client")
        .await
        .context("the operator's client Secret")?;
    let client_id = secret_value(&operator_client, "client-id");
    let client_secret = secret_value(&operator_client, "client-secret");
    assert_eq!(client_id, "keycloak-operator");

    // And that client works, with exactly the operator's roles
    let token: Value = http_client()
        .post(format!("{}/realms/master/protocol/openid-connect/token", booted.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
        ])
        .send()
        .await?
        .json()
        .await?;
    let access = token["access_token"].as_str().context("a client-credentials token")?;
    let payload = access.split('.').nth(1).context("a JWT")?;
    use base64::Engine;
    let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?;
    let roles: Vec<&str> = claims["realm_access"]["roles"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(roles.contains(&"create-realm"), "roles: {roles:?}");
    assert!(
        !roles.contains(&"admin"),
        "the operator must not be a full admin: {roles:?}"
    );

    // And a realm placed on it is created with the operator's own credentials
    let name = unique_name("on-managed");
    apply(
        &client,
        &realm_kind(),
        ns,
        realm("team", &name, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;
    wait_ready(&client, &realm_kind(), ns, "team").await?;
    let bootstrap = secrets.get("sso-bootstrap-admin").await?;
    let admin: Value = http_client()
        .post(format!("{}/realms/master/protocol/openid-connect/token", booted.url))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", &secret_value(&bootstrap, "username")),
            ("password", &secret_value(&bootstrap, "password")),
        ])
        .send()
        .await?
        .json()
        .await?;
    let held: Value = http_client()
        .get(format!("{}/admin/realms/{name}", booted.url))
        .bearer_auth(admin["access_token"].as_str().context("an admin token")?)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(held["realm"], name.as_str(), "the realm exists in the managed Keycloak");
    let log = std::fs::read_to_string(operator.log_path())?;
    assert!(
        !log.contains(&client_secret),
        "the operator's client secret must not reach its log"
    );
    assert!(
        !log.contains(&secret_value(&bootstrap, "password")),
        "the bootstrap password must not reach the log"
    );

    delete(&client, &realm_kind(), ns, "team").await?;
    eventually(
        "the realm resource to be gone",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async { Ok(get(&client, &realm_kind(), ns, "team").await?.is_none().then_some(())) },
    )
    .await?;
    drop(booted);
    Ok(())
}

#[tokio::test]
async fn children_are_owned_a_spec_change_updates_the_deployment_and_the_admin_secret_stays() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "managed-children").await?;
    let ns = ns.name();
    secret(&client, ns, "db", &[("username", "keycloak"), ("password", "secret")]).await?;
    let _operator = Operator::start(&options(ns, &[])).await?;
    let spec = |replicas: i32, version: &str, log_level: &str| {
        json!({
            "version": version,
            "replicas": replicas,
            "database": {"postgres": {"host": "db.example", "database": "keycloak", "credentialsSecret": "db"}},
            "hostname": {"hostname": "https://sso.example.com", "proxyHeaders": "xforwarded"},
            "ingress": {"className": "nginx", "tlsSecretName": "sso-tls"},
            "networkPolicy": {"allowedNamespaces": ["ingress-nginx"]},
            "options": {"log-level": log_level},
        })
    };

    // Given a managed Keycloak with two replicas, an Ingress and a NetworkPolicy
    apply(&client, &keycloak_kind(), ns, managed("ha", spec(2, "26.7.3", "INFO"))).await?;
    let keycloak = wait_condition(
        &client,
        &keycloak_kind(),
        ns,
        "ha",
        "Ready=False/RolloutInProgress",
        Duration::from_secs(90),
    )
    .await?;
    let uid = keycloak["metadata"]["uid"].as_str().unwrap_or_default().to_owned();

    // Then every child exists and is owned by it
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let deployment = deployments.get("ha").await?;
    let owned = |refs: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
        refs.unwrap_or_default()
            .iter()
            .any(|r| r.uid == uid && r.controller == Some(true))
    };
    assert!(owned(deployment.metadata.owner_references.clone()));
    for name in ["ha", "ha-management", "ha-discovery"] {
        assert!(
            owned(services.get(name).await?.metadata.owner_references),
            "Service {name}"
        );
    }
    assert_eq!(
        services
            .get("ha-discovery")
            .await?
            .spec
            .and_then(|s| s.cluster_ip)
            .as_deref(),
        Some("None")
    );
    let bootstrap = secrets.get("ha-bootstrap-admin").await?;
    assert!(owned(bootstrap.metadata.owner_references.clone()));
    assert!(owned(
        Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
            .get("ha")
            .await?
            .metadata
            .owner_references
    ));
    assert!(owned(
        Api::<Ingress>::namespaced(client.clone(), ns)
            .get("ha")
            .await?
            .metadata
            .owner_references
    ));
    assert!(owned(
        Api::<NetworkPolicy>::namespaced(client.clone(), ns)
            .get("ha")
            .await?
            .metadata
            .owner_references
    ));
    // And the pods run as Keycloak should: non-root, probes on the management port
    let pod = serde_json::to_value(&deployment)?;
    let container = &pod["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "quay.io/keycloak/keycloak:26.7.3");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/health/ready");
    assert_eq!(container["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["spec"]["replicas"], 2);
    let password = secret_value(&bootstrap, "password");
    assert!(password.len() >= 24, "a generated bootstrap password");

    // When the spec changes (log level)
    apply(&client, &keycloak_kind(), ns, managed("ha", spec(2, "26.7.3", "DEBUG"))).await?;
    // Then the Deployment follows, rolling
    let updated = eventually(
        "the Deployment to follow the spec",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async {
            let d = serde_json::to_value(deployments.get("ha").await?)?;
            let env = d["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
            Ok(env.contains("\"DEBUG\"").then_some(d))
        },
    )
    .await?;
    assert_eq!(updated["spec"]["strategy"]["type"], "RollingUpdate");
    // And the bootstrap admin Secret is untouched
    assert_eq!(
        secret_value(&secrets.get("ha-bootstrap-admin").await?, "password"),
        password
    );

    // When the version changes
    apply(&client, &keycloak_kind(), ns, managed("ha", spec(2, "26.6.1", "DEBUG"))).await?;
    // Then the Deployment is recreated rather than rolled, and the status says why
    let object = eventually(
        "the upgrade to be reported",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async {
            let o = get(&client, &keycloak_kind(), ns, "ha").await?.unwrap_or_default();
            let message = condition(&o, "Ready")
                .and_then(|c| c["message"].as_str())
                .unwrap_or_default()
                .to_owned();
            Ok(message
                .contains("upgrading Keycloak from 26.7.3 to 26.6.1")
                .then_some(o))
        },
    )
    .await?;
    assert!(
        condition(&object, "Ready")
            .and_then(|c| c["message"].as_str())
            .unwrap_or_default()
            .contains("schema")
    );
    let upgraded = serde_json::to_value(deployments.get("ha").await?)?;
    assert_eq!(upgraded["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(
        upgraded["spec"]["template"]["spec"]["containers"][0]["image"],
        "quay.io/keycloak/keycloak:26.6.1"
    );
    assert_eq!(
        secret_value(&secrets.get("ha-bootstrap-admin").await?, "password"),
        password
    );

    // When the Keycloak resource is deleted, the garbage collector removes its children
    delete(&client, &keycloak_kind(), ns, "ha").await?;
    eventually(
        "the children to be collected",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            let gone = deployments.get_opt("ha").await?.is_none()
                && services.get_opt("ha").await?.is_none()
                && secrets.get_opt("ha-bootstrap-admin").await?.is_none();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_missing_database_secret_is_reported_and_nothing_starts_until_it_exists() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "managed-nodb").await?;
    let ns = ns.name();
    let _operator = Operator::start(&options(ns, &[])).await?;
    let spec = json!({"database": {"postgres": {"host": "db.example", "database": "keycloak", "credentialsSecret": "not-yet"}}});

    // When the database Secret does not exist
    apply(&client, &keycloak_kind(), ns, managed("sso", spec)).await?;

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
    secret(
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
    let crd_file = std::path::PathBuf::from(keycloak_operator_e2e::managed::bed_var("TESTBED_CNPG_CRDS")?)
        .join("postgresql.cnpg.io_clusters.yaml");
    let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
        serde_yaml::from_str(&std::fs::read_to_string(&crd_file)?)?;
    Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(
        client.clone(),
    )
    .patch(
        "clusters.postgresql.cnpg.io",
        &PatchParams::apply("e2e-test").force(),
        &Patch::Apply(&crd),
    )
    .await?;
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
    secret(
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
    let _operator = Operator::start(&options(ns, &[])).await?;

    // When a managed Keycloak names the cluster
    apply(
        &client,
        &keycloak_kind(),
        ns,
        managed("sso", json!({"database": {"cloudNativePG": {"clusterName": "pg"}}})),
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
    let _operator = Operator::start(&options(ns, &[])).await?;
    apply(
        &client,
        &keycloak_kind(),
        ns,
        managed("sso", json!({"database": {"dev": true}})),
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
