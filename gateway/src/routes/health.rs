//! Operability endpoints: `/healthz` (process up), `/readyz` (database reachable, migrations applied,
//! pgvector installed), `/metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::server::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: 200 with details when the store is usable, 503 with the reason otherwise.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match cynode_orchestrator::store::readiness(&state.pool).await {
        Ok(r) if r.is_ready() => {
            (StatusCode::OK, Json(serde_json::json!({ "status": "ready", "store": r }))).into_response()
        }
        Ok(r) => {
            let reason = if r.pgvector.is_none() { "pgvector is not installed" } else { "migrations are not applied" };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "not_ready", "reason": reason, "store": r })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "not_ready", "reason": "database unreachable" })),
            )
                .into_response()
        }
    }
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
}
