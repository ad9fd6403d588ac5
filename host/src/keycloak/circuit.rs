//! A circuit breaker per Keycloak instance.
//!
//! After `failure_threshold` consecutive failures (no answer, or a gateway
//! error) the circuit opens: requests fail at once, without touching the
//! network, so a Keycloak that is down receives no request storm. After
//! `reset_timeout` one probe is let through; its success closes the circuit,
//! its failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Thresholds of a circuit breaker.
#[derive(Debug, Clone, Copy)]
pub struct CircuitSettings {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before one probe is let through.
    pub reset_timeout: Duration,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        CircuitSettings {
            failure_threshold: 5,
            reset_timeout: Duration::from_secs(10),
        }
    }
}

/// The externally visible state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests flow.
    Closed,
    /// One probe may pass.
    HalfOpen,
    /// Requests fail at once.
    Open,
}

impl CircuitState {
    /// Gauge value: 0 closed, 1 half-open, 2 open.
    pub fn as_gauge(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }
}

enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// The breaker.
pub struct CircuitBreaker {
    settings: CircuitSettings,
    state: Mutex<State>,
}

/// Permission to send one request; report its result with
/// [`CircuitBreaker::record`]. A probe dropped unreported frees the probe slot.
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe
            && !self.reported
            && let Ok(mut state) = self.breaker.state.lock()
            && let State::HalfOpen { probing } = &mut *state
        {
            *probing = false;
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(settings: CircuitSettings) -> Self {
        CircuitBreaker {
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        match &*self.lock() {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if Instant::now() < *until => CircuitState::Open,
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// A permit to send, or how long until the circuit lets a probe through.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Duration> {
        let mut state = self.lock();
        let now = Instant::now();
        let probe = match &mut *state {
            State::Closed { .. } => false,
            State::Open { until } if now < *until => return Err(*until - now),
            State::Open { .. } => {
                *state = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: true } => return Err(self.settings.reset_timeout),
            State::HalfOpen { probing } => {
                *probing = true;
                true
            }
        };
        Ok(Permit {
            breaker: self,
            probe,
            reported: false,
        })
    }

    /// Records the result of a permitted request; returns the new state if
    /// it changed.
    pub fn record(&self, mut permit: Permit<'_>, success: bool) -> Option<CircuitState> {
        permit.reported = true;
        let mut state = self.lock();
        let before = discriminant(&state);
        if success {
            *state = State::Closed { failures: 0 };
        } else if permit.probe {
            *state = State::Open {
                until: Instant::now() + self.settings.reset_timeout,
            };
        } else if let State::Closed { failures } = &mut *state {
            *failures += 1;
            if *failures >= self.settings.failure_threshold {
                *state = State::Open {
                    until: Instant::now() + self.settings.reset_timeout,
                };
            }
        }
        let after = discriminant(&state);
        (before != after).then_some(after)
    }
}

fn discriminant(state: &State) -> CircuitState {
    match state {
        State::Closed { .. } => CircuitState::Closed,
        State::Open { .. } => CircuitState::Open,
        State::HalfOpen { .. } => CircuitState::HalfOpen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(reset_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(CircuitSettings {
            failure_threshold: 3,
            reset_timeout: Duration::from_millis(reset_ms),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_and_fails_fast() {
        let b = breaker(60_000);
        for _ in 0..2 {
            let p = b.try_acquire().expect("closed");
            assert_eq!(b.record(p, false), None);
        }
        let p = b.try_acquire().expect("closed");
        assert_eq!(b.record(p, false), Some(CircuitState::Open));
        assert!(b.try_acquire().is_err());
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = breaker(60_000);
        for success in [false, false, true, false, false] {
            let p = b.try_acquire().expect("closed");
            b.record(p, success);
        }
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn lets_exactly_one_probe_through_after_the_reset_window() {
        let b = breaker(20);
        for _ in 0..3 {
            let p = b.try_acquire().expect("closed");
            b.record(p, false);
        }
        std::thread::sleep(Duration::from_millis(30));
        let probe = b.try_acquire().expect("probe");
        assert!(b.try_acquire().is_err(), "a second request waits for the probe");
        assert_eq!(b.record(probe, false), Some(CircuitState::Open));
        std::thread::sleep(Duration::from_millis(30));
        let probe = b.try_acquire().expect("probe");
        assert_eq!(b.record(probe, true), Some(CircuitState::Closed));
        assert!(b.try_acquire().is_ok());
    }

    #[test]
    fn an_abandoned_probe_frees_the_slot() {
        let b = breaker(0);
        for _ in 0..3 {
            let p = b.try_acquire().expect("closed");
            b.record(p, false);
        }
        drop(b.try_acquire().expect("probe"));
        assert!(b.try_acquire().is_ok());
    }
}
