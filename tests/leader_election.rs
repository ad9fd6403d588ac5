//! Two operator replicas: one leader reconciles, the other waits; when the
//! leader dies the other takes over within the Lease duration; a replica that
//! stops gracefully releases the Lease at once.

use std::time::{Duration, Instant};

use anyhow::Result;
use k8s_openapi::api::coordination::v1::Lease;
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{apply, delete, install_crds, keycloak, realm, realm_kind, wait_ready};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestNamespace, eventually, kube_client, unique_name};
use serde_json::json;

async fn leaders(operators: &[&Operator]) -> Result<Vec<bool>> {
    let mut out = Vec::new();
    for operator in operators {
        out.push(operator.metric("keycloak_operator_leader", &[]).await.unwrap_or(0.0) == 1.0);
    }
    Ok(out)
}

fn identity(operator: &Operator) -> String {
    operator
        .dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn one_leader_reconciles_and_the_other_takes_over_when_it_dies() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "leader").await?;
    let ns = ns.name();
    keycloak(&client, ns, "sso", None, &[]).await?;
    let admin = KeycloakAdmin::connect().await?;
    let mut options = OperatorOptions::standard(&[ns]);
    options.lease = Some("keycloak-operator".into());

    // Given two replicas
    let mut a = Operator::spawn(&options, "replica-a").await?;
    let mut b = Operator::spawn(&options, "replica-b").await?;
    a.wait_ready().await?;
    b.wait_ready().await?;

    // Then exactly one leads, and the Lease names it
    let roles = eventually(
        "one leader",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async {
            let roles = leaders(&[&a, &b]).await?;
            Ok((roles.iter().filter(|l| **l).count() == 1).then_some(roles))
        },
    )
    .await?;
    let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), ns);
    let holder = |lease: Lease| lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
    let (mut leader, follower) = if roles[0] { (a, b) } else { (b, a) };
    assert_eq!(holder(leases.get("keycloak-operator").await?), identity(&leader));
    // And the follower stays a follower while the leader lives
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(leaders(&[&leader, &follower]).await?, vec![true, false]);

    // And the leader reconciles
    let first = unique_name("led");
    apply(
        &client,
        &realm_kind(),
        ns,
        realm("first", &first, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;
    wait_ready(&client, &realm_kind(), ns, "first").await?;
    assert_eq!(
        follower.metric("keycloak_operator_reconciles_total", &[]).await?,
        0.0,
        "the follower reconciles nothing"
    );

    // When the leader dies without releasing the Lease
    let killed = Instant::now();
    leader.kill().await?;

    // Then the follower takes over within the Lease duration (6s here) plus its renew period
    eventually(
        "the follower to take over",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || async { Ok((follower.metric("keycloak_operator_leader", &[]).await? == 1.0).then_some(())) },
    )
    .await?;
    let takeover = killed.elapsed();
    assert!(takeover < Duration::from_secs(12), "took over after {takeover:?}");
    assert_eq!(holder(leases.get("keycloak-operator").await?), identity(&follower));

    // And it reconciles new resources
    let second = unique_name("failover");
    apply(
        &client,
        &realm_kind(),
        ns,
        realm("second", &second, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;
    wait_ready(&client, &realm_kind(), ns, "second").await?;
    assert!(admin.get_json(&format!("/realms/{second}")).await?.is_some());

    // When it is stopped gracefully, after cleaning up
    for name in ["first", "second"] {
        delete(&client, &realm_kind(), ns, name).await?;
    }
    eventually(
        "the realms to be deleted",
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async {
            let gone = admin.get_json(&format!("/realms/{first}")).await?.is_none()
                && admin.get_json(&format!("/realms/{second}")).await?.is_none();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    let mut follower = follower;
    let status = follower.terminate().await?;
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    // Then the Lease is released at once for the next replica
    let lease = leases.get("keycloak-operator").await?;
    assert_eq!(holder(lease), "", "the Lease is released on SIGTERM");
    Ok(())
}
