//! Stories of which namespaces may place realms on a `Keycloak`, and how
//! many: refused resources cost no Keycloak call, and the oldest are served.

use std::time::Duration;

use anyhow::Result;
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{
    apply, condition, delete, get, install_crds, keycloak, keycloak_kind, realm, realm_kind, wait_condition, wait_ready,
};
use keycloak_operator_e2e::testbed::{
    KeycloakAdmin, TestNamespace, TestRealm, eventually, kube_client, testbed, unique_name,
};
use serde_json::{Value, json};

async fn realm_in_keycloak(admin: &KeycloakAdmin, name: &str) -> Result<Option<Value>> {
    admin.get_json(&format!("/realms/{name}")).await
}

#[tokio::test]
async fn a_namespace_the_keycloak_does_not_allow_is_refused_without_a_keycloak_call() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let platform = TestNamespace::create(&client, "platform").await?;
    let team = TestNamespace::create(&client, "team").await?;
    keycloak(&client, platform.name(), "shared", None, &[]).await?;
    let admin = KeycloakAdmin::connect().await?;
    let operator = Operator::start(&OperatorOptions::standard(&[platform.name(), team.name()])).await?;
    wait_ready(&client, &keycloak_kind(), platform.name(), "shared").await?;
    let name = unique_name("sneaky");

    // When a team's realm references the platform's Keycloak, which does not allow the team
    apply(
        &client,
        &realm_kind(),
        team.name(),
        realm("sneaky", &name, "shared", Some(platform.name()), json!({})),
    )
    .await?;

    // Then it is refused with a clear condition
    let object = wait_condition(
        &client,
        &realm_kind(),
        team.name(),
        "sneaky",
        "Ready=False/NamespaceNotAllowed",
        Duration::from_secs(90),
    )
    .await?;
    assert!(
        condition(&object, "Ready")
            .and_then(|c| c["message"].as_str())
            .unwrap_or_default()
            .contains(platform.name())
    );
    assert_eq!(
        condition(&object, "Stalled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    // And no request about realms reached Keycloak
    let realm_requests = operator
        .metric(
            "keycloak_operator_keycloak_requests_total",
            &[("route", "/realms/{realm}")],
        )
        .await?;
    assert_eq!(realm_requests, 0.0);
    assert!(realm_in_keycloak(&admin, &name).await?.is_none());

    // When the platform team allows the team's namespace by label
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    namespaces
        .patch(
            team.name(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"labels": {"sso.example.com/tenant": "yes"}}})),
        )
        .await?;
    apply(
        &client,
        &keycloak_kind(),
        platform.name(),
        json!({
            "apiVersion": "keycloak.wasmop.dev/v1alpha1",
            "kind": "Keycloak",
            "metadata": {"name": "shared"},
            "spec": {
                "external": {"url": testbed().keycloak_url, "adminCredentials": {"secretName": "shared-admin"}},
                "realms": {"allowedNamespaces": {"selector": {"matchLabels": {"sso.example.com/tenant": "yes"}}}},
            },
        }),
    )
    .await?;

    // Then the realm is created without touching the realm resource
    wait_ready(&client, &realm_kind(), team.name(), "sneaky").await?;
    assert!(realm_in_keycloak(&admin, &name).await?.is_some());
    apply(
        &client,
        &realm_kind(),
        team.name(),
        realm(
            "sneaky",
            &name,
            "shared",
            Some(platform.name()),
            json!({"deletionPolicy": "Delete"}),
        ),
    )
    .await?;
    delete(&client, &realm_kind(), team.name(), "sneaky").await?;
    eventually(
        "the realm resource to be gone",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async {
            Ok(get(&client, &realm_kind(), team.name(), "sneaky")
                .await?
                .is_none()
                .then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_namespace_over_its_realm_quota_is_refused_and_the_oldest_realm_is_served() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "realm-quota").await?;
    let ns = ns.name();
    keycloak(&client, ns, "sso", None, &[]).await?;
    // Given a Keycloak that allows one realm per namespace
    apply(
        &client,
        &keycloak_kind(),
        ns,
        json!({
            "apiVersion": "keycloak.wasmop.dev/v1alpha1",
            "kind": "Keycloak",
            "metadata": {"name": "sso"},
            "spec": {
                "external": {"url": testbed().keycloak_url, "adminCredentials": {"secretName": "sso-admin"}},
                "realms": {"maxPerNamespace": 1},
            },
        }),
    )
    .await?;
    let admin = KeycloakAdmin::connect().await?;
    let _operator = Operator::start(&OperatorOptions::standard(&[ns])).await?;
    let (first, second) = (unique_name("quota-a"), unique_name("quota-b"));
    let _cleanup = [TestRealm::cleanup(&first), TestRealm::cleanup(&second)];
    apply(
        &client,
        &realm_kind(),
        ns,
        realm("first", &first, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;
    wait_ready(&client, &realm_kind(), ns, "first").await?;

    // When a second realm is applied in the same namespace
    apply(
        &client,
        &realm_kind(),
        ns,
        realm("second", &second, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;

    // Then it is refused, and never created in Keycloak
    wait_condition(
        &client,
        &realm_kind(),
        ns,
        "second",
        "Ready=False/QuotaExceeded",
        Duration::from_secs(90),
    )
    .await?;
    assert!(realm_in_keycloak(&admin, &second).await?.is_none());

    // When the first is deleted, the second takes its place
    delete(&client, &realm_kind(), ns, "first").await?;
    wait_ready(&client, &realm_kind(), ns, "second").await?;
    assert!(realm_in_keycloak(&admin, &second).await?.is_some());
    delete(&client, &realm_kind(), ns, "second").await?;
    eventually(
        "the realm resource to be gone",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async { Ok(get(&client, &realm_kind(), ns, "second").await?.is_none().then_some(())) },
    )
    .await?;
    Ok(())
}
