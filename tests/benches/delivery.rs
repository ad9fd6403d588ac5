//! Component delivery against the test bed's real registry, API server and
//! Keycloak (`make bench`; needs `make testbed-up`). Prints:
//! - the time from a changed digest in a `ReconcilerComponent` to the new
//!   version serving (its status says so) and to every realm reconciled by
//!   it, for a version already in the registry but never pulled (each
//!   round a component of its own: a custom section makes the bytes
//!   differ, so pull and compile are both paid);
//! - the same for a rollback to the version replaced (no pull, no compile);
//! - the time from starting the operator to its first reconcile, with a
//!   warm compile cache and a declared version in its local store.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::future::try_join_all;
use keycloak_operator_e2e::operator::{Component, Operator, OperatorOptions, sum_metric};
use keycloak_operator_e2e::registry::push_file;
use keycloak_operator_e2e::resources::{apply, component_kind, delete, get, install_crds, keycloak, realm, realm_kind};
use keycloak_operator_e2e::testbed::{TestNamespace, kube_client, unique_name};
use kube::Client;
use serde_json::{Value, json};

const REALMS: usize = 20;
const ROUNDS: usize = 5;
const KIND: &str = "keycloak.wasmop.dev/KeycloakRealm";

fn declaration(name: &str, label: &(String, String), oci: &str) -> Value {
    json!({
        "apiVersion": "keycloak.wasmop.dev/v1alpha1",
        "kind": "ReconcilerComponent",
        "metadata": {"name": name, "labels": {&label.0: &label.1}},
        "spec": {"kind": KIND, "oci": oci, "grants": ["keycloak-admin", "read-secrets"]},
    })
}

/// The component with a custom section appended: the same code, another
/// digest, so nothing about it is cached anywhere.
fn variant(component: Component, round: usize) -> Result<PathBuf> {
    let mut bytes = std::fs::read(component.built())?;
    let name = b"bench-round";
    let payload = format!("{round}-{}", unique_name("v"));
    let body_len = 1 + name.len() + payload.len();
    anyhow::ensure!(body_len < 128, "section too long for a one-byte length");
    bytes.push(0); // custom section
    bytes.push(body_len as u8);
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload.as_bytes());
    let path = std::env::temp_dir().join(format!("delivery-bench-{}-{round}.wasm", std::process::id()));
    std::fs::write(&path, bytes)?;
    Ok(path)
}

async fn status(client: &Client, name: &str) -> Result<Value> {
    Ok(get(client, &component_kind(), "", name).await?.unwrap_or_default()["status"].clone())
}

/// Waits until `oci` serves; returns (until the status says so, until every
/// realm was reconciled by it).
async fn time_swap(
    client: &Client,
    ns: &str,
    name: &str,
    label: &(String, String),
    oci: &str,
) -> Result<(Duration, Duration)> {
    let started = Instant::now();
    apply(client, &component_kind(), "", declaration(name, label, oci)).await?;
    let (serving, digest) = loop {
        let status = status(client, name).await?;
        if status["serving"]["source"] == oci {
            break (started.elapsed(), status["serving"]["digest"].clone());
        }
        if let Some(failed) = status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Stalled" && c["status"] == "True"))
        {
            bail!("{oci} was refused: {failed}");
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("{oci} did not serve within 60s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    loop {
        let list = kube::Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, &realm_kind())
            .list(&Default::default())
            .await?;
        let done = list
            .items
            .iter()
            .filter(|r| r.data["status"]["reconciledBy"]["digest"] == digest)
            .count();
        if done == REALMS {
            return Ok((serving, started.elapsed()));
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("only {done} of {REALMS} realms were reconciled by {oci}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn options(ns: &str, label: Option<String>) -> OperatorOptions {
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "10m".into();
    options.component_label = label;
    options
}

#[tokio::main]
async fn main() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let namespace = TestNamespace::create(&client, "bench-delivery").await?;
    let ns = namespace.name().to_owned();
    keycloak(&client, &ns, "sso", None, &[]).await?;
    let mut operator = Operator::start(&options(&ns, None)).await?;
    let label = operator.component_label.clone();
    for i in 0..REALMS {
        let spec = json!({"deletionPolicy": "Delete"});
        apply(
            &client,
            &realm_kind(),
            &ns,
            realm(&format!("r{i}"), &unique_name("bench"), "sso", None, spec),
        )
        .await?;
    }
    try_join_all((0..REALMS).map(|i| {
        let (client, ns) = (client.clone(), ns.clone());
        async move { keycloak_operator_e2e::resources::wait_ready(&client, &realm_kind(), &ns, &format!("r{i}")).await }
    }))
    .await?;
    let name = unique_name("bench-realm");
    let repository = format!("bench/{}", unique_name("realm"));

    // A new version each round, already in the registry, never pulled.
    let (mut to_serving, mut to_all) = (Vec::new(), Vec::new());
    let mut references = Vec::new();
    for round in 0..ROUNDS {
        let component = if round % 2 == 0 {
            Component::RealmV2
        } else {
            Component::Realm
        };
        let file = variant(component, round)?;
        let oci = push_file(&file, &repository, &format!("r{round}")).await?;
        let _ = std::fs::remove_file(file);
        let (serving, all) = time_swap(&client, &ns, &name, &label, &oci).await?;
        to_serving.push(serving);
        to_all.push(all);
        references.push(oci);
    }
    // Rollbacks: back and forth between the last two versions.
    let (mut back_serving, mut back_all) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let oci = &references[references.len() - 2 + (round + 1) % 2];
        let (serving, all) = time_swap(&client, &ns, &name, &label, oci).await?;
        back_serving.push(serving);
        back_all.push(all);
    }
    let pulls = operator
        .metric("keycloak_operator_component_pulls_total", &[("result", "pulled")])
        .await?;

    // Start to first reconcile, with a warm compile cache and the declared
    // version in the local store.
    let mut starts = Vec::new();
    for _ in 0..3 {
        operator.terminate().await?;
        let started = Instant::now();
        operator = Operator::spawn(&options(&ns, Some(label.1.clone())), "operator").await?;
        let url = format!("{}/metrics", operator.http);
        let http = keycloak_operator_e2e::testbed::http_client();
        loop {
            if let Ok(response) = http.get(&url).send().await {
                let text = response.text().await.unwrap_or_default();
                if sum_metric(&text, "keycloak_operator_reconciles_total", &[("kind", KIND)]) >= 1.0 {
                    starts.push(started.elapsed());
                    break;
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("no reconcile within 60s of the start");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let restarted_pulls = operator.metric("keycloak_operator_component_pulls_total", &[]).await?;

    println!("component delivery, {REALMS} realms of the kind, median of {ROUNDS} rounds");
    println!(
        "  new version (pull + compile) -> serving: {} (max {}); every realm reconciled by it: {} (max {})",
        ms(median(to_serving.clone())),
        ms(to_serving.iter().copied().max().unwrap_or_default()),
        ms(median(to_all.clone())),
        ms(to_all.iter().copied().max().unwrap_or_default())
    );
    println!(
        "  rollback to the version replaced -> serving: {} (max {}); every realm reconciled by it: {} (max {})",
        ms(median(back_serving.clone())),
        ms(back_serving.iter().copied().max().unwrap_or_default()),
        ms(median(back_all.clone())),
        ms(back_all.iter().copied().max().unwrap_or_default())
    );
    println!("  pulls for {ROUNDS} new versions and {ROUNDS} rollbacks: {pulls}");
    println!(
        "  start -> first reconcile (warm compile cache, declared version from the local store): {} (runs: {})",
        ms(median(starts.clone())),
        starts.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
    );
    println!("  pulls after the restarts: {restarted_pulls}");

    delete(&client, &component_kind(), "", &name)
        .await
        .context("deleting the declaration")?;
    for i in 0..REALMS {
        delete(&client, &realm_kind(), &ns, &format!("r{i}")).await?;
    }
    let realms = kube::Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), &ns, &realm_kind());
    keycloak_operator_e2e::bench::wait_all_gone(&realms, Duration::from_secs(180)).await?;
    Ok(())
}
