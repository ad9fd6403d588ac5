//! Keycloak goes away for a while: the circuit breaker opens, resources say
//! `Degraded` with reason `KeycloakUnavailable`, Keycloak is spared a request
//! storm, and everything converges again once it is back.
//!
//! This stops the test bed's real Keycloak, so it lives in a test binary of
//! its own (cargo runs test binaries one after another) with a single test.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::future::try_join_all;
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::proxy::CountingProxy;
use keycloak_operator_e2e::resources::{
    apply, condition, delete, get, install_crds, keycloak, realm, realm_kind, wait_condition, wait_ready,
};
use keycloak_operator_e2e::testbed::{
    KeycloakAdmin, TestNamespace, TestbedCommandOnDrop, eventually, kube_client, testbed, testbed_command, unique_name,
};
use serde_json::json;

const REALMS: usize = 20;
const WINDOW: Duration = Duration::from_secs(20);

#[tokio::test]
async fn the_circuit_opens_while_keycloak_is_down_and_everything_recovers() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "outage").await?;
    let ns = ns.name();
    // Keycloak is reached through a proxy that counts what reaches it.
    let upstream = testbed().keycloak_url.trim_start_matches("http://").to_owned();
    let proxy = CountingProxy::start(upstream).await?;
    keycloak(&client, ns, "sso", Some(&proxy.url), &[]).await?;
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "1s".into();
    options.keycloak = vec![
        "failureThreshold: 3".into(),
        "resetTimeout: 4s".into(),
        "maxAttempts: 2".into(),
        "requestTimeout: 2s".into(),
    ];
    let operator = Operator::start(&options).await?;
    let admin = KeycloakAdmin::connect().await?;

    // Given realms that are Ready
    let names: Vec<String> = (0..REALMS).map(|i| unique_name(&format!("out{i}"))).collect();
    for (i, name) in names.iter().enumerate() {
        apply(
            &client,
            &realm_kind(),
            ns,
            realm(&format!("r{i}"), name, "sso", None, json!({"deletionPolicy": "Delete"})),
        )
        .await?;
    }
    try_join_all((0..REALMS).map(|i| {
        let client = client.clone();
        async move { wait_ready(&client, &realm_kind(), ns, &format!("r{i}")).await }
    }))
    .await?;

    // When Keycloak stops
    let _restart = TestbedCommandOnDrop("keycloak-start");
    testbed_command("keycloak-stop").await?;

    // Then the realms report it, Degraded with reason KeycloakUnavailable
    let object = wait_condition(
        &client,
        &realm_kind(),
        ns,
        "r0",
        "Degraded=True/KeycloakUnavailable",
        Duration::from_secs(90),
    )
    .await?;
    assert_eq!(
        condition(&object, "Ready").map(|c| c["reason"].clone()),
        Some(json!("KeycloakUnavailable"))
    );
    assert_eq!(
        condition(&object, "Reconciling").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    // And the circuit opened
    let key = format!("{ns}/sso");
    operator.wait_circuit_open(&key, Duration::from_secs(20)).await?;
    // And while it is down, the requests reaching Keycloak stay few: without
    // the breaker, 20 realms resyncing every second would send hundreds.
    let before = proxy.connections();
    let fast_failures_before = operator
        .metric("keycloak_operator_keycloak_requests_total", &[("code", "circuit_open")])
        .await?;
    tokio::time::sleep(WINDOW).await;
    let reached = proxy.connections() - before;
    let fast_failures = operator
        .metric("keycloak_operator_keycloak_requests_total", &[("code", "circuit_open")])
        .await?
        - fast_failures_before;
    eprintln!(
        "during {WINDOW:?} of outage: {reached} connections reached Keycloak, {fast_failures} requests failed fast"
    );
    assert!(reached <= 15, "{reached} connections reached a Keycloak that is down");
    assert!(
        fast_failures > reached as f64,
        "the breaker, not luck, kept the requests away"
    );

    // When a spec changes during the outage
    apply(
        &client,
        &realm_kind(),
        ns,
        realm(
            "r0",
            &names[0],
            "sso",
            None,
            json!({"deletionPolicy": "Delete", "displayName": "Changed while down"}),
        ),
    )
    .await?;

    // And Keycloak comes back
    testbed_command("keycloak-start").await?;

    // Then every realm is Ready and not Degraded, and the change made it to Keycloak
    for i in 0..REALMS {
        let object = wait_ready(&client, &realm_kind(), ns, &format!("r{i}")).await?;
        assert_eq!(
            condition(&object, "Degraded").map(|c| c["status"].clone()),
            Some(json!("False"))
        );
    }
    let held = admin
        .get_json(&format!("/realms/{}", names[0]))
        .await?
        .context("realm exists")?;
    assert_eq!(held["displayName"], "Changed while down");
    // And the change counts as an update, not as drift: the failed reconciles
    // during the outage recorded the new generation without applying it
    assert_eq!(
        operator
            .metric("keycloak_operator_drift_corrections_total", &[])
            .await?,
        0.0,
        "a spec change applied after an outage was reported as drift"
    );

    for i in 0..REALMS {
        delete(&client, &realm_kind(), ns, &format!("r{i}")).await?;
    }
    for i in 0..REALMS {
        let resource = format!("r{i}");
        eventually(
            "the realm resource to be gone",
            Duration::from_secs(120),
            Duration::from_millis(250),
            || async {
                Ok(get(&client, &realm_kind(), ns, &resource)
                    .await?
                    .is_none()
                    .then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}
