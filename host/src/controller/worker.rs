//! A worker's loop: take a key, reconcile it, release it — whatever the
//! reconcile does. A panic in the host's own code must fail that one
//! reconcile, not leave its key marked as being processed forever (every
//! later change of the resource would wait behind it) and not shrink the
//! pool of workers.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

use super::informer::ObjectKey;
use super::queue::WorkQueue;

/// Processes keys from `queue` until it shuts down. `reconcile` says when
/// to look at a key again; when it panics, `panicked` is told the key and
/// the panic's message and says when to retry.
pub(super) async fn run<R, F>(queue: &WorkQueue, reconcile: R, panicked: impl Fn(&ObjectKey, &str) -> Duration)
where
    R: Fn(ObjectKey) -> F,
    F: Future<Output = Option<Duration>>,
{
    while let Some(key) = queue.next().await {
        let requeue = match AssertUnwindSafe(reconcile(key.clone())).catch_unwind().await {
            Ok(requeue) => requeue,
            Err(payload) => Some(panicked(&key, panic_message(payload.as_ref()))),
        };
        queue.done(&key);
        if let Some(delay) = requeue {
            queue.add_after(key, delay);
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_panicking_reconcile_releases_its_key_and_the_worker_goes_on() {
        let queue = Arc::new(WorkQueue::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let panics = Arc::new(std::sync::Mutex::new(Vec::new()));
        queue.add(ObjectKey::new("ns", "fragile"));
        let worker = tokio::spawn({
            let (queue, calls, panics) = (queue.clone(), calls.clone(), panics.clone());
            async move {
                run(
                    &queue,
                    |key| {
                        let calls = calls.clone();
                        async move {
                            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                                panic!("host bug while reconciling {key}");
                            }
                            None
                        }
                    },
                    |key, message| {
                        panics
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(format!("{key}: {message}"));
                        Duration::from_secs(2)
                    },
                )
                .await
            }
        });
        // The panic is reported and the key retried after the delay given.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "retried after the panic");
        assert_eq!(
            panics.lock().unwrap_or_else(|p| p.into_inner()).as_slice(),
            ["ns/fragile: host bug while reconciling ns/fragile"]
        );
        // The key is free again: a new change is processed, by the same worker.
        queue.add(ObjectKey::new("ns", "fragile"));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "the key was not left processing");
        assert!(!worker.is_finished(), "the worker survived");
        queue.shut_down();
        worker.await.expect("the worker ends cleanly on shutdown");
    }
}
