//! The HTTP server: shared state, the router with its middleware, and graceful serving.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use cynode_orchestrator::commands::{CommandSettings, Commands};
use cynode_orchestrator::dispatch::{DispatchSettings, Dispatcher};
use cynode_orchestrator::nodes::TokenKeys;
use cynode_protocol::paths;
use secrecy::{ExposeSecret, SecretString};
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
    /// Hands jobs to nodes.
    pub dispatcher: Arc<Dispatcher>,
    /// Executes commands.
    pub commands: Commands,
    /// Issues and verifies node tokens.
    pub tokens: TokenKeys,
}

/// What the orchestrator side of a gateway needs besides the pool.
#[derive(Debug, Clone, Default)]
pub struct CoreSettings {
    /// Lease and polling timing.
    pub dispatch: DispatchSettings,
    /// Command defaults.
    pub commands: CommandSettings,
}

impl AppState {
    /// Builds the state and starts the dispatcher's background loops, which stop when `shutdown` fires.
    pub fn start(
        pool: PgPool,
        master_key: &SecretString,
        settings: CoreSettings,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let dispatcher = Dispatcher::new(pool.clone(), settings.dispatch);
        dispatcher.spawn_background(shutdown);
        let commands = Commands::new(pool.clone(), dispatcher.clone(), settings.commands);
        let tokens = TokenKeys::derive(master_key.expose_secret().as_bytes());
        Self { pool, metrics: Arc::new(Metrics::default()), dispatcher, commands, tokens }
    }
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
        .route(paths::REGISTER, post(routes::node::register))
        .route(paths::LEASE, post(routes::node::lease))
        .route(paths::HEARTBEAT, post(routes::node::heartbeat))
        .route(paths::OUTPUT, post(routes::node::output))
        .route(paths::FINISH, post(routes::node::finish))
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
