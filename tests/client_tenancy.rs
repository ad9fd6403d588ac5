//! Stories of clients among tenants: which namespaces a realm lets in, its
//! quota, and deletions when the realm or the Keycloak is gone — none of which
//! may leave a finalizer blocked.

mod client_common;

use std::time::Duration;

use anyhow::{Context, Result};
use client_common::{REALM, RealmBed, client_options};
use keycloak_operator_e2e::operator::Operator;
use keycloak_operator_e2e::proxy::CountingProxy;
use keycloak_operator_e2e::resources::{
    apply, client_kind, condition, delete, get, install_crds, keycloak, keycloak_client, keycloak_kind, realm,
    realm_kind, secret_data, wait_condition, wait_gone, wait_ready,
};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestNamespace, kube_client, testbed, unique_name};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn a_namespace_the_realm_does_not_allow_is_refused_without_a_keycloak_call() -> Result<()> {
    let bed = RealmBed::create("client-platform", json!({})).await?;
    let team = TestNamespace::create(&bed.client, "client-team").await?;
    let operator = Operator::start(&client_options(&[bed.ns(), team.name()], "5m")).await?;
    bed.realm_ready().await?;
    let client_id = unique_name("sneaky");

    // When a team's client references the platform's realm, which does not allow the team
    apply(
        &bed.client,
        &client_kind(),
        team.name(),
        keycloak_client("sneaky", &client_id, REALM, Some(bed.ns()), json!({})),
    )
    .await?;

    // Then it is refused with a clear condition
    let message = refused_for(&bed, team.name(), "sneaky", "NamespaceNotAllowed").await?;
    assert!(message.contains("spec.clients.allowedNamespaces"), "{message}");
    // And nothing about clients reached Keycloak
    let client_requests = operator
        .metric(
            "keycloak_operator_keycloak_requests_total",
            &[("route", "/realms/{realm}/clients")],
        )
        .await?;
    assert_eq!(client_requests, 0.0);
    assert!(bed.client_in_keycloak(&client_id).await?.is_none());
    assert!(
        secret_data(&bed.client, team.name(), "sneaky-credentials")
            .await?
            .is_none()
    );

    // When the realm's owner allows the team's namespace
    allow_clients_from(&bed, &[team.name()]).await?;

    // Then the client is created without touching the client resource
    wait_ready(&bed.client, &client_kind(), team.name(), "sneaky").await?;
    assert!(bed.client_in_keycloak(&client_id).await?.is_some());
    delete(&bed.client, &client_kind(), team.name(), "sneaky").await?;
    wait_gone(
        &bed.client,
        &client_kind(),
        team.name(),
        "sneaky",
        Duration::from_secs(60),
    )
    .await?;
    bed.teardown(&[]).await
}

#[tokio::test]
async fn over_the_realm_quota_a_client_is_refused_and_the_oldest_are_served() -> Result<()> {
    let bed = RealmBed::create("client-quota", json!({"clients": {"maxClients": 1}})).await?;
    let ns = bed.ns();
    let _operator = Operator::start(&client_options(&[ns], "5m")).await?;
    let (first, second) = (unique_name("first"), unique_name("second"));
    apply(
        &bed.client,
        &client_kind(),
        ns,
        keycloak_client("first", &first, REALM, None, json!({})),
    )
    .await?;
    wait_ready(&bed.client, &client_kind(), ns, "first").await?;

    // When a second client is applied to a realm that allows one
    apply(
        &bed.client,
        &client_kind(),
        ns,
        keycloak_client("second", &second, REALM, None, json!({})),
    )
    .await?;

    // Then it is refused, and never created in Keycloak
    let object = wait_condition(
        &bed.client,
        &client_kind(),
        ns,
        "second",
        "Ready=False/QuotaExceeded",
        Duration::from_secs(30),
    )
    .await?;
    assert_eq!(
        condition(&object, "Stalled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    assert!(bed.client_in_keycloak(&second).await?.is_none());

    // When the first is deleted, the second takes its place
    delete(&bed.client, &client_kind(), ns, "first").await?;
    wait_gone(&bed.client, &client_kind(), ns, "first", Duration::from_secs(60)).await?;
    wait_ready(&bed.client, &client_kind(), ns, "second").await?;
    assert!(bed.client_in_keycloak(&first).await?.is_none());
    assert!(bed.client_in_keycloak(&second).await?.is_some());
    bed.teardown(&["second"]).await
}

#[tokio::test]
async fn deleting_the_realm_resource_while_clients_exist_never_blocks_either_finalizer() -> Result<()> {
    let bed = RealmBed::create("client-realm-gone", json!({})).await?;
    let ns = bed.ns();
    let _operator = Operator::start(&client_options(&[ns], "5m")).await?;
    let client_id = unique_name("orphan");
    apply(
        &bed.client,
        &client_kind(),
        ns,
        keycloak_client("orphan", &client_id, REALM, None, json!({})),
    )
    .await?;
    wait_ready(&bed.client, &client_kind(), ns, "orphan").await?;

    // When the realm resource (deletionPolicy Delete) is deleted first
    delete(&bed.client, &realm_kind(), ns, REALM).await?;

    // Then it goes at once, with the realm and its clients, without waiting for them
    wait_gone(&bed.client, &realm_kind(), ns, REALM, Duration::from_secs(60)).await?;
    assert!(bed.admin.get_json(&format!("/realms/{}", bed.realm)).await?.is_none());
    // And the client resource says its realm is gone, and is retried
    let object = wait_condition(
        &bed.client,
        &client_kind(),
        ns,
        "orphan",
        "Ready=False/ReferenceNotFound",
        Duration::from_secs(60),
    )
    .await?;
    assert_eq!(
        condition(&object, "Reconciling").map(|c| c["status"].clone()),
        Some(json!("True"))
    );

    // When the client resource is deleted too, it goes without cleanup
    delete(&bed.client, &client_kind(), ns, "orphan").await?;
    wait_gone(&bed.client, &client_kind(), ns, "orphan", Duration::from_secs(30)).await?;
    Ok(())
}

#[tokio::test]
async fn deleting_a_client_whose_keycloak_is_gone_completes() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "client-kc-gone").await?;
    let ns = ns.name();
    let admin = KeycloakAdmin::connect().await?;
    // Keycloak is reached through a proxy, so that it can vanish for this test alone.
    let upstream = testbed().keycloak_url.trim_start_matches("http://").to_owned();
    let proxy = CountingProxy::start(upstream).await?;
    keycloak(&client, ns, "sso", Some(&proxy.url), &[]).await?;
    let mut options = client_options(&[ns], "2s");
    options.keycloak = vec!["requestTimeout: 2s".into(), "maxAttempts: 1".into()];
    let _operator = Operator::start(&options).await?;
    let realm_name = unique_name("kc-gone");
    apply(
        &client,
        &realm_kind(),
        ns,
        realm(REALM, &realm_name, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;
    for name in ["a", "b"] {
        apply(
            &client,
            &client_kind(),
            ns,
            keycloak_client(name, &unique_name(name), REALM, None, json!({})),
        )
        .await?;
    }
    wait_ready(&client, &client_kind(), ns, "a").await?;
    wait_ready(&client, &client_kind(), ns, "b").await?;

    // When the Keycloak stops answering (the proxy goes away)
    drop(proxy);
    delete(&client, &client_kind(), ns, "a").await?;

    // Then the deletion waits for it, saying why, rather than losing the cleanup
    let object = wait_condition(
        &client,
        &client_kind(),
        ns,
        "a",
        "Degraded=True/KeycloakUnavailable",
        Duration::from_secs(60),
    )
    .await?;
    assert!(object["metadata"]["deletionTimestamp"].is_string());

    // And the documented escape hatch lets it go
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(client.clone(), ns, &client_kind());
    let skip = json!({"metadata": {"annotations": {"keycloak.wasmop.dev/skip-cleanup": "true"}}});
    api.patch("a", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(skip))
        .await?;
    wait_gone(&client, &client_kind(), ns, "a", Duration::from_secs(60)).await?;

    // When the Keycloak resource itself is deleted
    delete(&client, &keycloak_kind(), ns, "sso").await?;
    wait_gone(&client, &keycloak_kind(), ns, "sso", Duration::from_secs(30)).await?;

    // Then deleting a client whose Keycloak is gone completes without waiting
    delete(&client, &client_kind(), ns, "b").await?;
    wait_gone(&client, &client_kind(), ns, "b", Duration::from_secs(30)).await?;
    // and so does its realm's
    delete(&client, &realm_kind(), ns, REALM).await?;
    wait_gone(&client, &realm_kind(), ns, REALM, Duration::from_secs(30)).await?;
    assert!(get(&client, &client_kind(), ns, "b").await?.is_none());

    // The realm stayed in Keycloak (nothing could reach it): clean it up here.
    admin
        .request(Method::DELETE, &format!("/realms/{realm_name}"), None)
        .await
        .context("deleting the test realm")?;
    Ok(())
}

#[tokio::test]
async fn a_tenant_client_gets_neither_realm_admin_roles_nor_another_tenants_roles() -> Result<()> {
    // Given a platform realm that lets two teams' namespaces in
    let bed = RealmBed::create("client-admin", json!({})).await?;
    let team = TestNamespace::create(&bed.client, "client-admin-team").await?;
    let other = TestNamespace::create(&bed.client, "client-admin-other").await?;
    let _operator = Operator::start(&client_options(&[bed.ns(), team.name(), other.name()], "5m")).await?;
    allow_clients_from(&bed, &[team.name(), other.name()]).await?;
    bed.realm_ready().await?;
    // And a realm role that bundles realm-management's manage-users two levels down
    let bundle = bundle_of_manage_users(&bed).await?;
    let service_account = |roles: Value| json!({"oidc": {"standardFlowEnabled": false, "serviceAccountsEnabled": true, "serviceAccountRoles": roles}});

    // When the team asks for realm-admin for its service account
    let direct = unique_name("direct");
    apply(
        &bed.client,
        &client_kind(),
        team.name(),
        keycloak_client(
            "direct",
            &direct,
            REALM,
            Some(bed.ns()),
            service_account(json!({"clientRoles": {"realm-management": ["realm-admin"]}})),
        ),
    )
    .await?;
    // Then it is refused before anything reaches Keycloak
    let message = refused_for(&bed, team.name(), "direct", "RoleNotAllowed").await?;
    assert!(message.contains("realm-admin"), "{message}");
    assert!(bed.client_in_keycloak(&direct).await?.is_none());

    // When the team asks for the bundle instead
    let bundled = unique_name("bundled");
    apply(
        &bed.client,
        &client_kind(),
        team.name(),
        keycloak_client(
            "bundled",
            &bundled,
            REALM,
            Some(bed.ns()),
            service_account(json!({"realmRoles": [bundle]})),
        ),
    )
    .await?;
    // Then that is refused too, and the service account does not hold it
    let message = refused_for(&bed, team.name(), "bundled", "RoleNotAllowed").await?;
    assert!(message.contains("manage-users"), "{message}");
    assert!(!realm_roles_of_service_account(&bed, &bundled).await?.contains(&bundle));

    // When the other team's client defines a role, and the team asks for it
    let theirs = unique_name("theirs");
    apply(
        &bed.client,
        &client_kind(),
        other.name(),
        keycloak_client(
            "theirs",
            &theirs,
            REALM,
            Some(bed.ns()),
            json!({"roles": [{"name": "orders.write"}]}),
        ),
    )
    .await?;
    wait_ready(&bed.client, &client_kind(), other.name(), "theirs").await?;
    apply(
        &bed.client,
        &client_kind(),
        team.name(),
        keycloak_client(
            "borrowing",
            &unique_name("borrowing"),
            REALM,
            Some(bed.ns()),
            service_account(json!({"clientRoles": {theirs.as_str(): ["orders.write"]}})),
        ),
    )
    .await?;
    // Then it is refused: one tenant may not take another's permissions
    let message = refused_for(&bed, team.name(), "borrowing", "RoleNotAllowed").await?;
    assert!(message.contains(other.name()), "{message}");

    // When the platform's own client asks for the same bundle
    let platform = unique_name("platform");
    apply(
        &bed.client,
        &client_kind(),
        bed.ns(),
        keycloak_client(
            "platform",
            &platform,
            REALM,
            None,
            service_account(json!({"realmRoles": [bundle]})),
        ),
    )
    .await?;
    // Then it gets it: the rule is about tenants, not about the roles
    wait_ready(&bed.client, &client_kind(), bed.ns(), "platform").await?;
    assert!(realm_roles_of_service_account(&bed, &platform).await?.contains(&bundle));

    for (ns, name) in [
        (team.name(), "direct"),
        (team.name(), "bundled"),
        (team.name(), "borrowing"),
        (other.name(), "theirs"),
    ] {
        delete(&bed.client, &client_kind(), ns, name).await?;
        wait_gone(&bed.client, &client_kind(), ns, name, Duration::from_secs(60)).await?;
    }
    bed.teardown(&["platform"]).await
}

/// Waits until the client `name` in `ns` is refused for `reason`: Ready=False
/// and Stalled. Returns the Ready condition's message.
async fn refused_for(bed: &RealmBed, ns: &str, name: &str, reason: &str) -> Result<String> {
    let object = wait_condition(
        &bed.client,
        &client_kind(),
        ns,
        name,
        &format!("Ready=False/{reason}"),
        Duration::from_secs(30),
    )
    .await?;
    assert_eq!(
        condition(&object, "Stalled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    Ok(condition(&object, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned())
}

/// Lets clients from `teams` into the bed's realm.
async fn allow_clients_from(bed: &RealmBed, teams: &[&str]) -> Result<()> {
    apply(
        &bed.client,
        &realm_kind(),
        bed.ns(),
        realm(
            REALM,
            &bed.realm,
            "sso",
            None,
            json!({"deletionPolicy": "Delete", "clients": {"allowedNamespaces": {"names": teams}}}),
        ),
    )
    .await?;
    Ok(())
}

/// Creates realm role `ops-bundle`, a composite of realm role `ops-inner`,
/// itself a composite of realm-management's `manage-users`. Returns the
/// bundle's name.
async fn bundle_of_manage_users(bed: &RealmBed) -> Result<String> {
    let realm = &bed.realm;
    for name in ["ops-bundle", "ops-inner"] {
        bed.admin
            .expect(
                Method::POST,
                &format!("/realms/{realm}/roles"),
                Some(&json!({"name": name})),
                reqwest::StatusCode::CREATED,
            )
            .await?;
    }
    let management = bed
        .client_in_keycloak("realm-management")
        .await?
        .context("realm-management client")?;
    let management_id = management["id"].as_str().context("realm-management id")?;
    let manage_users = bed
        .admin
        .get_json(&format!("/realms/{realm}/clients/{management_id}/roles/manage-users"))
        .await?
        .context("manage-users role")?;
    let inner = bed
        .admin
        .get_json(&format!("/realms/{realm}/roles/ops-inner"))
        .await?
        .context("ops-inner role")?;
    for (role, composite) in [("ops-inner", manage_users), ("ops-bundle", inner)] {
        bed.admin
            .expect(
                Method::POST,
                &format!("/realms/{realm}/roles/{role}/composites"),
                Some(&json!([composite])),
                reqwest::StatusCode::NO_CONTENT,
            )
            .await?;
    }
    Ok("ops-bundle".to_owned())
}

/// The realm roles mapped directly to the service account of `client_id`.
async fn realm_roles_of_service_account(bed: &RealmBed, client_id: &str) -> Result<Vec<String>> {
    let Some(client) = bed.client_in_keycloak(client_id).await? else {
        return Ok(Vec::new());
    };
    let realm = &bed.realm;
    let id = client["id"].as_str().context("client id")?;
    let user = bed
        .admin
        .get_json(&format!("/realms/{realm}/clients/{id}/service-account-user"))
        .await?
        .context("service-account user")?;
    let user_id = user["id"].as_str().context("user id")?;
    let mapped = bed
        .admin
        .get_json(&format!("/realms/{realm}/users/{user_id}/role-mappings/realm"))
        .await?
        .unwrap_or_default();
    Ok(mapped
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect())
}
