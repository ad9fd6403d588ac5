//! Confidential KeycloakClients spread over ten realms, applied at once
//! against the test bed's real Keycloak, beside the floor: a bare script
//! (`tests/clients_floor.rs`) producing the same clients and Secrets with the
//! fewest calls, at the same concurrency, against the same Keycloak, in the
//! same run.
//!
//! Run with `make bench` (needs `make testbed-up`). `CLIENT_SCALES` picks the
//! sizes (default `100,1000`). For each size it prints:
//! - creation: apply → all Ready with their Secrets, the floor's time and
//!   the ratio; Keycloak requests and writes per resource, the floor's; CPU
//!   seconds per 1,000 reconciles; the operator's resident memory;
//! - drift: the drift watch's requests per realm per poll when nothing
//!   changes, and how long a change made by hand in Keycloak stays;
//! - steady state: every client resynced as fast as the operator can, its
//!   Keycloak requests per reconcile and writes (must be 0);
//! - memory over time: an operator that serves them, sees them all deleted,
//!   serves them again and sees them deleted again: its RSS after each step.

#[path = "../client_common.rs"]
mod client_common;
#[path = "../clients_floor.rs"]
mod clients_floor;
#[path = "../scale_common.rs"]
mod scale_common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use client_common::client_options;
use keycloak_operator_e2e::bench::{
    SteadyState, cpu_seconds, keycloak_requests, rss_mib, wait_all_gone, wait_all_ready, writes,
};
use keycloak_operator_e2e::operator::{Operator, OperatorOptions, sum_metric};
use keycloak_operator_e2e::testbed::unique_name;
use kube::api::ListParams;
use reqwest::Method;
use scale_common::{APPLY_CONCURRENCY, REALMS, ScaleBed};
use serde_json::json;

/// The operator's workers for clients, and so the floor's concurrency.
const WORKERS: usize = 16;
/// The drift watch's poll interval (the default).
const POLL: Duration = Duration::from_secs(5);
const DRIFT_WINDOW: Duration = Duration::from_secs(30);
const STEADY_WINDOW: Duration = Duration::from_secs(30);
const KIND: &str = "keycloak.wasmop.dev/KeycloakClient";

fn options(ns: &str, resync: &str) -> OperatorOptions {
    let mut options = client_options(&[ns], resync);
    options.extra = format!("workers: {WORKERS}\n");
    options
}

/// The figures of one size.
struct Figures {
    clients: usize,
    creation: f64,
    floor: f64,
    requests_per_client: f64,
    floor_requests_per_client: f64,
    writes_per_client: f64,
    reconciles_per_client: f64,
    cpu_per_1000_creating: f64,
    drift_requests_per_realm_poll: f64,
    other_requests_idle: f64,
    reverted_after: f64,
    steady_requests_per_reconcile: f64,
    steady_writes: f64,
    cpu_per_1000_steady: f64,
    rss_fresh: f64,
    rss_serving: f64,
    rss_soak: Vec<(String, f64)>,
    by_route: Vec<(String, f64)>,
}

/// Keycloak requests between two scrapes by method and route, most first.
fn requests_by_route(after: &str, before: &str) -> Vec<(String, f64)> {
    let totals = |text: &str| {
        let mut totals = std::collections::BTreeMap::<String, f64>::new();
        for line in text.lines() {
            let Some(series) = line.strip_prefix("keycloak_operator_keycloak_requests_total{") else {
                continue;
            };
            let label = |name: &str| {
                series
                    .split_once(&format!("{name}=\""))
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(value, _)| value.to_owned())
                    .unwrap_or_default()
            };
            let value = series
                .rsplit_once(' ')
                .and_then(|(_, v)| v.parse::<f64>().ok())
                .unwrap_or_default();
            *totals
                .entry(format!("{} {}", label("method"), label("route")))
                .or_default() += value;
        }
        totals
    };
    let before = totals(before);
    let mut delta: Vec<(String, f64)> = totals(after)
        .into_iter()
        .map(|(route, n)| {
            let was = before.get(&route).copied().unwrap_or_default();
            (route, n - was)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    delta.sort_by(|a, b| b.1.total_cmp(&a.1));
    delta
}

async fn measure(clients: usize) -> Result<Figures> {
    let bed = ScaleBed::create("bench-clients").await?;
    let ns = bed.ns().to_owned();
    let api = bed.clients();
    let prefix = unique_name("app");

    // A fresh operator serving the ten realms, nothing else yet.
    let creating = Operator::start(&options(&ns, "30m")).await?;
    let pid = creating.pid().context("operator pid")?;
    bed.realms_ready().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_fresh = rss_mib(pid);

    // The floor, in realms of its own, while the operator idles.
    let floor_realms: Vec<String> = (0..REALMS).map(|i| unique_name(&format!("floor{i}"))).collect();
    clients_floor::create_realms(&bed.admin, &floor_realms).await?;
    let floor = clients_floor::run(
        &bed.admin,
        &bed.client,
        &ns,
        &floor_realms,
        clients,
        &unique_name("floor"),
        WORKERS,
    )
    .await?;
    clients_floor::clean_up(&bed.admin, &bed.client, &ns, &floor_realms).await?;

    // Creation: every client applied at once.
    let before = creating.metrics().await?;
    let cpu_before = cpu_seconds(pid);
    let applied = Instant::now();
    bed.apply_clients(clients, &prefix).await?;
    wait_all_ready(&api, clients, Duration::from_secs(1800)).await?;
    let creation = applied.elapsed().as_secs_f64();
    let cpu_creating = cpu_seconds(pid) - cpu_before;
    let created = creating.metrics().await?;
    let rss_serving = rss_mib(pid);
    let delta = |name: &str| sum_metric(&created, name, &[]) - sum_metric(&before, name, &[]);
    let reconciles = delta("keycloak_operator_reconciles_total");
    let requests = keycloak_requests(&created, false) - keycloak_requests(&before, false);
    let by_route = requests_by_route(&created, &before);

    // Drift, nothing changing: only the drift watch asks Keycloak anything.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_before = creating.metrics().await?;
    tokio::time::sleep(DRIFT_WINDOW).await;
    let idle_after = creating.metrics().await?;
    let polls = DRIFT_WINDOW.as_secs_f64() / POLL.as_secs_f64();
    let drift_requests = keycloak_requests(&idle_after, true) - keycloak_requests(&idle_before, true);
    let other_requests_idle = keycloak_requests(&idle_after, false) - keycloak_requests(&idle_before, false);
    // A redirect URI changed by hand in the admin console's way.
    let reverted_after = revert_time(&bed, &prefix).await?;
    drop(creating);

    // Steady state: a fresh operator resyncing every client as often as it
    // can (a period shorter than one pass), with nothing to change.
    let steady_operator = Operator::start(&options(&ns, "100ms")).await?;
    let steady = SteadyState::measure(&steady_operator, &api, clients, KIND, STEADY_WINDOW).await?;
    drop(steady_operator);

    // Memory over time: serve them, see them deleted, twice.
    let soaking = Operator::start(&options(&ns, "30m")).await?;
    let soak_pid = soaking.pid().context("operator pid")?;
    let mut rss_soak = Vec::new();
    wait_all_ready(&api, clients, Duration::from_secs(600)).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    rss_soak.push(("serving after start".to_owned(), rss_mib(soak_pid)));
    for round in 1..=2 {
        api.delete_collection(&Default::default(), &ListParams::default())
            .await?;
        wait_all_gone(&api, Duration::from_secs(900)).await?;
        // One trim interval of the host, and a little more.
        tokio::time::sleep(Duration::from_secs(20)).await;
        rss_soak.push((format!("all deleted ({round})"), rss_mib(soak_pid)));
        if round == 1 {
            bed.apply_clients(clients, &prefix).await?;
            wait_all_ready(&api, clients, Duration::from_secs(1800)).await?;
            rss_soak.push(("serving again".to_owned(), rss_mib(soak_pid)));
        }
    }
    bed.teardown().await?;
    drop(soaking);

    let n = clients as f64;
    Ok(Figures {
        clients,
        creation,
        floor: floor.elapsed.as_secs_f64(),
        requests_per_client: requests / n,
        floor_requests_per_client: floor.keycloak_requests as f64 / n,
        writes_per_client: (writes(&created) - writes(&before)) / n,
        reconciles_per_client: reconciles / n,
        cpu_per_1000_creating: 1000.0 * cpu_creating / reconciles.max(1.0),
        drift_requests_per_realm_poll: drift_requests / (REALMS as f64 * polls),
        other_requests_idle,
        reverted_after,
        steady_requests_per_reconcile: steady.requests / steady.reconciles.max(1.0),
        steady_writes: steady.writes,
        cpu_per_1000_steady: 1000.0 * steady.cpu_seconds / steady.reconciles.max(1.0),
        rss_fresh,
        rss_serving,
        rss_soak,
        by_route,
    })
}

/// Changes client 0's redirect URIs in Keycloak by hand and returns how many
/// seconds pass until the operator has put them back.
async fn revert_time(bed: &ScaleBed, prefix: &str) -> Result<f64> {
    let realm = &bed.realms[0];
    let list = bed
        .admin
        .get_json(&format!("/realms/{realm}/clients?clientId={prefix}-0"))
        .await?
        .context("the clients list")?;
    let mut client = list.get(0).cloned().context("client 0 in Keycloak")?;
    let id = client["id"].as_str().context("client id")?.to_owned();
    let wanted = client["redirectUris"].clone();
    client["redirectUris"] = json!(["https://changed-by-hand.example.com/*"]);
    let path = format!("/realms/{realm}/clients/{id}");
    let response = bed.admin.request(Method::PUT, &path, Some(&client)).await?;
    if !response.status().is_success() {
        bail!("changing client 0 by hand: {}", response.status());
    }
    let changed = Instant::now();
    while changed.elapsed() < Duration::from_secs(120) {
        let held = bed.admin.get_json(&path).await?.context("client 0")?;
        if held["redirectUris"] == wanted {
            return Ok(changed.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("a change made by hand was not reverted within 120 s")
}

fn print(f: &Figures) {
    let n = f.clients;
    println!(
        "clients benchmark: {n} confidential KeycloakClients in {REALMS} realms, {WORKERS} workers, applied {APPLY_CONCURRENCY} at a time"
    );
    println!(
        "  creation: all Ready with their Secrets {:.1}s after applying them ({:.1} clients/s)",
        f.creation,
        n as f64 / f.creation
    );
    println!(
        "  floor (create, read the secret, write the Secret; {WORKERS} at a time): {:.1}s; ratio {:.2}",
        f.floor,
        f.creation / f.floor
    );
    println!(
        "  Keycloak requests per client: {:.2} (floor {:.2}); writes per client {:.2}; reconciles per client {:.2}",
        f.requests_per_client, f.floor_requests_per_client, f.writes_per_client, f.reconciles_per_client
    );
    let routes: Vec<String> = f
        .by_route
        .iter()
        .map(|(route, count)| format!("{route} {:.2}", count / n as f64))
        .collect();
    println!("  per client while creating: {}", routes.join(", "));
    println!(
        "  CPU {:.2} s per 1,000 reconciles while creating",
        f.cpu_per_1000_creating
    );
    println!(
        "  drift watch at rest: {:.2} Keycloak requests per realm per poll; other requests in {}s: {}",
        f.drift_requests_per_realm_poll,
        DRIFT_WINDOW.as_secs(),
        f.other_requests_idle
    );
    println!(
        "  a redirect URI changed by hand was put back after {:.1}s",
        f.reverted_after
    );
    println!(
        "  steady state (resync as fast as possible): {:.2} Keycloak requests per reconcile, {} writes, CPU {:.2} s per 1,000 reconciles",
        f.steady_requests_per_reconcile, f.steady_writes, f.cpu_per_1000_steady
    );
    println!(
        "  operator RSS: {:.0} MiB fresh (realms only), {:.0} MiB serving {n} clients",
        f.rss_fresh, f.rss_serving
    );
    let soak: Vec<String> = f
        .rss_soak
        .iter()
        .map(|(step, mib)| format!("{step} {mib:.0} MiB"))
        .collect();
    println!("  memory over time (one operator): {}", soak.join(", "));
}

#[tokio::main]
async fn main() -> Result<()> {
    let scales = std::env::var("CLIENT_SCALES").unwrap_or_else(|_| "100,1000".into());
    let mut all = Vec::new();
    for scale in scales.split(',') {
        let clients: usize = scale
            .trim()
            .parse()
            .with_context(|| format!("CLIENT_SCALES: {scale:?}"))?;
        let figures = measure(clients).await?;
        print(&figures);
        all.push(figures);
    }
    if let [small, .., large] = all.as_slice() {
        let growth = |a: f64, b: f64| if a > 0.0 { b / a } else { f64::NAN };
        println!(
            "growth {} → {} clients: creation ×{:.1}, floor ×{:.1}, requests per client ×{:.2}, RSS serving ×{:.2}, drift requests per realm per poll ×{:.2}",
            small.clients,
            large.clients,
            growth(small.creation, large.creation),
            growth(small.floor, large.floor),
            growth(small.requests_per_client, large.requests_per_client),
            growth(small.rss_serving, large.rss_serving),
            growth(small.drift_requests_per_realm_poll, large.drift_requests_per_realm_poll),
        );
    }
    Ok(())
}
