//! Two operator replicas: one leader reconciles, the other waits; when the
//! leader dies the other takes over within the Lease duration; a replica that
//! stops gracefully releases the Lease at once. Killed while 200 clients are
//! being created, the two replicas never write to Keycloak at the same time.

mod client_common;

use std::time::{Duration, Instant};

use anyhow::Result;
use client_common::{Census, RealmBed, apply_scale_clients, client_options, teardown_realm_first};
use k8s_openapi::api::coordination::v1::Lease;
use keycloak_operator_e2e::bench::wait_all_ready;
use keycloak_operator_e2e::fault::{Dice, keycloak_requests, kill_mid_batch};
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{
    apply, client_kind, delete, install_crds, keycloak, realm, realm_kind, wait_ready,
};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestNamespace, TestRealm, eventually, kube_client, unique_name};
use kube::api::{Api, DynamicObject};
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

#[tokio::test]
async fn the_leader_killed_mid_apply_is_replaced_and_the_two_never_write_at_once() -> Result<()> {
    const CLIENTS: usize = 200;
    // Given two replicas with leader election, serving clients in a realm
    let bed = RealmBed::create("leader-apply", json!({})).await?;
    let _realm = TestRealm::cleanup(&bed.realm);
    let mut options = client_options(&[bed.ns()], "10m");
    options.lease = Some("keycloak-operator".into());
    options.extra = "workers: 16\n".into();
    let mut a = Operator::spawn(&options, "replica-a").await?;
    let mut b = Operator::spawn(&options, "replica-b").await?;
    a.wait_ready().await?;
    b.wait_ready().await?;
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
    let (mut leader, follower) = if roles[0] { (a, b) } else { (b, a) };
    bed.realm_ready().await?;
    let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), bed.ns(), &client_kind());
    let mut dice = Dice::from_env();
    let target = dice.between(20, 120) as usize;
    let jitter = Duration::from_millis(dice.between(0, 400));
    println!("kill point: {target} Ready, plus {jitter:?}");

    // When 200 clients are applied at once
    let applying = apply_scale_clients(&bed, CLIENTS, "failover");
    // And the leader is SIGKILLed while they are being created
    let kill = kill_mid_batch(&mut leader, &api, target, jitter, CLIENTS).await?;
    println!("SIGKILL of the leader with {} of {CLIENTS} Ready", kill.ready);
    applying.await??;

    // Then the follower takes over
    eventually(
        "the follower to lead",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || async { Ok((follower.metric("keycloak_operator_leader", &[]).await? == 1.0).then_some(())) },
    )
    .await?;
    let leading = kill.instant.elapsed();
    // And every client becomes Ready
    wait_all_ready(&api, CLIENTS, Duration::from_secs(600)).await?;
    println!(
        "all {CLIENTS} Ready {:.1}s after the kill",
        kill.instant.elapsed().as_secs_f64()
    );

    // And the new leader's first Keycloak write comes within the Lease
    // duration (6s) plus a margin for its controllers to start, list and
    // reach Keycloak (1.3-2.7s on the bed)
    let old = keycloak_requests(&leader.log_path())?;
    let new = keycloak_requests(&follower.log_path())?;
    let old_writes: Vec<_> = old.iter().filter(|r| r.is_write()).collect();
    let new_writes: Vec<_> = new.iter().filter(|r| r.is_write()).collect();
    let old_last = old_writes.iter().map(|r| r.answered).fold(f64::MIN, f64::max);
    let new_first = new_writes.iter().map(|r| r.sent).fold(f64::MAX, f64::min);
    let first_write = new_first - kill.at;
    println!(
        "old leader: {} Keycloak writes, the last answered {:.3}s before the kill; \
         new leader: leading {:.1}s and first write sent {first_write:.3}s after the kill, {} writes",
        old_writes.len(),
        kill.at - old_last,
        leading.as_secs_f64(),
        new_writes.len()
    );
    assert!(
        !old_writes.is_empty(),
        "the old leader wrote nothing before it was killed"
    );
    assert!(
        first_write <= 6.0 + 4.0,
        "the new leader's first write came {first_write:.1}s after the kill"
    );
    // And the two never wrote at the same time: every write of the old
    // leader was answered before the new leader sent its first, and the new
    // one sent nothing while the old one lived
    assert!(
        old_last < new_first,
        "the old leader's last write overlaps the new leader's first"
    );
    assert!(new_first > kill.at, "the follower wrote while the leader lived");
    // And Keycloak holds one client per resource, with its Secret
    let census = Census::take(&bed).await?;
    census.print();
    census.check(CLIENTS)?;

    teardown_realm_first(&bed).await?;
    drop(follower);
    Ok(())
}
