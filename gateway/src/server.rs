//! The HTTP server: shared state, the router with its middleware, and graceful serving.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::metrics::{self, Metrics};
use crate::routes;

/// State shared by every handler. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The store.
    pub pool: PgPool,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
}

/// Router settings.
#[derive(Debug, Clone, Copy)]
pub struct RouterSettings {
    /// Body size cap; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// Builds the router with every route and middleware.
pub fn router(state: AppState, settings: RouterSettings) -> Router {
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.request_timeout))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
///
/// # Errors
/// When the server fails (not on shutdown).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
