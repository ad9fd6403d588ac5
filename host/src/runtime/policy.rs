//! What a component may do: the capabilities granted to it and the limits
//! of each call, decided by whoever approved it (the configuration file, or
//! a `ReconcilerComponent`), never by the component.

use std::collections::BTreeSet;
use std::time::Duration;

use super::model::Capability;

/// Limits of one call of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Largest linear memory of one instance, in bytes.
    pub memory_bytes: usize,
    /// Computation time of one call, host calls excluded.
    pub guest_time: Duration,
    /// Time of one call in all.
    pub wall_time: Duration,
}

/// What a component may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Capabilities granted.
    pub grants: BTreeSet<Capability>,
    /// Child kinds granted (`apiVersion/Kind`); `None` for a component the
    /// host's own configuration names, which may create any kind the host
    /// allows.
    pub child_kinds: Option<BTreeSet<String>>,
    /// Limits of each call.
    pub limits: CallLimits,
}

impl CallLimits {
    /// Whether these limits fit within `most` (the host's own); the reason
    /// when they do not.
    pub fn check(&self, most: &CallLimits) -> Result<(), String> {
        if self.memory_bytes == 0 || self.memory_bytes > most.memory_bytes {
            return Err(format!(
                "a memory limit of {} MiB is outside what this host allows (1 to {} MiB, its runtime.memoryLimitMiB)",
                self.memory_bytes >> 20,
                most.memory_bytes >> 20
            ));
        }
        if self.guest_time.is_zero() || self.guest_time > self.wall_time {
            return Err(format!(
                "the computation time limit ({:?}) must be above zero and at most the wall time limit ({:?})",
                self.guest_time, self.wall_time
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_must_fit_the_hosts() {
        let most = CallLimits {
            memory_bytes: 64 << 20,
            guest_time: Duration::from_secs(2),
            wall_time: Duration::from_secs(120),
        };
        assert_eq!(most.check(&most), Ok(()));
        let more_memory = CallLimits {
            memory_bytes: 128 << 20,
            ..most
        };
        assert!(more_memory.check(&most).is_err_and(|m| m.contains("64 MiB")));
        let no_time = CallLimits {
            guest_time: Duration::ZERO,
            ..most
        };
        assert!(no_time.check(&most).is_err());
        let guest_over_wall = CallLimits {
            guest_time: Duration::from_secs(5),
            wall_time: Duration::from_secs(1),
            ..most
        };
        assert!(guest_over_wall.check(&most).is_err());
    }
}
