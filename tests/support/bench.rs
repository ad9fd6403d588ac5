//! What the benchmarks against the test bed measure alike: how many objects
//! of a kind are Ready at their current generation, and the operator's
//! resident memory.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::api::{Api, DynamicObject, ListParams};

use crate::operator::{Operator, sum_metric};
use crate::resources::condition;

/// Field `name` (e.g. `VmRSS:`) of `/proc/<pid>/status`, in MiB (0 when
/// unreadable).
fn status_mib(pid: u32, name: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The resident memory of process `pid`, in MiB (0 when unreadable).
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// The CPU time process `pid` has used so far (user and system), in
/// seconds (0 when unreadable).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces: the fields counted start after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of proc(5), 12 and 13 after the name.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_second > 0 { ticks / per_second as f64 } else { 0.0 }
}

/// The resident memory of process `pid` by kind, in MiB: anonymous (heap,
/// stacks, the instance pool), file-backed (the binary's pages read so far,
/// which the kernel may drop at will) and shared memory.
pub fn rss_parts(pid: u32) -> String {
    format!(
        "anonymous {:.1} MiB, file {:.1} MiB, shared {:.1} MiB",
        status_mib(pid, "RssAnon:"),
        status_mib(pid, "RssFile:"),
        status_mib(pid, "RssShmem:")
    )
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

/// Deletes every object of `api`. A deletion of a thousand objects with
/// finalizers can outlast the API server's request timeout on two loaded
/// cores: the server then drops the connection, part of the work done. The
/// deletion is idempotent, so it is sent again, up to three times.
pub async fn delete_all(api: &Api<DynamicObject>) -> Result<()> {
    let mut attempt = 1;
    loop {
        match api.delete_collection(&Default::default(), &ListParams::default()).await {
            Ok(_) => return Ok(()),
            Err(error) if attempt < 3 => {
                eprintln!(
                    "deleting every {}: attempt {attempt} failed ({error}); again",
                    api.resource_url()
                );
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
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

/// The series of the Keycloak request counter that reached Keycloak (not
/// failed fast by an open circuit), as `(labels, value)`.
fn reached_keycloak(metrics: &str) -> impl Iterator<Item = (&str, f64)> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix("keycloak_operator_keycloak_requests_total{"))
        .filter(|series| !series.contains("code=\"circuit_open\""))
        .filter_map(|series| {
            let (labels, value) = series.rsplit_once(' ')?;
            Some((labels, value.parse::<f64>().ok()?))
        })
}

/// Keycloak requests counted in an operator's metrics that reached
/// Keycloak (not failed fast by an open circuit): those of the drift watch
/// (routes labelled `drift-watch:`) when `drift_watch`, the others otherwise.
pub fn keycloak_requests(metrics: &str, drift_watch: bool) -> f64 {
    reached_keycloak(metrics)
        .filter(|(labels, _)| labels.contains("route=\"drift-watch:") == drift_watch)
        .map(|(_, value)| value)
        .sum::<f64>()
        + 0.0
}

/// Keycloak requests that reached Keycloak on routes starting with
/// `prefix` (such as `/realms/{realm}`).
pub fn keycloak_requests_on(metrics: &str, prefix: &str) -> f64 {
    let route = format!("route=\"{prefix}");
    reached_keycloak(metrics)
        .filter(|(labels, _)| labels.contains(&route))
        .map(|(_, value)| value)
        .sum::<f64>()
        + 0.0
}

/// Requests to one realm's routes over a window of resyncs of one kind.
pub struct RealmResyncs {
    /// Reconciles of the kind that finished in the window.
    pub resyncs: f64,
    /// Keycloak requests to routes under `/realms/{realm}` (the drift
    /// watch's aside).
    pub requests: f64,
    /// Keycloak writes.
    pub writes: f64,
}

impl RealmResyncs {
    /// Counts over `window`, and prints the requests per resync.
    pub async fn measure(operator: &Operator, kind: &str, window: Duration) -> Result<Self> {
        let labels = [("kind", kind)];
        let reconciles = || operator.metric("keycloak_operator_reconciles_total", &labels);
        let before = operator.metrics().await?;
        let reconciles_before = reconciles().await?;
        tokio::time::sleep(window).await;
        let after = operator.metrics().await?;
        let resyncs = reconciles().await? - reconciles_before;
        let on_realm = |metrics: &str| keycloak_requests_on(metrics, "/realms/{realm}");
        let measured = RealmResyncs {
            resyncs,
            requests: on_realm(&after) - on_realm(&before),
            writes: writes(&after) - writes(&before),
        };
        println!(
            "{:.2} Keycloak requests per resync of the realm, over {resyncs} resyncs",
            measured.requests / resyncs.max(1.0)
        );
        Ok(measured)
    }

    /// Whether every resync made `each` requests, allowing for one resync in
    /// flight at either end of the window (counted in requests but not in
    /// resyncs, or the reverse).
    pub fn each_made(&self, each: f64) -> bool {
        (self.requests - each * self.resyncs).abs() <= each
    }

    /// Fails unless at least four resyncs happened, none wrote to Keycloak,
    /// and each made `each` requests.
    pub fn assert_only_read(&self, each: f64) {
        assert!(self.resyncs >= 4.0, "resyncs happened: {}", self.resyncs);
        assert_eq!(self.writes, 0.0, "no write to Keycloak in steady state");
        assert!(
            self.each_made(each),
            "{} Keycloak requests over {} resyncs: not {each} each",
            self.requests,
            self.resyncs
        );
    }
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
    /// Keycloak requests, the drift watch's aside.
    pub requests: f64,
    /// CPU seconds the operator used.
    pub cpu_seconds: f64,
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
        let pid = operator.pid().unwrap_or_default();
        let before = operator.metrics().await?;
        let cpu_before = cpu_seconds(pid);
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let after = operator.metrics().await?;
        let cpu = cpu_seconds(pid) - cpu_before;
        let labels = [("kind", kind)];
        let delta = |name: &str| sum_metric(&after, name, &labels) - sum_metric(&before, name, &labels);
        Ok(SteadyState {
            seconds: started.elapsed().as_secs_f64(),
            reconciles: delta("keycloak_operator_reconciles_total"),
            busy: delta("keycloak_operator_reconcile_duration_seconds_sum"),
            in_keycloak: delta("keycloak_operator_reconcile_keycloak_seconds_sum"),
            writes: writes(&after) - writes(&before),
            requests: keycloak_requests(&after, false) - keycloak_requests(&before, false),
            cpu_seconds: cpu,
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
        println!(
            "  Keycloak requests per reconcile {:.2}, writes in steady state: {}",
            self.requests / self.reconciles.max(1.0),
            self.writes
        );
        println!(
            "  CPU {:.2} s per 1,000 reconciles",
            1000.0 * self.cpu_seconds / self.reconciles.max(1.0)
        );
        println!("  operator RSS: {:.0} MiB", self.rss_mib);
    }
}
