//! What the fault stories need besides the bed: randomness that can be
//! replayed, a kill that lands while a batch is half done, and the Keycloak
//! requests an operator made, read back from its log.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject};

use crate::bench::ready_count;
use crate::operator::Operator;

/// A small seeded generator (splitmix64): the seed is printed, and
/// `FAULT_SEED=<seed>` replays the same kill points.
pub struct Dice {
    state: u64,
}

impl Dice {
    /// Seeded from `FAULT_SEED`, or from the clock; prints the seed.
    pub fn from_env() -> Self {
        let seed = std::env::var("FAULT_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        println!("fault seed {seed} (replay with FAULT_SEED={seed})");
        Dice { state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high.saturating_sub(low) + 1)
    }
}

/// Seconds since the Unix epoch, as the operator's log stamps them.
pub fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Where a kill landed.
#[derive(Debug, Clone, Copy)]
pub struct Kill {
    /// Objects Ready when the signal was sent.
    pub ready: usize,
    /// When, in seconds since the epoch.
    pub at: f64,
    /// When, on the test's monotonic clock.
    pub instant: Instant,
}

/// Waits until at least `target` objects of `api` are Ready, lets `jitter`
/// pass (so the kill lands anywhere inside a reconcile), then SIGKILLs
/// `operator`. Fails when the batch was already complete: the kill would
/// prove nothing.
pub async fn kill_mid_batch(
    operator: &mut Operator,
    api: &Api<DynamicObject>,
    target: usize,
    jitter: Duration,
    total: usize,
) -> Result<Kill> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while ready_count(api).await? < target {
        if Instant::now() > deadline {
            bail!("fewer than {target} objects became Ready within 300s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(jitter).await;
    let (at, instant) = (epoch_now(), Instant::now());
    operator.kill().await?;
    let ready = ready_count(api).await?;
    if ready >= total {
        bail!("all {total} were Ready before the kill landed; it proves nothing (see the seed above)");
    }
    Ok(Kill { ready, at, instant })
}

/// One Keycloak request an operator logged (`Keycloak request` lines of
/// `keycloak::connection`, logged at debug when the answer came).
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    /// When it was sent, in seconds since the epoch.
    pub sent: f64,
    /// When it was answered (or failed), in seconds since the epoch.
    pub answered: f64,
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// HTTP status, 0 when no answer came.
    pub status: u16,
}

impl LoggedRequest {
    /// A PUT, POST or DELETE.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "PUT" | "POST" | "DELETE")
    }
}

/// The Keycloak requests in an operator's log, in the log's order.
pub fn keycloak_requests(log: &Path) -> Result<Vec<LoggedRequest>> {
    let text = std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    Ok(text
        .lines()
        .map(strip_ansi)
        .filter(|line| line.contains("connection: Keycloak request "))
        .filter_map(|line| parse_request(&line))
        .collect())
}

fn parse_request(line: &str) -> Option<LoggedRequest> {
    let answered = parse_timestamp(line.split_whitespace().next()?)?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_owned())
    };
    let elapsed_ms: f64 = field("elapsed_ms")?.parse().ok()?;
    Some(LoggedRequest {
        sent: answered - elapsed_ms / 1000.0,
        answered,
        method: field("method")?,
        route: field("route")?,
        status: field("status")?.parse().ok()?,
    })
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An SGR sequence: ESC '[' ... 'm'.
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `2026-12-01T18:51:18.158573Z` as seconds since the epoch.
fn parse_timestamp(stamp: &str) -> Option<f64> {
    let stamp = stamp.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let mut time = time.split(':');
    let (hour, minute) = (time.next()?.parse::<i64>().ok()?, time.next()?.parse::<i64>().ok()?);
    let second = time.next()?.parse::<f64>().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3_600 + minute * 60) as f64 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_request_is_read_back() {
        let line = "\u{1b}[2m2026-12-01T18:51:18.500000Z\u{1b}[0m \u{1b}[34mDEBUG\u{1b}[0m \
                    \u{1b}[2mkeycloak_operator::keycloak::connection\u{1b}[0m\u{1b}[2m:\u{1b}[0m Keycloak request \
                    \u{1b}[3mkeycloak\u{1b}[0m\u{1b}[2m=\u{1b}[0mns/sso \u{1b}[3mmethod\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"POST\" \
                    \u{1b}[3mroute\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"/realms/{realm}/clients\" \
                    \u{1b}[3mstatus\u{1b}[0m\u{1b}[2m=\u{1b}[0m201 \u{1b}[3melapsed_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m250";
        let request = parse_request(&strip_ansi(line)).expect("parsed");
        assert_eq!(request.method, "POST");
        assert_eq!(request.route, "/realms/{realm}/clients");
        assert_eq!(request.status, 201);
        assert!(
            (request.answered - 1_796_151_078.5).abs() < 1e-3,
            "{}",
            request.answered
        );
        assert!((request.answered - request.sent - 0.25).abs() < 1e-6);
        assert!(request.is_write());
    }
}
