//! Stories of a `KeycloakRealm`'s life, checked both in the resource's status
//! and in what the real Keycloak holds.

use std::time::Duration;

use anyhow::Result;
use keycloak_operator_e2e::operator::{Component, Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{
    KeycloakBed, apply, client_kind, condition, delete, get, keycloak_client, keycloak_kind, realm, realm_kind,
    wait_condition, wait_ready,
};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestRealm, eventually, testbed, unique_name};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const OWNER_UID: &str = "keycloak.wasmop.dev/owner-uid";

async fn given_a_keycloak(prefix: &str) -> Result<KeycloakBed> {
    KeycloakBed::given(prefix).await
}

async fn realm_in_keycloak(admin: &KeycloakAdmin, name: &str) -> Result<Option<Value>> {
    admin.get_json(&format!("/realms/{name}")).await
}

#[tokio::test]
async fn a_realm_is_created_ready_and_kubectl_wait_sees_it() -> Result<()> {
    let bed = given_a_keycloak("realm-create").await?;
    let ns = bed.ns.name();
    let operator = Operator::start(&OperatorOptions::standard(&[ns])).await?;
    // (Ready first, so that the realm's reconciles below are all its own)
    wait_ready(&bed.client, &keycloak_kind(), ns, "sso").await?;
    let name = unique_name("shop");
    let _name_cleanup = TestRealm::cleanup(&name);

    // When a realm resource is applied
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm(
            "shop",
            &name,
            "sso",
            None,
            json!({"displayName": "The Shop", "settings": {"registrationAllowed": true}}),
        ),
    )
    .await?;

    // Then `kubectl wait` returns once it is Ready
    let kubectl = std::path::Path::new(&std::env::var("TESTBED_BIN").unwrap_or_default()).join("kubectl");
    let kubectl = if kubectl.exists() { kubectl } else { "kubectl".into() };
    let status = tokio::process::Command::new(kubectl)
        .args([
            "wait",
            "--for=condition=Ready",
            "keycloakrealm/shop",
            "-n",
            ns,
            "--timeout=90s",
        ])
        .env("KUBECONFIG", &testbed().kubeconfig)
        .status()
        .await?;
    assert!(status.success(), "kubectl wait --for=condition=Ready failed");

    // And the status is current and names the component that did it
    let object = wait_ready(&bed.client, &realm_kind(), ns, "shop").await?;
    assert_eq!(object["status"]["observedGeneration"], object["metadata"]["generation"]);
    assert_eq!(object["status"]["reconciledBy"]["name"], "keycloak-operator/realm");
    assert!(
        object["status"]["reconciledBy"]["digest"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sha256:")
    );
    assert_eq!(
        condition(&object, "Stalled").map(|c| c["status"].clone()),
        Some(json!("False"))
    );
    assert_eq!(
        condition(&object, "Degraded").map(|c| c["status"].clone()),
        Some(json!("False"))
    );
    assert_eq!(object["status"]["keycloak"], format!("{ns}/sso"));

    // And Keycloak holds the realm as declared, owned by the resource
    let held = realm_in_keycloak(&bed.admin, &name)
        .await?
        .expect("realm exists in Keycloak");
    assert_eq!(held["displayName"], "The Shop");
    assert_eq!(held["registrationAllowed"], true);
    assert_eq!(held["attributes"][OWNER_UID], object["metadata"]["uid"]);
    assert_eq!(object["status"]["realmId"], held["id"]);

    // And the Keycloak resource reports the server's version
    let kc = wait_ready(&bed.client, &keycloak_kind(), ns, "sso").await?;
    assert!(
        kc["status"]["version"].as_str().is_some_and(|v| v.starts_with("26.")),
        "{}",
        kc["status"]
    );

    // And neither its own status writes nor the finalizer the host added
    // make it look again: one reconcile added the finalizer and created the
    // realm (the resync period is minutes away)
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reconciles = keycloak_operator_e2e::operator::sum_metric(
        &operator.metrics().await?,
        "keycloak_operator_reconciles_total",
        &[("kind", "keycloak.wasmop.dev/KeycloakRealm")],
    );
    assert_eq!(reconciles, 1.0, "{reconciles} reconciles for one creation");

    delete(&bed.client, &realm_kind(), ns, "shop").await?;
    Ok(())
}

#[tokio::test]
async fn a_spec_change_is_applied_and_steady_state_sends_no_writes() -> Result<()> {
    let bed = given_a_keycloak("realm-update").await?;
    let ns = bed.ns.name();
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "1s".into();
    let operator = Operator::start(&options).await?;
    let name = unique_name("update");
    let _name_cleanup = TestRealm::cleanup(&name);
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm("r", &name, "sso", None, json!({"displayName": "Before"})),
    )
    .await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;

    // When the spec changes
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm(
            "r",
            &name,
            "sso",
            None,
            json!({"displayName": "After", "settings": {"sslRequired": "all", "accessTokenLifespanSeconds": 600}}),
        ),
    )
    .await?;

    // Then Keycloak follows
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    let held = realm_in_keycloak(&bed.admin, &name).await?.expect("realm exists");
    assert_eq!(held["displayName"], "After");
    assert_eq!(held["sslRequired"], "all");
    assert_eq!(held["accessTokenLifespan"], 600);

    // And with nothing to change, resyncs only read
    let writes = keycloak_operator_e2e::bench::writes;
    let reads = |text: &str| {
        keycloak_operator_e2e::operator::sum_metric(
            text,
            "keycloak_operator_keycloak_requests_total",
            &[("method", "GET")],
        )
    };
    let before = operator.metrics().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = operator.metrics().await?;
    assert!(
        reads(&after) > reads(&before) + 2.0,
        "resyncs happened (reads {} → {})",
        reads(&before),
        reads(&after)
    );
    assert_eq!(writes(&after), writes(&before), "no write to Keycloak in steady state");
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn a_change_made_in_keycloak_is_reverted_at_the_next_resync() -> Result<()> {
    let bed = given_a_keycloak("realm-drift").await?;
    let ns = bed.ns.name();
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "2s".into();
    let operator = Operator::start(&options).await?;
    let name = unique_name("drift");
    let _name_cleanup = TestRealm::cleanup(&name);
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm(
            "r",
            &name,
            "sso",
            None,
            json!({"displayName": "Declared", "settings": {"registrationAllowed": false}}),
        ),
    )
    .await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;

    // When someone changes managed fields in Keycloak, and an unmanaged one
    let mut held = realm_in_keycloak(&bed.admin, &name).await?.expect("realm exists");
    held["displayName"] = json!("Changed by hand");
    held["registrationAllowed"] = json!(true);
    held["loginWithEmailAllowed"] = json!(false);
    held["attributes"]["added-by-hand"] = json!("yes");
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{name}"),
            Some(&held),
            StatusCode::NO_CONTENT,
        )
        .await?;

    // Then the managed fields are put back, the unmanaged one is left alone
    eventually(
        "the drift to be reverted",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || async {
            let held = realm_in_keycloak(&bed.admin, &name).await?.expect("realm exists");
            Ok((held["displayName"] == "Declared" && held["registrationAllowed"] == false).then_some(()))
        },
    )
    .await?;
    let held = realm_in_keycloak(&bed.admin, &name).await?.expect("realm exists");
    assert_eq!(held["loginWithEmailAllowed"], false, "unmanaged fields are not touched");
    assert_eq!(
        held["attributes"]["added-by-hand"], "yes",
        "unmanaged attributes are not touched"
    );

    // And the correction is counted
    assert!(
        operator
            .metric("keycloak_operator_drift_corrections_total", &[])
            .await?
            >= 2.0
    );
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn deleting_follows_the_deletion_policy() -> Result<()> {
    let bed = given_a_keycloak("realm-delete").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::standard(&[ns])).await?;
    let kept = unique_name("kept");
    let removed = unique_name("removed");
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm("kept", &kept, "sso", None, json!({})),
    )
    .await?;
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm("removed", &removed, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;
    wait_ready(&bed.client, &realm_kind(), ns, "kept").await?;
    wait_ready(&bed.client, &realm_kind(), ns, "removed").await?;

    // When both resources are deleted
    delete(&bed.client, &realm_kind(), ns, "kept").await?;
    delete(&bed.client, &realm_kind(), ns, "removed").await?;
    for resource in ["kept", "removed"] {
        eventually(
            "the resource to be gone",
            Duration::from_secs(120),
            Duration::from_millis(250),
            || async {
                Ok(get(&bed.client, &realm_kind(), ns, resource)
                    .await?
                    .is_none()
                    .then_some(()))
            },
        )
        .await?;
    }

    // Then the retained realm and its data stay, released for adoption
    let held = realm_in_keycloak(&bed.admin, &kept)
        .await?
        .expect("a retained realm stays in Keycloak");
    assert_eq!(
        held["attributes"][OWNER_UID].as_str().unwrap_or_default(),
        "",
        "ownership is released"
    );
    // And the other is gone from Keycloak
    assert!(
        realm_in_keycloak(&bed.admin, &removed).await?.is_none(),
        "deletionPolicy Delete removes the realm"
    );
    bed.admin
        .request(Method::DELETE, &format!("/realms/{kept}"), None)
        .await?;
    Ok(())
}

#[tokio::test]
async fn two_resources_naming_one_realm_conflict_and_the_first_keeps_it() -> Result<()> {
    let bed = given_a_keycloak("realm-conflict").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::standard(&[ns])).await?;
    let name = unique_name("contested");
    let _name_cleanup = TestRealm::cleanup(&name);
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm("first", &name, "sso", None, json!({"displayName": "First"})),
    )
    .await?;
    let first = wait_ready(&bed.client, &realm_kind(), ns, "first").await?;

    // When a second resource names the same realm
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm("second", &name, "sso", None, json!({"displayName": "Second"})),
    )
    .await?;

    // Then it is stalled with reason Conflict, and the realm is untouched
    let second = wait_condition(
        &bed.client,
        &realm_kind(),
        ns,
        "second",
        "Ready=False/Conflict",
        Duration::from_secs(90),
    )
    .await?;
    assert_eq!(
        condition(&second, "Stalled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    let held = realm_in_keycloak(&bed.admin, &name).await?.expect("realm exists");
    assert_eq!(held["displayName"], "First");
    assert_eq!(held["attributes"][OWNER_UID], first["metadata"]["uid"]);

    // And deleting the loser (with policy Delete) does not delete the winner's realm
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm(
            "second",
            &name,
            "sso",
            None,
            json!({"displayName": "Second", "deletionPolicy": "Delete"}),
        ),
    )
    .await?;
    delete(&bed.client, &realm_kind(), ns, "second").await?;
    eventually(
        "the second resource to be gone",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async {
            Ok(get(&bed.client, &realm_kind(), ns, "second")
                .await?
                .is_none()
                .then_some(()))
        },
    )
    .await?;
    assert!(
        realm_in_keycloak(&bed.admin, &name).await?.is_some(),
        "the first resource's realm survives"
    );
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm(
            "first",
            &name,
            "sso",
            None,
            json!({"displayName": "First", "deletionPolicy": "Delete"}),
        ),
    )
    .await?;
    delete(&bed.client, &realm_kind(), ns, "first").await?;
    Ok(())
}

#[tokio::test]
async fn an_existing_realm_is_adopted_only_on_request() -> Result<()> {
    let bed = given_a_keycloak("realm-adopt").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::standard(&[ns])).await?;
    let name = unique_name("legacy");
    let _name_cleanup = TestRealm::cleanup(&name);
    bed.admin
        .expect(
            Method::POST,
            "/realms",
            Some(&json!({"realm": name, "enabled": true, "displayName": "Hand made"})),
            StatusCode::CREATED,
        )
        .await?;

    // When a resource names it without opting in
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm("legacy", &name, "sso", None, json!({"displayName": "Managed"})),
    )
    .await?;

    // Then it is refused and the realm is untouched
    wait_condition(
        &bed.client,
        &realm_kind(),
        ns,
        "legacy",
        "Ready=False/AdoptionRequired",
        Duration::from_secs(90),
    )
    .await?;
    assert_eq!(
        realm_in_keycloak(&bed.admin, &name).await?.expect("exists")["displayName"],
        "Hand made"
    );

    // When it opts in
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm(
            "legacy",
            &name,
            "sso",
            None,
            json!({"displayName": "Managed", "adoptExisting": true, "deletionPolicy": "Delete"}),
        ),
    )
    .await?;

    // Then the realm is taken over
    let object = wait_ready(&bed.client, &realm_kind(), ns, "legacy").await?;
    let held = realm_in_keycloak(&bed.admin, &name).await?.expect("exists");
    assert_eq!(held["displayName"], "Managed");
    assert_eq!(held["attributes"][OWNER_UID], object["metadata"]["uid"]);
    delete(&bed.client, &realm_kind(), ns, "legacy").await?;
    Ok(())
}

#[tokio::test]
async fn a_realm_whose_name_holds_a_dot_is_managed_like_any_other() -> Result<()> {
    // Given a realm named `<unique>.eu`, as Keycloak and the CRD allow, and
    // a client in it
    let bed = given_a_keycloak("realm-dotted").await?;
    let ns = bed.ns.name();
    let dotted = format!("{}.eu", unique_name("dotted"));
    let _cleanup = TestRealm::cleanup(&dotted);
    let mut options = OperatorOptions::standard(&[ns]);
    options
        .components
        .push((Component::Client, &["keycloak-admin", "read-secrets"]));
    let _operator = Operator::start(&options).await?;
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm("dotted", &dotted, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;
    apply(
        &bed.client,
        &client_kind(),
        ns,
        keycloak_client("app", "app.eu", "dotted", None, json!({})),
    )
    .await?;

    // Then both are Ready and Keycloak holds them
    wait_ready(&bed.client, &realm_kind(), ns, "dotted").await?;
    wait_ready(&bed.client, &client_kind(), ns, "app").await?;
    assert!(realm_in_keycloak(&bed.admin, &dotted).await?.is_some());
    let clients = bed
        .admin
        .get_json(&format!("/realms/{dotted}/clients?clientId=app.eu"))
        .await?
        .unwrap_or_default();
    assert_eq!(
        clients.as_array().map(Vec::len),
        Some(1),
        "the client is in the dotted realm"
    );

    // When the realm resource is deleted, the realm goes (deletionPolicy Delete)
    delete(&bed.client, &client_kind(), ns, "app").await?;
    delete(&bed.client, &realm_kind(), ns, "dotted").await?;
    eventually(
        "the dotted realm to be gone from Keycloak",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async { Ok(realm_in_keycloak(&bed.admin, &dotted).await?.is_none().then_some(())) },
    )
    .await
}
