//! `/healthz`, `/readyz` and `/metrics` over HTTP, for orchestrators and Prometheus (and, when
//! `[graph_notifications]` is on, Graph's notification endpoints beside them, see
//! `graph_notify::endpoint`).
//!
//! `/healthz` answers while the process is alive; `/readyz` only while the database answers
//! and the scheduler loop runs; `/metrics` is the Prometheus text exposition. Must not expose
//! settings or secrets.

use crate::store::Store;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why the health server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The listen address is taken or not allowed.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's reason.
        reason: String,
    },
}

/// What readiness depends on, shared with the scheduler.
#[derive(Debug, Default)]
pub struct Readiness {
    scheduler_running: AtomicBool,
}

impl Readiness {
    /// Mark the scheduler loop as running (or stopped).
    pub fn set_scheduler_running(&self, running: bool) {
        self.scheduler_running.store(running, Ordering::SeqCst);
        crate::metrics::metrics()
            .scheduler_running
            .set(i64::from(running));
    }

    /// Whether the scheduler loop runs.
    pub fn scheduler_running(&self) -> bool {
        self.scheduler_running.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct HealthState {
    store: Store,
    readiness: Arc<Readiness>,
}

/// The router (exposed for tests that serve it on their own listener).
pub fn router(store: Store, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(HealthState { store, readiness })
}

async fn ready(State(state): State<HealthState>) -> impl IntoResponse {
    let database = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await,
        Ok(Ok(()))
    );
    let scheduler = state.readiness.scheduler_running();
    let body = format!(
        "database: {}\nscheduler: {}\n",
        if database { "ok" } else { "unreachable" },
        if scheduler { "running" } else { "stopped" }
    );
    let status = if database && scheduler {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

/// What `/metrics` encodes: prometheus-client writes the OpenMetrics text format (it ends in
/// `# EOF`), so that is the content type it is served with.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        crate::metrics::metrics().render(),
    )
}

/// Serve the endpoints on `addr` until `shutdown`; returns the bound address (port 0 works).
pub async fn serve(
    addr: SocketAddr,
    store: Store,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HealthError> {
    serve_with(addr, store, readiness, Router::new(), shutdown).await
}

/// [`serve`] with more routes beside health and metrics (the Graph notification endpoints).
pub async fn serve_with(
    addr: SocketAddr,
    store: Store,
    readiness: Arc<Readiness>,
    extra: Router,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HealthError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| HealthError::Bind {
            addr,
            reason: e.to_string(),
        })?;
    let bound = listener.local_addr().map_err(|e| HealthError::Bind {
        addr,
        reason: e.to_string(),
    })?;
    let app = router(store, readiness).merge(extra);
    let handle = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "health server stopped");
        }
    });
    tracing::info!(address = %bound, "health and metrics endpoints listening");
    Ok((bound, handle))
}
