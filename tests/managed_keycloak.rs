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
    BootedKeycloak, TestDatabase, apply_secret, kubelet_marks_pods_ready, managed_keycloak, managed_options,
    reserve_ports, secret_value,
};
use keycloak_operator_e2e::operator::Operator;
use keycloak_operator_e2e::resources::{
    apply, condition, delete, get, install_crds, keycloak_kind, realm, realm_kind, wait_condition, wait_ready,
};
use keycloak_operator_e2e::testbed::{TestNamespace, eventually, http_client, kube_client, unique_name};
use kube::Api;
use serde_json::{Value, json};

#[tokio::test]
async fn a_managed_keycloak_boots_from_its_deployment_and_the_operator_moves_to_its_own_credentials() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "managed").await?;
    let ns = ns.name();
    // Given a PostgreSQL database and its credentials
    let database = TestDatabase::create()?;
    apply_secret(
        &client,
        ns,
        "keycloak-db",
        &[("username", &database.user), ("password", &database.password)],
    )
    .await?;
    // And an operator that reaches this Keycloak where the test will boot it
    let ports = reserve_ports()?;
    let overrides = [(format!("{ns}/sso"), format!("http://127.0.0.1:{}", ports.0))];
    let operator = Operator::start(&managed_options(ns, &overrides)).await?;

    // When a managed Keycloak is applied
    let spec = json!({
        "database": {"postgres": {
            "host": database.host, "port": database.port, "database": database.name,
            "credentialsSecret": "keycloak-db", "sslMode": "disable",
        }},
        "options": {"log-level": "INFO"},
    });
    apply(&client, &keycloak_kind(), ns, managed_keycloak("sso", spec)).await?;

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
    apply_secret(&client, ns, "db", &[("username", "keycloak"), ("password", "secret")]).await?;
    let _operator = Operator::start(&managed_options(ns, &[])).await?;
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
    apply(
        &client,
        &keycloak_kind(),
        ns,
        managed_keycloak("ha", spec(2, "26.7.3", "INFO")),
    )
    .await?;
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
    apply(
        &client,
        &keycloak_kind(),
        ns,
        managed_keycloak("ha", spec(2, "26.7.3", "DEBUG")),
    )
    .await?;
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
    apply(
        &client,
        &keycloak_kind(),
        ns,
        managed_keycloak("ha", spec(2, "26.6.1", "DEBUG")),
    )
    .await?;
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
