//! The operator is SIGKILLed twice while 300 clients are being created, and
//! restarted each time: every client still ends Ready, Keycloak holds exactly
//! one client per resource and no orphan, and every credentials Secret holds
//! the secret Keycloak has. The kill points are random; the printed seed
//! replays them (`FAULT_SEED=<seed>`).

mod client_common;

use std::time::{Duration, Instant};

use anyhow::Result;
use client_common::{Census, RealmBed, apply_scale_clients, client_options, teardown_realm_first};
use keycloak_operator_e2e::bench::wait_all_ready;
use keycloak_operator_e2e::fault::{Dice, kill_mid_batch};
use keycloak_operator_e2e::operator::Operator;
use keycloak_operator_e2e::resources::client_kind;
use keycloak_operator_e2e::testbed::TestRealm;
use kube::api::{Api, DynamicObject};
use serde_json::json;

const CLIENTS: usize = 300;

#[tokio::test]
async fn killed_twice_while_creating_300_clients_leaves_one_client_each_and_no_orphan() -> Result<()> {
    // Given a realm and an operator serving clients
    let bed = RealmBed::create("op-killed", json!({})).await?;
    // A story that fails midway must not leave 300 clients in Keycloak.
    let _realm = TestRealm::cleanup(&bed.realm);
    let mut options = client_options(&[bed.ns()], "10m");
    options.extra = "workers: 16\n".into();
    let mut operator = Operator::start(&options).await?;
    bed.realm_ready().await?;
    let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), bed.ns(), &client_kind());
    // Kill points: after a random number of clients is Ready, plus a random
    // delay that lands the signal anywhere inside the reconciles running.
    let mut dice = Dice::from_env();
    let first = dice.between(10, 100) as usize;
    let second = dice.between(first as u64 + 50, 230) as usize;
    let jitters = [dice.between(0, 400), dice.between(0, 400)].map(Duration::from_millis);
    println!("kill points: {first} and {second} Ready, plus {jitters:?}");

    // When 300 confidential clients are applied at once
    let started = Instant::now();
    let applying = apply_scale_clients(&bed, CLIENTS, "killed");
    // And the operator is SIGKILLed twice while they are being created,
    // restarted after each kill
    let mut killed = Vec::new();
    for (target, jitter) in [(first, jitters[0]), (second, jitters[1])] {
        let kill = kill_mid_batch(&mut operator, &api, target, jitter, CLIENTS).await?;
        println!(
            "SIGKILL at {:.1}s with {} of {CLIENTS} Ready",
            kill.instant.duration_since(started).as_secs_f64(),
            kill.ready
        );
        assert!(kill.ready > 0, "the kill landed before any client was Ready");
        killed.push(operator);
        operator = Operator::start(&options).await?;
    }
    applying.await??;

    // Then every resource becomes Ready
    wait_all_ready(&api, CLIENTS, Duration::from_secs(600)).await?;
    println!(
        "all {CLIENTS} Ready {:.1}s after the apply began",
        started.elapsed().as_secs_f64()
    );
    // And Keycloak holds exactly one client per resource, no orphan, and
    // every credentials Secret holds Keycloak's secret
    let census = Census::take(&bed).await?;
    census.print();
    census.check(CLIENTS)?;

    teardown_realm_first(&bed).await?;
    drop(killed);
    Ok(())
}
