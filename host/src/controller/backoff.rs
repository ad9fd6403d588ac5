//! Per-object exponential backoff with jitter, capped, reset on success.
//! (kube-rs does not provide one; client-go's rate-limited queue does.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

use super::informer::ObjectKey;

/// The failures counted per object.
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: Mutex<HashMap<ObjectKey, u32>>,
}

impl Backoff {
    /// Delays start at `base` and double up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a failure and returns how long to wait: `base * 2^(n-1)`,
    /// capped, drawn uniformly from its upper half so that objects failing
    /// together do not retry together.
    pub fn failed(&self, key: &ObjectKey) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let exponential = self.base.saturating_mul(2u32.saturating_pow((*n - 1).min(30)));
        let delay = exponential.min(self.cap);
        delay.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// Forgets an object's failures.
    pub fn reset(&self, key: &ObjectKey) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_jitter_and_stops_at_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let key = ObjectKey::new("ns", "a");
        let delays: Vec<Duration> = (0..6).map(|_| backoff.failed(&key)).collect();
        for (i, d) in delays.iter().enumerate() {
            let full = Duration::from_secs(1 << i).min(Duration::from_secs(10));
            assert!(
                *d >= full / 2 && *d <= full,
                "attempt {i}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
        backoff.reset(&key);
        assert!(backoff.failed(&key) <= Duration::from_secs(1));
    }
}
