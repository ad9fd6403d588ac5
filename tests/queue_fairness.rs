//! One kind flooding its queue does not starve the others: each kind has its
//! own queue and its own workers, so a change of a realm made while
//! hundreds of resources of another kind wait is served about as fast as on
//! an idle operator.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use keycloak_operator_e2e::operator::{Component, Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{
    apply, chaos_kind, install_crds, keycloak, keycloak_kind, realm, realm_kind, wait_ready,
};
use keycloak_operator_e2e::testbed::{TestNamespace, TestRealm, eventually, kube_client, testbed, unique_name};
use kube::Client;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How many `ChaosProbe`s flood their kind's queue.
const FLOOD: usize = 300;
/// How long the slow Keycloak sits on each request before passing it on.
const DELAY: Duration = Duration::from_secs(2);
/// The label of the flooded kind in the host's metrics.
const CHAOS: &str = "test.wasmop.dev/ChaosProbe";

/// A TCP proxy in front of the real Keycloak that holds every chunk a
/// client sends for `delay` before forwarding it: a Keycloak that answers
/// correctly, but slowly, so a reconcile waits on I/O (not on the CPU, which
/// the realm's own reconcile needs too). Stops accepting when dropped.
struct SlowKeycloak {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl SlowKeycloak {
    async fn start(upstream: String, delay: Duration) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_keycloak, mut to_keycloak) = outbound.into_split();
                    let requests = async {
                        let mut buffer = vec![0u8; 64 * 1024];
                        while let Ok(n @ 1..) = from_client.read(&mut buffer).await {
                            tokio::time::sleep(delay).await;
                            if to_keycloak.write_all(&buffer[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = to_keycloak.shutdown().await;
                    };
                    let answers = async {
                        let _ = tokio::io::copy(&mut from_keycloak, &mut to_client).await;
                        let _ = to_client.shutdown().await;
                    };
                    tokio::join!(requests, answers);
                });
            }
        });
        Ok(SlowKeycloak { url, task })
    }
}

impl Drop for SlowKeycloak {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn probe(name: &str, realm_name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "test.wasmop.dev/v1",
        "kind": "ChaosProbe",
        "metadata": {"name": name},
        // `ok`: one GET of the realm, through the slow Keycloak.
        "spec": {"keycloakRef": {"name": "slow"}, "realmName": realm_name, "mode": "ok"},
    })
}

/// Changes the realm's display name and measures how long the realm takes
/// to be Ready for it: a reconcile that reads and rewrites the realm, not a
/// realm creation, whose time on the shared bed depends mostly on how busy
/// Keycloak is.
async fn time_to_ready(client: &Client, ns: &str, realm_name: &str, display_name: &str) -> Result<Duration> {
    let started = Instant::now();
    apply(
        client,
        &realm_kind(),
        ns,
        realm(
            "shop",
            realm_name,
            "sso",
            None,
            json!({"deletionPolicy": "Delete", "displayName": display_name}),
        ),
    )
    .await?;
    wait_ready(client, &realm_kind(), ns, "shop").await?;
    Ok(started.elapsed())
}

#[tokio::test]
async fn a_realm_is_served_at_its_usual_pace_while_another_kind_floods_its_queue() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "fairness").await?;
    let ns = ns.name();
    let upstream = testbed()
        .keycloak_url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let slow = SlowKeycloak::start(upstream, DELAY).await?;

    // Given an operator serving realms and ChaosProbes (8 workers per kind,
    // the default), the realms on the bed's Keycloak, the probes on a
    // Keycloak that takes DELAY to answer each request
    keycloak(&client, ns, "sso", None, &[]).await?;
    keycloak(&client, ns, "slow", Some(&slow.url), &[]).await?;
    // (the realm's guard before the operator: dropped after it is gone)
    let realm_name = unique_name("shop");
    let _realm_cleanup = TestRealm::cleanup(&realm_name);
    let mut options = OperatorOptions::standard(&[ns]);
    options.components.push((Component::Chaos, &["keycloak-admin"]));
    // Only the queues are under test: no admin-event polling of the probes'
    // hundreds of realms besides.
    options.keycloak = vec!["driftPollInterval: 0s".into()];
    let operator = Operator::start(&options).await?;
    // (idle: nothing else in the queues, the Keycloaks' own reconciles done)
    for name in ["sso", "slow"] {
        wait_ready(&client, &keycloak_kind(), ns, name).await?;
    }

    // And a realm, Ready, and the time a change of it takes to be Ready
    // while the operator is idle
    time_to_ready(&client, ns, &realm_name, "Shop").await?;
    let idle = time_to_ready(&client, ns, &realm_name, "Shop (idle)").await?;

    // When hundreds of ChaosProbes flood their kind's queue (each a realm
    // of its own: one realm has one owner)
    let flood = unique_name("fl");
    futures::stream::iter(0..FLOOD)
        .map(|i| {
            let client = client.clone();
            let flood = flood.clone();
            async move {
                apply(
                    &client,
                    &chaos_kind(),
                    ns,
                    probe(&format!("p{i}"), &format!("{flood}-{i}")),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .context("applying the flood")?;
    eventually(
        "the ChaosProbe queue to be flooded",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            Ok((operator
                .metric("keycloak_operator_queue_depth", &[("kind", CHAOS)])
                .await?
                >= 100.0)
                .then_some(()))
        },
    )
    .await?;

    // And the realm is changed during the flood
    let busy = time_to_ready(&client, ns, &realm_name, "Shop (busy)").await?;
    let depth = operator
        .metric("keycloak_operator_queue_depth", &[("kind", CHAOS)])
        .await?;
    let probes_reconciled = operator
        .metric("keycloak_operator_reconciles_total", &[("kind", CHAOS)])
        .await?;

    // Then the change is Ready within a bound close to its idle time
    let bound = idle * 3 + Duration::from_secs(5);
    println!(
        "realm change Ready: idle {:.2}s, during the flood {:.2}s (bound {:.2}s); ChaosProbe queue depth then {depth}, \
         ChaosProbe reconciles done {probes_reconciled} of {FLOOD}",
        idle.as_secs_f64(),
        busy.as_secs_f64(),
        bound.as_secs_f64(),
    );
    assert!(
        busy <= bound,
        "a realm change took {busy:?} during the flood, {idle:?} idle: the flooded kind starved it"
    );
    // And the flooded kind was still flooded at that moment: the realm did
    // not just wait for the flood to drain
    assert!(
        depth >= 50.0,
        "the ChaosProbe queue held only {depth} keys when the realm was Ready"
    );
    assert!(
        probes_reconciled < FLOOD as f64,
        "all {FLOOD} probes were already reconciled"
    );
    Ok(())
}
