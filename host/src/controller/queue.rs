//! The work queue: one key is never processed twice at once, a key added
//! while it is being processed is processed again afterwards, and delayed
//! adds keep the earliest time (as client-go's workqueue does).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::informer::ObjectKey;

#[derive(Default)]
struct Inner {
    ready: VecDeque<ObjectKey>,
    queued: HashSet<ObjectKey>,
    processing: HashSet<ObjectKey>,
    dirty: HashSet<ObjectKey>,
    delayed: BTreeSet<(Instant, ObjectKey)>,
    due: HashMap<ObjectKey, Instant>,
    shut_down: bool,
}

/// The queue.
#[derive(Default)]
pub struct WorkQueue {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl WorkQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a key now.
    pub fn add(&self, key: ObjectKey) {
        let mut inner = self.lock();
        if let Some(at) = inner.due.remove(&key) {
            inner.delayed.remove(&(at, key.clone()));
        }
        Self::make_ready(&mut inner, key);
        drop(inner);
        self.notify.notify_one();
    }

    fn make_ready(inner: &mut Inner, key: ObjectKey) {
        if inner.processing.contains(&key) {
            inner.dirty.insert(key);
        } else if inner.queued.insert(key.clone()) {
            inner.ready.push_back(key);
        }
    }

    /// Adds a key after a delay, unless it is due sooner already.
    pub fn add_after(&self, key: ObjectKey, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        let mut inner = self.lock();
        if inner.queued.contains(&key) {
            return;
        }
        match inner.due.get(&key) {
            Some(existing) if *existing <= at => return,
            Some(existing) => {
                let existing = *existing;
                inner.delayed.remove(&(existing, key.clone()));
            }
            None => {}
        }
        inner.due.insert(key.clone(), at);
        inner.delayed.insert((at, key));
        drop(inner);
        self.notify.notify_one();
    }

    /// The next key to process, waiting for one; `None` after shutdown.
    pub async fn next(&self) -> Option<ObjectKey> {
        loop {
            let wake_at = {
                let mut inner = self.lock();
                if inner.shut_down {
                    return None;
                }
                let now = Instant::now();
                while let Some((at, key)) = inner.delayed.first().cloned() {
                    if at > now {
                        break;
                    }
                    inner.delayed.pop_first();
                    inner.due.remove(&key);
                    Self::make_ready(&mut inner, key);
                }
                if let Some(key) = inner.ready.pop_front() {
                    inner.queued.remove(&key);
                    inner.processing.insert(key.clone());
                    if !inner.ready.is_empty() {
                        // Let another worker pick up the rest.
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                inner.delayed.first().map(|(at, _)| *at)
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }

    /// Marks a key as processed; it is queued again if it was added meanwhile.
    pub fn done(&self, key: &ObjectKey) {
        let mut inner = self.lock();
        inner.processing.remove(key);
        if inner.dirty.remove(key) {
            Self::make_ready(&mut inner, key.clone());
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// Keys ready to be processed now.
    pub fn depth(&self) -> usize {
        self.lock().ready.len()
    }

    /// Wakes every waiter with `None`.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("ns", name)
    }

    #[tokio::test]
    async fn deduplicates_and_never_hands_out_a_key_twice_at_once() {
        let q = WorkQueue::new();
        q.add(key("a"));
        q.add(key("a"));
        q.add(key("b"));
        assert_eq!(q.depth(), 2);
        let first = q.next().await.expect("a");
        assert_eq!(first, key("a"));
        q.add(key("a"));
        assert_eq!(q.next().await, Some(key("b")), "a is being processed, so b comes next");
        assert_eq!(q.depth(), 0);
        q.done(&first);
        assert_eq!(
            q.next().await,
            Some(key("a")),
            "re-added while processing: processed again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_adds_keep_the_earliest_time() {
        let q = WorkQueue::new();
        q.add_after(key("a"), Duration::from_secs(60));
        q.add_after(key("a"), Duration::from_secs(5));
        q.add_after(key("a"), Duration::from_secs(30));
        let started = Instant::now();
        assert_eq!(q.next().await, Some(key("a")));
        assert_eq!(started.elapsed().as_secs(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn an_immediate_add_overrides_a_delay() {
        let q = WorkQueue::new();
        q.add_after(key("a"), Duration::from_secs(60));
        q.add(key("a"));
        let started = Instant::now();
        assert_eq!(q.next().await, Some(key("a")));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn shutdown_wakes_waiters() {
        let q = std::sync::Arc::new(WorkQueue::new());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(waiter.await.expect("joined"), None);
    }
}
