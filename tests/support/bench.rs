//! What the benchmarks against the test bed measure alike: how many objects
//! of a kind are Ready at their current generation, and the operator's
//! resident memory.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::api::{Api, DynamicObject, ListParams};

use crate::operator::{Operator, sum_metric};
use crate::resources::condition;

/// The resident memory of process `pid`, in MiB (0 when unreadable).
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// How many objects are Ready for their current generation.
pub async fn ready_count(api: &Api<DynamicObject>) -> Result<usize> {
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|o| {
            let value = serde_json::to_value(o).unwrap_or_default();
            condition(&value, "Ready").is_some_and(|c| c["status"] == "True")
                && value["status"]["observedGeneration"] == value["metadata"]["generation"]
        })
        .count())
}

/// Waits until `expected` objects are Ready; returns how long that took.
pub async fn wait_all_ready(api: &Api<DynamicObject>, expected: usize, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let ready = ready_count(api).await?;
        if ready == expected {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!("only {ready} of {expected} became Ready within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until no object of `api` is left.
pub async fn wait_all_gone(api: &Api<DynamicObject>, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !api.list(&ListParams::default()).await?.items.is_empty() {
        if Instant::now() > deadline {
            bail!("objects were not deleted within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Keycloak writes (PUT, POST, DELETE) counted in an operator's metrics.
pub fn writes(metrics: &str) -> f64 {
    let requests = "keycloak_operator_keycloak_requests_total";
    let all: f64 = ["PUT", "POST", "DELETE"]
        .iter()
        .map(|m| sum_metric(metrics, requests, &[("method", m)]))
        .sum();
    // The drift watch turns a realm's admin events on once per leader (its
    // routes are labelled `drift-watch:`): setup, not a write for a resource.
    let setup: f64 = [
        "drift-watch:/realms/{realm}/events/config",
        "drift-watch:/realms/{realm}",
    ]
    .iter()
    .map(|route| sum_metric(metrics, requests, &[("method", "PUT"), ("route", route)]))
    .sum();
    all - setup
}

/// What an operator did over a steady-state window.
pub struct SteadyState {
    /// Length of the window, in seconds.
    pub seconds: f64,
    /// Reconciles of the kind.
    pub reconciles: f64,
    /// Seconds spent in those reconciles.
    pub busy: f64,
    /// Of which waiting for Keycloak.
    pub in_keycloak: f64,
    /// Keycloak writes (must be 0 when nothing changes).
    pub writes: f64,
    /// The operator's resident memory at the end, in MiB.
    pub rss_mib: f64,
}

impl SteadyState {
    /// Measures `operator` over `window`, once `expected` objects of `api`
    /// are Ready and the first pass has settled; `kind` is `group/Kind`.
    pub async fn measure(
        operator: &Operator,
        api: &Api<DynamicObject>,
        expected: usize,
        kind: &str,
        window: Duration,
    ) -> Result<Self> {
        wait_all_ready(api, expected, Duration::from_secs(300)).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = operator.metrics().await?;
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let after = operator.metrics().await?;
        let labels = [("kind", kind)];
        let delta = |name: &str| sum_metric(&after, name, &labels) - sum_metric(&before, name, &labels);
        Ok(SteadyState {
            seconds: started.elapsed().as_secs_f64(),
            reconciles: delta("keycloak_operator_reconciles_total"),
            busy: delta("keycloak_operator_reconcile_duration_seconds_sum"),
            in_keycloak: delta("keycloak_operator_reconcile_keycloak_seconds_sum"),
            writes: writes(&after) - writes(&before),
            rss_mib: operator.pid().map_or(0.0, rss_mib),
        })
    }

    /// Prints the figures, one line each.
    pub fn print(&self) {
        println!(
            "steady state over {:.0}s: {:.0} reconciles = {:.0} reconciles/s",
            self.seconds,
            self.reconciles,
            self.reconciles / self.seconds
        );
        println!(
            "  mean reconcile {:.1} ms, of which in Keycloak calls {:.1} ms ({:.0}%)",
            1000.0 * self.busy / self.reconciles.max(1.0),
            1000.0 * self.in_keycloak / self.reconciles.max(1.0),
            100.0 * self.in_keycloak / self.busy.max(f64::EPSILON)
        );
        println!("  Keycloak writes in steady state: {}", self.writes);
        println!("  operator RSS: {:.0} MiB", self.rss_mib);
    }
}
