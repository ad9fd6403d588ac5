//! The HTTP server: `/metrics` for Prometheus, `/healthz` (the process
//! runs) and `/readyz` (components loaded; as leader, caches synced; not
//! while shutting down).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// What the health endpoints report.
#[derive(Default)]
pub struct Health {
    /// The built-in components and the declared ones present at start are
    /// loaded.
    pub components_loaded: AtomicBool,
    /// This replica leads (and so must have its caches synced to be ready).
    pub leading: AtomicBool,
    /// As leader, every cache the controllers read has listed its objects.
    pub caches_synced: AtomicBool,
    /// SIGTERM arrived: finishing what runs, taking nothing new.
    pub stopping: AtomicBool,
}

impl Health {
    /// Ready, or why not.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.stopping.load(Ordering::Relaxed) {
            Err("shutting down")
        } else if !self.components_loaded.load(Ordering::Relaxed) {
            Err("components are loading")
        } else if self.leading.load(Ordering::Relaxed) && !self.caches_synced.load(Ordering::Relaxed) {
            Err("leading; caches are syncing")
        } else {
            Ok(())
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

async fn render_metrics(State(state): State<AppState>) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    (
        StatusCode::OK,
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// Serves until `shutdown`.
pub async fn serve(
    address: &str,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, health });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_loaded_synced_as_leader_and_not_stopping() {
        let health = Health::default();
        assert_eq!(health.readiness(), Err("components are loading"));
        health.components_loaded.store(true, Ordering::Relaxed);
        assert_eq!(
            health.readiness(),
            Ok(()),
            "a follower is ready once its components are loaded"
        );
        health.leading.store(true, Ordering::Relaxed);
        assert_eq!(health.readiness(), Err("leading; caches are syncing"));
        health.caches_synced.store(true, Ordering::Relaxed);
        assert_eq!(health.readiness(), Ok(()));
        health.stopping.store(true, Ordering::Relaxed);
        assert_eq!(health.readiness(), Err("shutting down"));
    }
}
