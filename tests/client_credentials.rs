//! Stories of a client's secret: rotated on request and on a period, or
//! supplied by the user, always checked with real token requests.

mod client_common;

use std::time::Duration;

use anyhow::{Context, Result};
use client_common::{REALM, RealmBed, client_credentials_grant, client_options};
use k8s_openapi::api::core::v1::Secret;
use keycloak_operator_e2e::bench::writes;
use keycloak_operator_e2e::operator::Operator;
use keycloak_operator_e2e::resources::{
    TEST_MANAGER, apply, client_kind, condition, keycloak_client, secret_data, wait_condition, wait_ready,
};
use keycloak_operator_e2e::testbed::{eventually, unique_name};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

const ROTATE: &str = "keycloak.wasmop.dev/rotate-secret";

fn service(name: &str, client_id: &str, annotation: Option<&str>, credentials: Value) -> Value {
    let mut manifest = keycloak_client(
        name,
        client_id,
        REALM,
        None,
        json!({
            "oidc": {"standardFlowEnabled": false, "serviceAccountsEnabled": true},
            "credentials": credentials,
        }),
    );
    if let Some(value) = annotation {
        manifest["metadata"]["annotations"] = json!({ ROTATE: value });
    }
    manifest
}

/// The Secret's credentials, and whether they obtain a token.
async fn token_status(data: &std::collections::BTreeMap<String, String>, secret: &str) -> Result<u16> {
    Ok(
        client_credentials_grant(&data["token-endpoint"], &data["client-id"], secret)
            .await?
            .0,
    )
}

#[tokio::test]
async fn a_requested_rotation_gives_a_working_secret_and_the_old_one_stops_working() -> Result<()> {
    let bed = RealmBed::create("client-rotate", json!({})).await?;
    let ns = bed.ns();
    let operator = Operator::start(&client_options(&[ns], "1s")).await?;
    let client_id = unique_name("billing");
    apply(
        &bed.client,
        &client_kind(),
        ns,
        service("billing", &client_id, None, json!({})),
    )
    .await?;
    wait_ready(&bed.client, &client_kind(), ns, "billing").await?;
    let before = secret_data(&bed.client, ns, "billing-credentials")
        .await?
        .context("Secret")?;
    let old = before["client-secret"].clone();
    assert_eq!(token_status(&before, &old).await?, 200);

    // When a rotation is requested with the annotation
    apply(
        &bed.client,
        &client_kind(),
        ns,
        service("billing", &client_id, Some("2026-11-26"), json!({})),
    )
    .await?;

    // Then the Secret gets a new secret, which works
    let after = eventually(
        "the Secret to hold a new secret",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            let data = secret_data(&bed.client, ns, "billing-credentials")
                .await?
                .context("Secret")?;
            Ok((data["client-secret"] != old).then_some(data))
        },
    )
    .await?;
    let new = after["client-secret"].clone();
    assert_eq!(token_status(&after, &new).await?, 200, "the new secret works");
    // And the old one stopped working at once: this Keycloak has no grace
    // period (the client-secret-rotation feature is off), as documented
    assert_eq!(token_status(&after, &old).await?, 401, "the old secret is refused");
    let held = bed.client_in_keycloak(&client_id).await?.context("client")?;
    let rotated = bed
        .admin
        .request(
            reqwest::Method::GET,
            &format!(
                "/realms/{}/clients/{}/client-secret/rotated",
                bed.realm,
                held["id"].as_str().unwrap_or_default()
            ),
            None,
        )
        .await?;
    assert_eq!(rotated.status().as_u16(), 404, "Keycloak keeps no rotated secret");

    // And the status says which request was handled, without any secret value
    let object = wait_ready(&bed.client, &client_kind(), ns, "billing").await?;
    let rotation = &object["status"]["secretRotation"];
    assert_eq!(rotation["handledRequest"], "2026-11-26");
    assert!(rotation.get("previousSecretValidUntil").is_none());
    let status = object["status"].to_string();
    assert!(!status.contains(&new) && !status.contains(&old));

    // And the request is handled once: resyncs neither rotate again nor write
    let metrics = operator.metrics().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(writes(&operator.metrics().await?), writes(&metrics));
    let data = secret_data(&bed.client, ns, "billing-credentials")
        .await?
        .context("Secret")?;
    assert_eq!(data["client-secret"], new);
    bed.teardown(&["billing"]).await
}

#[tokio::test]
async fn a_rotation_period_rotates_the_secret_when_it_ends() -> Result<()> {
    let bed = RealmBed::create("client-period", json!({})).await?;
    let ns = bed.ns();
    let _operator = Operator::start(&client_options(&[ns], "5m")).await?;
    let client_id = unique_name("batch");
    apply(
        &bed.client,
        &client_kind(),
        ns,
        service("batch", &client_id, None, json!({"rotationPeriodSeconds": 60})),
    )
    .await?;
    let object = wait_ready(&bed.client, &client_kind(), ns, "batch").await?;
    let rotation = &object["status"]["secretRotation"];
    assert!(rotation["nextRotationAt"].is_string(), "{rotation}");
    let first = secret_data(&bed.client, ns, "batch-credentials")
        .await?
        .context("Secret")?;

    // When the period ends (the resync period is 5 minutes: the operator
    // comes back by itself at the rotation time)
    let second = eventually(
        "the periodic rotation",
        Duration::from_secs(120),
        Duration::from_secs(1),
        || async {
            let data = secret_data(&bed.client, ns, "batch-credentials")
                .await?
                .context("Secret")?;
            Ok((data["client-secret"] != first["client-secret"]).then_some(data))
        },
    )
    .await?;

    // Then the new secret works and the old one does not
    assert_eq!(token_status(&second, &second["client-secret"]).await?, 200);
    assert_eq!(token_status(&second, &first["client-secret"]).await?, 401);
    let object = wait_ready(&bed.client, &client_kind(), ns, "batch").await?;
    assert_ne!(
        object["status"]["secretRotation"]["secretCreatedAt"],
        rotation["secretCreatedAt"]
    );
    bed.teardown(&["batch"]).await
}

#[tokio::test]
async fn a_secret_supplied_by_the_user_is_used_and_followed() -> Result<()> {
    let bed = RealmBed::create("client-supplied", json!({})).await?;
    let ns = bed.ns();
    let _operator = Operator::start(&client_options(&[ns], "1s")).await?;
    let secrets: Api<Secret> = Api::namespaced(bed.client.clone(), ns);
    let source = |value: &str| -> Result<Secret> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "inventory-source"},
            "stringData": {"secret": value},
        }))?)
    };
    let params = PatchParams::apply(TEST_MANAGER).force();
    secrets
        .patch(
            "inventory-source",
            &params,
            &Patch::Apply(&source("first-supplied-secret-123")?),
        )
        .await?;
    let client_id = unique_name("inventory");

    // When a client takes its secret from that Secret
    apply(
        &bed.client,
        &client_kind(),
        ns,
        service(
            "inventory",
            &client_id,
            None,
            json!({"clientSecretRef": {"name": "inventory-source", "key": "secret"}}),
        ),
    )
    .await?;
    let object = wait_ready(&bed.client, &client_kind(), ns, "inventory").await?;

    // Then Keycloak uses it, and the written Secret carries it with the endpoints
    let held = bed.client_in_keycloak(&client_id).await?.context("client")?;
    assert_eq!(held["secret"], "first-supplied-secret-123");
    let data = secret_data(&bed.client, ns, "inventory-credentials")
        .await?
        .context("Secret")?;
    assert_eq!(data["client-secret"], "first-supplied-secret-123");
    assert_eq!(token_status(&data, "first-supplied-secret-123").await?, 200);
    assert!(object["status"].get("secretRotation").is_none());

    // When the user changes it
    secrets
        .patch(
            "inventory-source",
            &params,
            &Patch::Apply(&source("second-supplied-secret-456")?),
        )
        .await?;

    // Then Keycloak follows at the next resync: the new one works, the old one not
    eventually(
        "Keycloak to use the new secret",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let held = bed.client_in_keycloak(&client_id).await?.context("client")?;
            Ok((held["secret"] == "second-supplied-secret-456").then_some(()))
        },
    )
    .await?;
    assert_eq!(token_status(&data, "second-supplied-secret-456").await?, 200);
    assert_eq!(token_status(&data, "first-supplied-secret-123").await?, 401);
    bed.teardown(&["inventory"]).await
}

#[tokio::test]
async fn a_secret_name_taken_by_somebody_else_is_refused_and_left_alone() -> Result<()> {
    // Given a Secret the operator did not make
    let bed = RealmBed::create("client-taken", json!({})).await?;
    let ns = bed.ns();
    let _operator = Operator::start(&client_options(&[ns], "1s")).await?;
    let secrets: Api<Secret> = Api::namespaced(bed.client.clone(), ns);
    let theirs: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "payments-db"},
        "stringData": {"password": "not-the-operators"},
    }))?;
    secrets
        .patch(
            "payments-db",
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&theirs),
        )
        .await?;
    let client_id = unique_name("payments");

    // When a client names it as its credentials Secret
    apply(
        &bed.client,
        &client_kind(),
        ns,
        service("payments", &client_id, None, json!({"secretName": "payments-db"})),
    )
    .await?;

    // Then the client is refused with ChildConflict, and the Secret is untouched
    let object = wait_condition(
        &bed.client,
        &client_kind(),
        ns,
        "payments",
        "Ready=False/ChildConflict",
        Duration::from_secs(60),
    )
    .await?;
    let message = condition(&object, "Ready").context("Ready")?["message"].to_string();
    assert!(message.contains("payments-db"), "{message}");
    assert!(condition(&object, "Stalled").is_some_and(|c| c["status"] == "True"));
    let held = secrets.get("payments-db").await?;
    assert!(held.metadata.owner_references.is_none());
    let data = secret_data(&bed.client, ns, "payments-db").await?.context("Secret")?;
    assert_eq!(data.len(), 1);
    assert_eq!(data["password"], "not-the-operators");

    // When the client names a free Secret instead
    apply(
        &bed.client,
        &client_kind(),
        ns,
        service(
            "payments",
            &client_id,
            None,
            json!({"secretName": "payments-credentials"}),
        ),
    )
    .await?;

    // Then it is Ready with its credentials there, and the other Secret is still untouched
    wait_ready(&bed.client, &client_kind(), ns, "payments").await?;
    let written = secret_data(&bed.client, ns, "payments-credentials")
        .await?
        .context("Secret")?;
    assert_eq!(token_status(&written, &written["client-secret"]).await?, 200);
    let data = secret_data(&bed.client, ns, "payments-db").await?.context("Secret")?;
    assert_eq!(data["password"], "not-the-operators");
    bed.teardown(&["payments"]).await
}
