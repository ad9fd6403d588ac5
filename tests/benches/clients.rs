//! 300 KeycloakClients applied at once against the test bed's real Keycloak.
//!
//! Run with `make bench` (needs `make testbed-up`). Prints:
//! - how long 300 confidential clients (each with a redirect URI, a protocol
//!   mapper and a credentials Secret) take to become Ready, in clients/s;
//! - steady-state reconciles per second with every client resynced as fast
//!   as the operator can, the share of that time spent waiting for Keycloak,
//!   and the Keycloak writes it sent (must be 0);
//! - the operator's resident memory.

#[path = "../client_common.rs"]
mod client_common;

use std::time::{Duration, Instant};

use anyhow::Result;
use client_common::{REALM, RealmBed, client_options, scale_client};
use futures::stream::{self, StreamExt, TryStreamExt};
use keycloak_operator_e2e::bench::writes;
use keycloak_operator_e2e::bench::{SteadyState, wait_all_gone, wait_all_ready};
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{apply, client_kind, realm_kind, wait_gone};
use keycloak_operator_e2e::testbed::unique_name;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::json;

const CLIENTS: usize = 300;
const WINDOW: Duration = Duration::from_secs(30);

fn options(ns: &str, resync: &str) -> OperatorOptions {
    let mut options = client_options(&[ns], resync);
    options.extra = "workers: 16\n".into();
    options
}

#[tokio::main]
async fn main() -> Result<()> {
    let bed = RealmBed::create("bench-clients", json!({})).await?;
    let ns = bed.ns().to_owned();
    let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), &ns, &client_kind());
    let prefix = unique_name("app");

    // Creation: the realm first, then 300 clients applied at once.
    let creating = Operator::start(&options(&ns, "10m")).await?;
    bed.realm_ready().await?;
    let before_creation = creating.metrics().await?;
    let applied = Instant::now();
    stream::iter(0..CLIENTS)
        .map(|i| {
            let (client, ns, prefix) = (bed.client.clone(), ns.clone(), prefix.clone());
            async move {
                let manifest = scale_client(i, &prefix);
                apply(&client, &client_kind(), &ns, manifest).await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let created = wait_all_ready(&api, CLIENTS, Duration::from_secs(1200)).await?;
    let creation = applied.elapsed().max(created);
    let created_metrics = creating.metrics().await?;
    drop(creating);

    // Steady state: a fresh operator resyncing every client as often as it
    // can (a period shorter than one pass), with nothing to change.
    let steady = Operator::start(&options(&ns, "100ms")).await?;
    let steady_state =
        SteadyState::measure(&steady, &api, CLIENTS, "keycloak.wasmop.dev/KeycloakClient", WINDOW).await?;

    println!(
        "clients benchmark: {CLIENTS} confidential KeycloakClients in one realm of the test bed's Keycloak, 16 workers"
    );
    println!(
        "creation: {CLIENTS} clients Ready (with their Secrets) {:.1}s after applying them = {:.1} clients/s ({} Keycloak writes)",
        creation.as_secs_f64(),
        CLIENTS as f64 / creation.as_secs_f64(),
        writes(&created_metrics) - writes(&before_creation)
    );
    steady_state.print();
    drop(steady);

    // Clean up the fast documented way: the realm goes with its clients,
    // then the client resources go without cleanup.
    let cleaning = Operator::start(&options(&ns, "10m")).await?;
    let realms: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), &ns, &realm_kind());
    realms.delete(REALM, &Default::default()).await?;
    wait_gone(&bed.client, &realm_kind(), &ns, REALM, Duration::from_secs(120)).await?;
    api.delete_collection(&Default::default(), &ListParams::default())
        .await?;
    wait_all_gone(&api, Duration::from_secs(300)).await?;
    drop(cleaning);
    Ok(())
}
