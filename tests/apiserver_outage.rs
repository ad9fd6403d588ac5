//! kube-apiserver goes away for 30 s: the operator keeps running, and once
//! the server is back its watches resume and every change — made before the
//! stop, held back during it, made after it — reaches Keycloak, without a
//! reconcile storm.
//!
//! This stops the test bed's real kube-apiserver, so it lives in a test
//! binary of its own (cargo runs test binaries one after another) with a
//! single test.

mod client_common;

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use client_common::{REALM, RealmBed, client_options};
use futures::stream::{self, StreamExt, TryStreamExt};
use keycloak_operator_e2e::bench::wait_all_ready;
use keycloak_operator_e2e::operator::Operator;
use keycloak_operator_e2e::resources::{apply, client_kind, keycloak_client};
use keycloak_operator_e2e::testbed::{TestbedCommandOnDrop, eventually, http_client, testbed_command};
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};

const CLIENTS: usize = 30;
const OUTAGE: Duration = Duration::from_secs(30);
/// Resources the operator serves: the clients, the realm, the `Keycloak`.
const RESOURCES: usize = CLIENTS + 2;

/// Client `i` with its redirect URI naming `phase`: a change of phase is a
/// change of spec that must reach Keycloak.
fn client(i: usize, prefix: &str, phase: &str) -> Value {
    keycloak_client(
        &format!("c{i}"),
        &format!("{prefix}-{i}"),
        REALM,
        None,
        json!({"redirectUris": [format!("https://app-{i}.example.com/{phase}/*")]}),
    )
}

#[tokio::test]
async fn the_operator_rides_out_an_api_server_outage_and_resumes_its_watches() -> Result<()> {
    // Given an operator serving a realm and 30 clients that are Ready
    let bed = RealmBed::create("apiserver-outage", json!({})).await?;
    let ns = bed.ns().to_owned();
    let prefix = "app";
    // A long resync: every reconcile counted below comes from a change or
    // from the watches resuming, never from the clock.
    let mut operator = Operator::start(&client_options(&[&ns], "30m")).await?;
    bed.realm_ready().await?;
    let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), &ns, &client_kind());
    stream::iter(0..CLIENTS)
        .map(|i| {
            let (kube, ns) = (bed.client.clone(), ns.clone());
            async move { apply(&kube, &client_kind(), &ns, client(i, prefix, "initial")).await }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    wait_all_ready(&api, CLIENTS, Duration::from_secs(180)).await?;

    // The phase each client must end up in, in Keycloak.
    let mut expected: Vec<&str> = vec!["initial"; CLIENTS];
    // When some clients change just before the stop (their reconciles may
    // still be under way when the server goes)
    for (i, phase) in expected.iter_mut().enumerate().take(5) {
        apply(&bed.client, &client_kind(), &ns, client(i, prefix, "before")).await?;
        *phase = "before";
    }

    // And kube-apiserver stops for 30 s
    let _restart = TestbedCommandOnDrop("apiserver-start");
    let stopping = Instant::now();
    testbed_command("apiserver-stop").await?;
    let stopped = Instant::now();

    // Then the operator keeps running and its liveness endpoint answers
    // throughout (a kubelet would not restart it). Changes made meanwhile
    // cannot be written while the server is down: like a GitOps tool, the
    // test holds them and applies them right after the restart.
    let mut queued = Vec::new();
    for (i, phase) in expected.iter_mut().enumerate().skip(5).take(5) {
        queued.push(client(i, prefix, "queued"));
        *phase = "queued";
    }
    let health = http_client();
    while stopped.elapsed() < OUTAGE {
        if let Some(status) = operator.exit_status()? {
            bail!(
                "the operator exited ({status}) while the API server was down; see {}",
                operator.log_path().display()
            );
        }
        let live = health
            .get(format!("{}/healthz", operator.http))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        assert!(live, "/healthz failed while the API server was down");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // When the server is back, the held changes are applied, and more after
    // (counted from just before the start: the watches may resume before
    // the bed's script sees /readyz)
    let reconciles_before = operator.metric("keycloak_operator_reconciles_total", &[]).await?;
    testbed_command("apiserver-start").await?;
    let restarted = Instant::now();
    eprintln!(
        "kube-apiserver unavailable for {:.1}s: its stop took {:.1}s, then {:.1}s gone until ready again",
        stopping.elapsed().as_secs_f64(),
        (stopped - stopping).as_secs_f64(),
        stopped.elapsed().as_secs_f64()
    );
    for manifest in queued {
        apply(&bed.client, &client_kind(), &ns, manifest).await?;
    }
    for (i, phase) in expected.iter_mut().enumerate().skip(10).take(5) {
        apply(&bed.client, &client_kind(), &ns, client(i, prefix, "after")).await?;
        *phase = "after";
    }
    let changed = expected.iter().filter(|p| **p != "initial").count();

    // Then every change made it to Keycloak
    eventually(
        "every change to be applied in Keycloak",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            let held = bed
                .admin
                .get_json(&format!("/realms/{}/clients?first=0&max=1000", bed.realm))
                .await?
                .unwrap_or_default();
            let clients = held.as_array().cloned().unwrap_or_default();
            let applied = expected.iter().enumerate().all(|(i, phase)| {
                let want = json!([format!("https://app-{i}.example.com/{phase}/*")]);
                clients
                    .iter()
                    .any(|c| c["clientId"] == format!("{prefix}-{i}") && c["redirectUris"] == want)
            });
            Ok(applied.then_some(()))
        },
    )
    .await?;
    // And every client is Ready for its current spec
    wait_all_ready(&api, CLIENTS, Duration::from_secs(120)).await?;
    bed.realm_ready().await?;
    let converged = restarted.elapsed();
    // And the operator never exited
    if let Some(status) = operator.exit_status()? {
        bail!("the operator exited ({status}); see {}", operator.log_path().display());
    }
    // And the watches resumed without a storm: the changes are reconciled,
    // and the objects that did not change are not (a relist that announced
    // every object would add a reconcile of each; a loop, many)
    let reconciles = operator.metric("keycloak_operator_reconciles_total", &[]).await? - reconciles_before;
    eprintln!(
        "after the restart: converged in {:.1}s with {reconciles} reconciles \
         ({RESOURCES} resources, {changed} changed)",
        converged.as_secs_f64()
    );
    let bound = (RESOURCES + changed) as f64;
    assert!(
        reconciles < bound,
        "{reconciles} reconciles after the restart, bound {bound}: the watches resumed with a storm"
    );

    let names: Vec<String> = (0..CLIENTS).map(|i| format!("c{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    bed.teardown(&names).await
}
