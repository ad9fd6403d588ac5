//! Stories of a `KeycloakClient` whose spec names what its Keycloak does not
//! have: refused in the status, with nothing written to Keycloak.

mod client_common;

use std::time::Duration;

use anyhow::{Context, Result};
use client_common::{REALM, RealmBed, client_options};
use keycloak_operator_e2e::bench::writes;
use keycloak_operator_e2e::operator::{Operator, sum_metric};
use keycloak_operator_e2e::resources::{apply, client_kind, condition, keycloak_client, wait_condition, wait_ready};
use keycloak_operator_e2e::testbed::unique_name;
use serde_json::{Value, json};

#[tokio::test]
async fn a_protocol_mapper_type_keycloak_does_not_have_is_refused_before_the_client_is_created() -> Result<()> {
    // Given a realm and an operator serving clients
    let bed = RealmBed::create("client-mapper-type", json!({})).await?;
    let ns = bed.ns();
    let operator = Operator::start(&client_options(&[ns], "5m")).await?;
    bed.realm_ready().await?;
    let client_id = unique_name("claims");
    let manifest = |mapper_type: &str| {
        keycloak_client(
            "claims",
            &client_id,
            REALM,
            None,
            json!({
                "protocolMappers": [{"name": "team", "protocolMapper": mapper_type,
                                     "config": {"claim.name": "team", "claim.value": "checkout",
                                                "access.token.claim": "true"}}],
            }),
        )
    };
    let writes_before = writes(&operator.metrics().await?);

    // When a KeycloakClient asks for a protocol mapper type Keycloak does not have
    apply(&bed.client, &client_kind(), ns, manifest("no-such-mapper-type")).await?;

    // Then its status says so, naming the field and the types Keycloak has
    let object = wait_condition(
        &bed.client,
        &client_kind(),
        ns,
        "claims",
        "Ready=False/UnknownProtocolMapper",
        Duration::from_secs(60),
    )
    .await?;
    let message = condition(&object, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default();
    for expected in [
        "spec.protocolMappers[0].protocolMapper",
        "\"no-such-mapper-type\"",
        "oidc-hardcoded-claim-mapper",
    ] {
        assert!(message.contains(expected), "{expected:?} missing from {message:?}");
    }
    let stalled = condition(&object, "Stalled").cloned().unwrap_or(Value::Null);
    assert_eq!(stalled["status"], "True", "a spec error waits for the spec: {stalled}");
    assert_eq!(stalled["reason"], "UnknownProtocolMapper");

    // And Keycloak holds no such client: nothing was written
    assert!(
        bed.client_in_keycloak(&client_id).await?.is_none(),
        "the client was created in Keycloak"
    );
    assert_eq!(
        writes(&operator.metrics().await?),
        writes_before,
        "the operator wrote to Keycloak"
    );

    // When the spec is fixed
    apply(&bed.client, &client_kind(), ns, manifest("oidc-hardcoded-claim-mapper")).await?;

    // Then the client becomes Ready, and Keycloak holds it with its mapper
    wait_ready(&bed.client, &client_kind(), ns, "claims").await?;
    let held = bed
        .client_in_keycloak(&client_id)
        .await?
        .context("the client exists once the spec is fixed")?;
    let mapper_types: Vec<&str> = held["protocolMappers"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["protocolMapper"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(mapper_types, vec!["oidc-hardcoded-claim-mapper"]);

    // And the check costs no request per reconcile: the host serves the
    // document from its cache (the `Keycloak` resource's own health probe,
    // once a minute, is the only other reader)
    let server_info_reads = |text: &str| {
        sum_metric(
            text,
            "keycloak_operator_keycloak_requests_total",
            &[("route", "/serverinfo")],
        )
    };
    let before = server_info_reads(&operator.metrics().await?);
    for value in ["one", "two", "three"] {
        let mut changed = manifest("oidc-hardcoded-claim-mapper");
        changed["spec"]["protocolMappers"][0]["config"]["claim.value"] = json!(value);
        apply(&bed.client, &client_kind(), ns, changed).await?;
        wait_ready(&bed.client, &client_kind(), ns, "claims").await?;
    }
    let after = server_info_reads(&operator.metrics().await?);
    assert!(
        after <= before + 1.0,
        "three reconciles read /serverinfo {} times from Keycloak",
        after - before
    );
    bed.teardown(&["claims"]).await
}
