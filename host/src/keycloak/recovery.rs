//! Resources waiting for a Keycloak to answer again.
//!
//! A reconcile that failed because its Keycloak was unavailable retries with
//! backoff, and while the circuit stays open that backoff grows (up to
//! minutes). Waiting that long after Keycloak is back is pointless: the
//! failure was Keycloak's, not the resource's. So each such resource is
//! noted here, and when the connection's circuit closes, all of them are
//! nudged at once and reconcile within seconds.

use std::collections::HashSet;
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::capability::Nudge;

/// The resources waiting for one connection to recover.
pub struct Recovery {
    inner: Mutex<Waiting>,
    nudges: broadcast::Sender<Nudge>,
}

#[derive(Default)]
struct Waiting {
    /// How many times the circuit has closed: a resource whose request
    /// began before a close and failed after it must not wait for the next.
    closes: u64,
    resources: HashSet<Nudge>,
}

/// A moment in a connection's life, taken before a request, to tell whether
/// the circuit closed while it was under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(u64);

impl Recovery {
    /// Nudges go to `nudges`.
    pub fn new(nudges: broadcast::Sender<Nudge>) -> Self {
        Recovery {
            inner: Mutex::new(Waiting::default()),
            nudges,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Now, for a later [`Recovery::wait`].
    pub fn epoch(&self) -> Epoch {
        Epoch(self.lock().closes)
    }

    /// `who` found Keycloak unavailable in a request begun at `since`: it is
    /// nudged when the circuit next closes, or now if it closed meanwhile.
    pub fn wait(&self, who: Nudge, since: Epoch) {
        let mut waiting = self.lock();
        if waiting.closes != since.0 {
            drop(waiting);
            let _ = self.nudges.send(who);
        } else {
            waiting.resources.insert(who);
        }
    }

    /// The circuit closed: every waiting resource is nudged; returns how many.
    pub fn closed(&self) -> usize {
        let resources = {
            let mut waiting = self.lock();
            waiting.closes += 1;
            std::mem::take(&mut waiting.resources)
        };
        let count = resources.len();
        for who in resources {
            // No receiver: no controller runs (shutting down); nothing to do.
            let _ = self.nudges.send(who);
        }
        count
    }

    /// Resources waiting now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().resources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str) -> Nudge {
        Nudge::client(name)
    }

    fn drain(receiver: &mut broadcast::Receiver<Nudge>) -> Vec<String> {
        let mut names = Vec::new();
        while let Ok(nudge) = receiver.try_recv() {
            names.push(nudge.key.name);
        }
        names.sort();
        names
    }

    #[test]
    fn waiting_resources_are_nudged_once_when_the_circuit_closes() {
        let (sender, mut receiver) = broadcast::channel(16);
        let recovery = Recovery::new(sender);
        let since = recovery.epoch();
        recovery.wait(who("a"), since);
        recovery.wait(who("b"), since);
        recovery.wait(who("a"), since);
        assert!(drain(&mut receiver).is_empty(), "nobody is nudged before the close");
        assert_eq!(recovery.waiting(), 2);
        assert_eq!(recovery.closed(), 2);
        assert_eq!(drain(&mut receiver), ["a", "b"]);
        assert_eq!(recovery.closed(), 0, "a second close has nobody left to nudge");
        assert!(drain(&mut receiver).is_empty());
    }

    #[test]
    fn a_request_that_straddled_a_close_is_nudged_at_once() {
        let (sender, mut receiver) = broadcast::channel(16);
        let recovery = Recovery::new(sender);
        let since = recovery.epoch();
        recovery.closed();
        recovery.wait(who("late"), since);
        assert_eq!(drain(&mut receiver), ["late"]);
        assert_eq!(recovery.waiting(), 0);
    }
}
