//! What no kind may do, enforced by the host whatever the component: own the
//! master realm, take a realm another resource owns, be placed in a realm
//! from a namespace the realm does not allow for its kind, or — as a tenant
//! — grant the roles that administer the realm. Each hostile component
//! really attempts it; the host refuses, and Keycloak shows nothing changed.

use std::time::Duration;

use anyhow::{Context, Result};
use keycloak_operator_e2e::admin_realm::AdminRealm;
use keycloak_operator_e2e::operator::{Component, Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{
    apply, chaos_kind, condition, install_crds, intruder_kind, keycloak, realm, realm_kind, wait_condition, wait_ready,
};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestNamespace, TestRealm, kube_client, unique_name};
use kube::Client;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(90);

fn intruder(name: &str, mode: &str, realm_namespace: &str, extra: Value) -> Value {
    let mut spec = json!({
        "realmRef": {"name": "shop", "namespace": realm_namespace},
        "mode": mode,
        "username": format!("intruder-{name}"),
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    json!({"apiVersion": "test.wasmop.dev/v1", "kind": "IntruderProbe", "metadata": {"name": name}, "spec": spec})
}

fn chaos(name: &str, mode: &str, realm_name: &str) -> Value {
    json!({
        "apiVersion": "test.wasmop.dev/v1", "kind": "ChaosProbe", "metadata": {"name": name},
        "spec": {"keycloakRef": {"name": "sso"}, "realmName": realm_name, "mode": mode},
    })
}

/// The message of the Ready condition once it is False with `reason`.
async fn refused(client: &Client, kind: &kube::api::ApiResource, ns: &str, name: &str, reason: &str) -> Result<String> {
    let object = wait_condition(client, kind, ns, name, &format!("Ready=False/{reason}"), TIMEOUT).await?;
    assert_eq!(
        condition(&object, "Stalled").map(|c| c["status"].clone()),
        Some(json!("True")),
        "{name}: refused resources are stalled"
    );
    Ok(condition(&object, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test]
async fn hostile_components_are_refused_by_the_host_and_keycloak_is_left_as_it_was() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let owner = TestNamespace::create(&client, "owner").await?;
    let tenant = TestNamespace::create(&client, "tenant").await?;
    let stranger = TestNamespace::create(&client, "stranger").await?;
    let (o, t, s) = (owner.name(), tenant.name(), stranger.name());
    keycloak(&client, o, "sso", None, &[]).await?;
    let mut options = OperatorOptions::standard(&[o, t, s]);
    options.components.push((Component::Chaos, &["keycloak-admin"]));
    options.components.push((Component::Intruder, &["keycloak-admin"]));
    let _operator = Operator::start(&options).await?;
    let admin = KeycloakAdmin::connect().await?;

    // Given a realm whose owner lets the tenant namespace place IntruderProbes in it
    let realm_name = unique_name("guarded");
    let _cleanup = TestRealm::cleanup(&realm_name);
    apply(
        &client,
        &realm_kind(),
        o,
        realm(
            "shop",
            &realm_name,
            "sso",
            None,
            json!({"displayName": "Guarded", "deletionPolicy": "Delete",
                   "placement": [{"kinds": ["IntruderProbe"], "allowedNamespaces": {"names": [t]}}]}),
        ),
    )
    .await?;
    wait_ready(&client, &realm_kind(), o, "shop").await?;
    let kc = AdminRealm {
        admin: &admin,
        name: realm_name.clone(),
    };
    // And roles and a group that reach realm administration
    let manage_users = kc.management_role("manage-users").await?;
    let view_users = kc.management_role("view-users").await?;
    for role in ["ops-inner", "ops-bundle", "tenant-role"] {
        kc.send(Method::POST, "/roles", json!({"name": role})).await?;
    }
    kc.send(Method::POST, "/roles/ops-inner/composites", json!([manage_users]))
        .await?;
    let inner = kc.get("/roles/ops-inner").await?;
    kc.send(Method::POST, "/roles/ops-bundle/composites", json!([inner]))
        .await?;
    kc.send(Method::POST, "/groups", json!({"name": "admins"})).await?;
    let admins = kc
        .id_of("/groups", "search=admins&exact=true", "name", "admins")
        .await?;
    let management = kc.management().await?;
    kc.send(
        Method::POST,
        &format!("/groups/{admins}/role-mappings/clients/{management}"),
        json!([view_users]),
    )
    .await?;

    // When a tenant's hostile kind tries every way to grant realm administration
    let attempts = [
        ("admin", "grant-admin", json!({})),
        ("disguised", "grant-disguised", json!({})),
        ("bundle", "grant-composite", json!({"role": "ops-bundle"})),
        ("composite", "make-composite", json!({"role": "tenant-role"})),
        ("group", "join-group", json!({"group": "admins"})),
    ];
    for (name, mode, extra) in &attempts {
        apply(&client, &intruder_kind(), t, intruder(name, mode, o, extra.clone())).await?;
    }
    // Then the host refuses each, naming the rule
    for (name, _, _) in &attempts {
        let message = refused(&client, &intruder_kind(), t, name, "RoleNotAllowed").await?;
        assert!(
            message.contains("realm-management") && message.contains(t),
            "{name}: {message}"
        );
    }
    // And Keycloak holds none of the grants
    for (name, _, _) in &attempts {
        let username = format!("intruder-{name}");
        assert!(kc.user(&username).await?.is_some(), "the probe did create its user");
        assert_eq!(kc.administration_of(&username).await?, Vec::<String>::new(), "{name}");
    }
    assert_eq!(kc.get("/roles/tenant-role/composites").await?, json!([]));
    let group_user = kc.user_id("intruder-group").await?.context("the group probe's user")?;
    assert_eq!(kc.get(&format!("/users/{group_user}/groups")).await?, json!([]));

    // When the realm's own namespace does the same
    apply(
        &client,
        &intruder_kind(),
        o,
        intruder("trusted", "grant-admin", o, json!({})),
    )
    .await?;
    // Then it may: the rule is about tenants
    wait_ready(&client, &intruder_kind(), o, "trusted").await?;
    assert!(
        kc.administration_of("intruder-trusted")
            .await?
            .contains(&"realm-admin".to_owned())
    );

    // When a namespace the realm does not name for this kind places one
    apply(&client, &intruder_kind(), s, intruder("outsider", "ok", o, json!({}))).await?;
    // Then it is refused before any request
    let message = refused(&client, &intruder_kind(), s, "outsider", "NamespaceNotAllowed").await?;
    assert!(message.contains("spec.placement"), "{message}");

    // When a realm-scoped hostile kind names the master realm, or the owned realm
    let master_before = admin.get_json("/realms/master").await?.context("master")?["displayName"].clone();
    apply(&client, &chaos_kind(), o, chaos("master", "write", "master")).await?;
    apply(&client, &chaos_kind(), o, chaos("usurper", "write", &realm_name)).await?;
    // Then both are refused before any request, and neither realm changed
    refused(&client, &chaos_kind(), o, "master", "MasterRealmRefused").await?;
    let message = refused(&client, &chaos_kind(), o, "usurper", "Conflict").await?;
    assert!(
        message.contains("KeycloakRealm") && message.contains("shop"),
        "{message}"
    );
    let master_after = admin.get_json("/realms/master").await?.context("master")?["displayName"].clone();
    assert_eq!(master_before, master_after);
    assert_eq!(kc.get("").await?["displayName"], "Guarded");

    // The realm and everything in it goes with its resource
    keycloak_operator_e2e::resources::delete(&client, &realm_kind(), o, "shop").await?;
    keycloak_operator_e2e::resources::wait_gone(&client, &realm_kind(), o, "shop", TIMEOUT).await?;
    let gone = admin
        .request(Method::GET, &format!("/realms/{realm_name}"), None)
        .await?
        .status();
    assert_eq!(gone, StatusCode::NOT_FOUND);
    Ok(())
}
