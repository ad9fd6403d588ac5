//! Drift caught in seconds: a change made by hand in Keycloak is reverted
//! long before the resync (here an hour away), because the host reads each
//! realm's admin events and requeues only the resources whose objects
//! changed; in steady state that costs one request per realm per poll.

mod client_common;

use std::time::Duration;

use anyhow::{Context, Result};
use client_common::{REALM, RealmBed, client_options, scale_client};
use keycloak_operator_e2e::operator::{Operator, sum_metric};
use keycloak_operator_e2e::resources::{apply, client_kind, realm, realm_kind, wait_ready};
use keycloak_operator_e2e::testbed::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CLIENTS: &str = "keycloak.wasmop.dev/KeycloakClient";
const REALMS: &str = "keycloak.wasmop.dev/KeycloakRealm";
/// How often the operator under test reads admin events.
const POLL: Duration = Duration::from_secs(2);

fn reconciles(metrics: &str, kind: &str) -> f64 {
    sum_metric(metrics, "keycloak_operator_reconciles_total", &[("kind", kind)])
}

/// Keycloak requests, the drift watch's own (`drift-watch:` routes) apart.
fn requests(metrics: &str) -> (f64, f64) {
    let all = sum_metric(metrics, "keycloak_operator_keycloak_requests_total", &[]);
    let polls = sum_metric(
        metrics,
        "keycloak_operator_keycloak_requests_total",
        &[("route", "drift-watch:/realms/{realm}/admin-events")],
    );
    (all - polls, polls)
}

/// Changes the realm's display name in Keycloak, as someone in the admin console would.
async fn rename_realm_by_hand(bed: &RealmBed) -> Result<()> {
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{}", bed.realm),
            Some(&json!({"displayName": "Changed by hand"})),
            StatusCode::NO_CONTENT,
        )
        .await?;
    Ok(())
}

/// Waits until Keycloak holds the realm with `expected` as its display name.
async fn display_name_becomes(bed: &RealmBed, expected: &str, within: Duration) -> Result<()> {
    eventually(
        &format!("the realm's display name to be {expected:?}"),
        within,
        Duration::from_millis(250),
        || async {
            let held = bed.admin.get_json(&format!("/realms/{}", bed.realm)).await?;
            Ok(held.filter(|r| r["displayName"] == json!(expected)).map(|_| ()))
        },
    )
    .await
}

#[tokio::test]
async fn a_change_made_by_hand_is_reverted_within_seconds_and_only_its_resource_is_looked_at() -> Result<()> {
    // Given a realm with a display name and two clients, and an operator whose
    // resync is an hour away
    let bed = RealmBed::create("drift-watch", json!({"displayName": "Drift Watch"})).await?;
    let ns = bed.ns();
    let mut options = client_options(&[ns], "1h");
    options.keycloak = vec![format!("driftPollInterval: {}s", POLL.as_secs())];
    let operator = Operator::start(&options).await?;
    let prefix = bed.realm.clone();
    for i in 0..2 {
        apply(&bed.client, &client_kind(), ns, scale_client(i, &prefix)).await?;
    }
    bed.realm_ready().await?;
    for i in 0..2 {
        wait_ready(&bed.client, &client_kind(), ns, &format!("c{i}")).await?;
    }

    // Then the operator has turned admin events on in the realm, with a retention
    let config = eventually(
        "admin events to be turned on",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let config = bed
                .admin
                .get_json(&format!("/realms/{}/events/config", bed.realm))
                .await?
                .unwrap_or_default();
            Ok((config["adminEventsEnabled"] == json!(true)).then_some(config))
        },
    )
    .await?;
    assert_eq!(config["adminEventsDetailsEnabled"], json!(false), "left as it was");
    let held_realm = bed
        .admin
        .get_json(&format!("/realms/{}", bed.realm))
        .await?
        .context("realm")?;
    assert_eq!(held_realm["attributes"]["adminEventsExpiration"], json!("86400"));
    // (and the realm's other attributes, its owner's record among them, stay)
    let attributes = held_realm["attributes"].as_object().context("attributes")?;
    assert!(
        attributes.keys().any(|k| k.starts_with("keycloak.wasmop.dev/")),
        "{attributes:?}"
    );
    // (let the poll that turned them on pass, and the realm settle)
    tokio::time::sleep(POLL * 2).await;

    // When someone changes a managed field of one client by hand
    let before = operator.metrics().await?;
    let client_id = format!("{prefix}-0");
    let mut held = bed.client_in_keycloak(&client_id).await?.context("client 0")?;
    let id = held["id"].as_str().context("id")?.to_owned();
    held["redirectUris"] = json!(["https://evil.example.com/*"]);
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{}/clients/{id}", bed.realm),
            Some(&held),
            StatusCode::NO_CONTENT,
        )
        .await?;

    // Then it is reverted within seconds, not at the resync
    eventually(
        "the hand-made change to be reverted",
        Duration::from_secs(15),
        Duration::from_millis(250),
        || async {
            let held = bed.client_in_keycloak(&client_id).await?.context("client 0")?;
            Ok((held["redirectUris"] == json!(["https://app-0.example.com/*"])).then_some(()))
        },
    )
    .await?;
    // And only that client was looked at again: not the other, not the realm
    // (and the operator's own revert did not bring it back a second time)
    tokio::time::sleep(POLL * 2).await;
    let after = operator.metrics().await?;
    assert_eq!(reconciles(&after, CLIENTS) - reconciles(&before, CLIENTS), 1.0);
    assert_eq!(reconciles(&after, REALMS), reconciles(&before, REALMS));
    assert_eq!(
        sum_metric(&after, "keycloak_operator_drift_requeues_total", &[("kind", CLIENTS)])
            - sum_metric(&before, "keycloak_operator_drift_requeues_total", &[("kind", CLIENTS)]),
        1.0
    );
    assert!(
        sum_metric(
            &after,
            "keycloak_operator_drift_corrections_total",
            &[("kind", CLIENTS)]
        ) >= 1.0
    );

    // When the realm's display name is changed by hand
    rename_realm_by_hand(&bed).await?;
    // Then the realm is put back as quickly
    display_name_becomes(&bed, "Drift Watch", Duration::from_secs(15)).await?;

    // And in steady state the only requests are one poll per realm per interval
    tokio::time::sleep(POLL * 2).await;
    let before = operator.metrics().await?;
    let window = POLL * 5;
    tokio::time::sleep(window).await;
    let after = operator.metrics().await?;
    let (other_before, polls_before) = requests(&before);
    let (other_after, polls_after) = requests(&after);
    assert_eq!(other_after, other_before, "nothing but the poll reaches Keycloak");
    let polls = polls_after - polls_before;
    let expected = (window.as_secs_f64() / POLL.as_secs_f64()).round();
    assert!(
        (expected - 1.0..=expected + 1.0).contains(&polls),
        "{polls} polls in {window:?} for one realm"
    );

    bed.teardown(&["c0", "c1"]).await
}

#[tokio::test]
async fn without_the_watch_drift_waits_for_the_resync() -> Result<()> {
    // Given the same, with the watch turned off
    let bed = RealmBed::create("drift-off", json!({"displayName": "No Watch"})).await?;
    let ns = bed.ns();
    let mut options = client_options(&[ns], "1h");
    options.keycloak = vec!["driftPollInterval: 0s".into()];
    let operator = Operator::start(&options).await?;
    bed.realm_ready().await?;

    // When the display name is changed by hand
    rename_realm_by_hand(&bed).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let config = bed
        .admin
        .get_json(&format!("/realms/{}/events/config", bed.realm))
        .await?
        .unwrap_or_default();

    // Then nothing looks at it before the resync, and admin events stay as they were
    let held = bed.admin.get_json(&format!("/realms/{}", bed.realm)).await?;
    assert_eq!(
        held.map(|r| r["displayName"].clone()),
        Some(Value::from("Changed by hand"))
    );
    assert_eq!(config["adminEventsEnabled"], json!(false));
    assert_eq!(
        operator
            .metric(
                "keycloak_operator_keycloak_requests_total",
                &[("route", "drift-watch:/realms/{realm}/admin-events")]
            )
            .await?,
        0.0
    );
    // (an update of the spec is still applied at once)
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm(
            REALM,
            &bed.realm,
            "sso",
            None,
            json!({"deletionPolicy": "Delete", "displayName": "Updated"}),
        ),
    )
    .await?;
    display_name_becomes(&bed, "Updated", Duration::from_secs(30)).await?;
    bed.teardown(&[]).await
}
