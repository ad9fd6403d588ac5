//! `/admin/serverinfo`, read once per connection and shared.
//!
//! Components check names against what the server supports (protocol mapper
//! types, authenticators, identity provider types), so every reconcile of a
//! realm or client may read the document. It is large (about 300 KiB on
//! Keycloak 26) and the same for every resource on one connection, and it
//! changes only when Keycloak is upgraded or a provider is deployed: each
//! connection keeps the last answer for [`SERVER_INFO_TTL`], so that steady
//! state adds no request. The host does not look inside the document.

use std::future::Future;

use tokio::sync::Mutex;
use tokio::time::{Duration, Instant};

use crate::runtime::model::{KeycloakError, KeycloakResponse};

/// How long a connection serves its last `/admin/serverinfo` answer before it
/// asks Keycloak again: a provider deployed or a Keycloak upgraded is seen
/// within this time (the `Keycloak` resource's own health probe refreshes it
/// every minute).
pub const SERVER_INFO_TTL: Duration = Duration::from_secs(300);

/// The route template of the document, under `/admin`.
pub const ROUTE: &str = "/serverinfo";

/// The last answer of one connection, with when it came.
pub struct ServerInfoCache {
    ttl: Duration,
    // A tokio mutex, held across the fetch: the resources that ask at once
    // (every client of a realm, after a restart) wait for one request
    // instead of each sending its own.
    entry: Mutex<Option<(Instant, KeycloakResponse)>>,
}

impl ServerInfoCache {
    /// An empty cache whose answers are kept for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        ServerInfoCache {
            ttl,
            entry: Mutex::new(None),
        }
    }

    /// The cached answer while it is fresh; otherwise `fetch`'s, kept if
    /// Keycloak answered it (any status below 500: a 403 for an account
    /// without the right is as lasting as the document, and asking again
    /// would cost a token refresh each time). Failures are not kept.
    pub async fn get_or_fetch<F, Fut>(&self, fetch: F) -> Result<KeycloakResponse, KeycloakError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<KeycloakResponse, KeycloakError>>,
    {
        let mut entry = self.entry.lock().await;
        if let Some((at, response)) = entry.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(response.clone());
        }
        let result = fetch().await;
        if let Ok(response) = &result
            && keepable(response)
        {
            *entry = Some((Instant::now(), response.clone()));
        }
        result
    }

    /// Keeps an answer read by other means (the `Keycloak` resource's own,
    /// uncached read).
    pub async fn store(&self, result: &Result<KeycloakResponse, KeycloakError>) {
        if let Ok(response) = result
            && keepable(response)
        {
            *self.entry.lock().await = Some((Instant::now(), response.clone()));
        }
    }
}

fn keepable(response: &KeycloakResponse) -> bool {
    response.status < 500
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn answer(status: u16, body: &str) -> KeycloakResponse {
        KeycloakResponse {
            status,
            location: None,
            body: body.to_owned(),
        }
    }

    /// A stand-in for Keycloak that counts the requests it gets.
    fn keycloak(
        calls: &Arc<AtomicU32>,
        result: Result<KeycloakResponse, KeycloakError>,
    ) -> impl FnOnce() -> std::future::Ready<Result<KeycloakResponse, KeycloakError>> {
        let calls = calls.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(result)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_read_within_the_ttl_does_not_reach_keycloak() {
        let cache = ServerInfoCache::new(SERVER_INFO_TTL);
        let calls = Arc::new(AtomicU32::new(0));
        let first = cache.get_or_fetch(keycloak(&calls, Ok(answer(200, "v1")))).await;
        tokio::time::advance(SERVER_INFO_TTL - Duration::from_secs(1)).await;
        let second = cache.get_or_fetch(keycloak(&calls, Ok(answer(200, "v2")))).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(first.map(|r| r.body).ok().as_deref(), Some("v1"));
        assert_eq!(second.map(|r| r.body).ok().as_deref(), Some("v1"));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_ttl_keycloak_is_asked_again() {
        let cache = ServerInfoCache::new(SERVER_INFO_TTL);
        let calls = Arc::new(AtomicU32::new(0));
        let _ = cache.get_or_fetch(keycloak(&calls, Ok(answer(200, "v1")))).await;
        tokio::time::advance(SERVER_INFO_TTL).await;
        let fresh = cache.get_or_fetch(keycloak(&calls, Ok(answer(200, "v2")))).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(fresh.map(|r| r.body).ok().as_deref(), Some("v2"));
    }

    #[tokio::test]
    async fn failures_are_not_kept_but_refusals_are() {
        let cache = ServerInfoCache::new(SERVER_INFO_TTL);
        let calls = Arc::new(AtomicU32::new(0));
        let down = cache
            .get_or_fetch(keycloak(&calls, Err(KeycloakError::Unavailable("down".into()))))
            .await;
        assert!(matches!(down, Err(KeycloakError::Unavailable(_))));
        let broken = cache.get_or_fetch(keycloak(&calls, Ok(answer(500, "oops")))).await;
        assert_eq!(broken.map(|r| r.status).ok(), Some(500));
        let refused = cache.get_or_fetch(keycloak(&calls, Ok(answer(403, "")))).await;
        assert_eq!(refused.map(|r| r.status).ok(), Some(403));
        let again = cache.get_or_fetch(keycloak(&calls, Ok(answer(200, "v1")))).await;
        assert_eq!(
            again.map(|r| r.status).ok(),
            Some(403),
            "the 403 is served from the cache"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn readers_at_once_share_one_request() {
        let cache = Arc::new(ServerInfoCache::new(SERVER_INFO_TTL));
        let calls = Arc::new(AtomicU32::new(0));
        let readers = (0..8).map(|_| {
            let cache = cache.clone();
            let calls = calls.clone();
            tokio::spawn(async move {
                cache
                    .get_or_fetch(|| async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(answer(200, "v1"))
                    })
                    .await
            })
        });
        for reader in futures::future::join_all(readers).await {
            assert!(matches!(reader, Ok(Ok(ref r)) if r.body == "v1"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_answer_stored_from_a_live_read_is_served() {
        let cache = ServerInfoCache::new(SERVER_INFO_TTL);
        let calls = Arc::new(AtomicU32::new(0));
        cache.store(&Ok(answer(200, "probe"))).await;
        let read = cache.get_or_fetch(keycloak(&calls, Ok(answer(200, "v2")))).await;
        assert_eq!(read.map(|r| r.body).ok().as_deref(), Some("probe"));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
