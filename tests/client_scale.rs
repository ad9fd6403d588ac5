//! 300 clients applied at once against the real Keycloak all become Ready.
//! (`make bench` measures the same with figures: `tests/benches/clients.rs`.)

mod client_common;

use std::time::{Duration, Instant};

use anyhow::Result;
use client_common::{REALM, RealmBed, client_options, scale_client};
use futures::stream::{self, StreamExt, TryStreamExt};
use keycloak_operator_e2e::bench::{wait_all_gone, wait_all_ready};
use keycloak_operator_e2e::operator::Operator;
use keycloak_operator_e2e::resources::{apply, client_kind, delete, realm_kind, wait_gone};
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::json;

const CLIENTS: usize = 300;

#[tokio::test]
async fn three_hundred_clients_applied_at_once_all_become_ready() -> Result<()> {
    let bed = RealmBed::create("client-scale", json!({})).await?;
    let ns = bed.ns().to_owned();
    let mut options = client_options(&[&ns], "10m");
    options.extra = "workers: 16\n".into();
    let _operator = Operator::start(&options).await?;
    bed.realm_ready().await?;
    let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), &ns, &client_kind());

    // When 300 confidential clients are applied at once
    let started = Instant::now();
    stream::iter(0..CLIENTS)
        .map(|i| {
            let (client, ns) = (bed.client.clone(), ns.clone());
            async move {
                let manifest = scale_client(i, "app");
                apply(&client, &client_kind(), &ns, manifest).await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;

    // Then every one becomes Ready
    wait_all_ready(&api, CLIENTS, Duration::from_secs(1200)).await?;
    eprintln!("{CLIENTS} clients Ready after {:.1}s", started.elapsed().as_secs_f64());

    // And Keycloak holds all of them, each owned by its resource
    let held = bed
        .admin
        .get_json(&format!("/realms/{}/clients?first=0&max=1000", bed.realm))
        .await?
        .unwrap_or_default();
    let owned = held
        .as_array()
        .map(|clients| {
            clients
                .iter()
                .filter(|c| c["attributes"]["keycloak.wasmop.dev/owner-kind"] == "KeycloakClient")
                .count()
        })
        .unwrap_or_default();
    assert_eq!(owned, CLIENTS);

    // Clean up the documented fast way: the realm goes first, with its
    // clients; the client resources then go without cleanup.
    delete(&bed.client, &realm_kind(), &ns, REALM).await?;
    wait_gone(&bed.client, &realm_kind(), &ns, REALM, Duration::from_secs(120)).await?;
    api.delete_collection(&Default::default(), &ListParams::default())
        .await?;
    wait_all_gone(&api, Duration::from_secs(300)).await?;
    Ok(())
}
