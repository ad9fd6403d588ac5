//! Replacing a component's file while resources are being reconciled swaps
//! the new version in atomically: no reconcile fails, the new version's
//! behaviour shows, and a broken file never replaces a working version.

use std::time::Duration;

use anyhow::Result;
use futures::future::try_join_all;
use keycloak_operator_e2e::operator::{Component, Operator, OperatorOptions, sum_metric};
use keycloak_operator_e2e::resources::{apply, delete, get, install_crds, keycloak, realm, realm_kind, wait_ready};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestNamespace, eventually, kube_client, unique_name};
use serde_json::json;

const REALMS: usize = 10;
const KIND: &str = "keycloak.wasmop.dev/KeycloakRealm";

#[tokio::test]
async fn a_new_version_is_swapped_in_while_reconciling_without_a_failed_reconcile() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "swap").await?;
    let ns = ns.name();
    keycloak(&client, ns, "sso", None, &[]).await?;
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "1s".into();
    // Version 0.2 also asks for read-secrets.
    options.components = vec![
        (Component::Keycloak, &["keycloak-admin", "read-secrets"]),
        (Component::Realm, &["keycloak-admin", "read-secrets"]),
    ];
    let operator = Operator::start(&options).await?;
    let admin = KeycloakAdmin::connect().await?;

    // Given realms served by version 0.1
    let names: Vec<String> = (0..REALMS).map(|i| unique_name(&format!("swap{i}"))).collect();
    let manifest = |i: usize, display: &str| {
        realm(
            &format!("r{i}"),
            &names[i],
            "sso",
            None,
            json!({"displayName": display, "deletionPolicy": "Delete"}),
        )
    };
    for i in 0..REALMS {
        apply(&client, &realm_kind(), ns, manifest(i, "start")).await?;
    }
    try_join_all((0..REALMS).map(|i| {
        let client = client.clone();
        async move { wait_ready(&client, &realm_kind(), ns, &format!("r{i}")).await }
    }))
    .await?;

    // When, while their specs keep changing, the component file is replaced by version 0.2
    let churn = {
        let client = client.clone();
        let ns = ns.to_owned();
        let names = names.clone();
        tokio::spawn(async move {
            for round in 0..40 {
                let i = round % REALMS;
                let m = realm(
                    &format!("r{i}"),
                    &names[i],
                    "sso",
                    None,
                    json!({"displayName": format!("round {round}"), "deletionPolicy": "Delete"}),
                );
                apply(&client, &realm_kind(), &ns, m).await?;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            anyhow::Ok(())
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    operator.replace_component(Component::Realm, &std::fs::read(Component::RealmV2.built())?)?;
    churn.await??;

    // Then every realm ends up reconciled by version 0.2, and Keycloak shows its behaviour
    for (i, name) in names.iter().enumerate() {
        let resource = format!("r{i}");
        eventually(
            "the new version to reconcile the realm",
            Duration::from_secs(120),
            Duration::from_millis(250),
            || async {
                let object = get(&client, &realm_kind(), ns, &resource).await?.unwrap_or_default();
                Ok((object["status"]["reconciledBy"]["version"] == "0.2.0-test").then_some(()))
            },
        )
        .await?;
        wait_ready(&client, &realm_kind(), ns, &resource).await?;
        let held = admin.get_json(&format!("/realms/{name}")).await?.expect("realm exists");
        assert_eq!(held["attributes"]["keycloak.wasmop.dev/test-version"], "v2");
    }
    // And no reconcile failed on the way
    let metrics = operator.metrics().await?;
    let failed = sum_metric(
        &metrics,
        "keycloak_operator_reconciles_total",
        &[("kind", KIND), ("result", "retrying")],
    ) + sum_metric(
        &metrics,
        "keycloak_operator_reconciles_total",
        &[("kind", KIND), ("result", "stalled")],
    );
    assert_eq!(failed, 0.0, "failed reconciles during the swap");
    assert_eq!(
        sum_metric(
            &metrics,
            "keycloak_operator_component_swaps_total",
            &[("kind", KIND), ("result", "swapped")]
        ),
        1.0
    );
    assert_eq!(
        sum_metric(
            &metrics,
            "keycloak_operator_component_info",
            &[("kind", KIND), ("version", "0.2.0-test")]
        ),
        1.0
    );
    assert_eq!(
        sum_metric(
            &metrics,
            "keycloak_operator_component_info",
            &[("kind", KIND), ("version", "0.1.0")]
        ),
        0.0
    );

    // When the file is replaced by something that is not a component
    operator.replace_component(Component::Realm, b"definitely not wasm")?;
    eventually(
        "the broken file to be rejected",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async {
            let rejected = operator
                .metric("keycloak_operator_component_loads_total", &[("result", "failed")])
                .await?;
            Ok((rejected >= 1.0).then_some(()))
        },
    )
    .await?;
    // Then version 0.2 keeps serving
    let late = unique_name("late");
    apply(
        &client,
        &realm_kind(),
        ns,
        realm("late", &late, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;
    let object = wait_ready(&client, &realm_kind(), ns, "late").await?;
    assert_eq!(object["status"]["reconciledBy"]["version"], "0.2.0-test");

    for i in 0..REALMS {
        delete(&client, &realm_kind(), ns, &format!("r{i}")).await?;
    }
    delete(&client, &realm_kind(), ns, "late").await?;
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
