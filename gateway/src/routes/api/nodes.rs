//! `GET /v1/nodes`.

use axum::Json;
use axum::extract::State;
use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::views;

use super::auth::Caller;
use super::model::NodeList;
use crate::error::ApiError;
use crate::server::AppState;

/// Registered nodes with live keys (operators and admins).
pub(super) async fn list(caller: Caller, State(state): State<AppState>) -> Result<Json<NodeList>, ApiError> {
    caller.require(Role::Operator)?;
    Ok(Json(NodeList { nodes: views::nodes(&state.pool).await? }))
}
