//! What the benchmarks against the test bed measure alike: how many objects
//! of a kind are Ready at their current generation, and the operator's
//! resident memory.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::api::{Api, DynamicObject, ListParams};

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
