//! `POST /v1/tasks`, `GET /v1/tasks`, `GET /v1/tasks/{id}`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::{console, views};
use serde::Deserialize;

use super::auth::Caller;
use super::model::{
    ApiJson, ApprovalView, SubmitRequest, SubmitResponse, TaskList, TaskView, limit_param, not_found, parse_id,
};
use crate::error::ApiError;
use crate::server::AppState;

/// Longest accepted command text, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// Submits a command as the token's name, within its install, exactly as chat would.
pub(super) async fn submit(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SubmitRequest>,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    caller.require(Role::Operator)?;
    let text = req.text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::client(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("`text` must be 1–{MAX_TEXT_CHARS} characters, e.g. \"run echo hi\""),
        ));
    }
    let reply = console::submit(&state.pool, &state.commands, &caller.origin(), text).await?;
    let task_id = reply.task_id.ok_or_else(|| anyhow::anyhow!("submission recorded no task"))?;
    let task = views::task(&state.pool, caller.scope(), task_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("task {task_id} vanished after submission"))?;
    tracing::info!(task.id = %task_id, token.id = %caller.token.id, command = %task.command, "task submitted via API");
    let approval =
        reply.approval.map(|a| ApprovalView { approval_id: a.approval_id, approvers: a.approvers, reason: a.reason });
    let body =
        SubmitResponse { task_id, job_id: reply.job_id, reply: reply.text, approval, refused: reply.refused, task };
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /v1/tasks` query.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    limit: Option<String>,
    before: Option<String>,
}

/// Lists the tasks the token may see, newest first.
pub(super) async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<TaskList>, ApiError> {
    caller.require(Role::Viewer)?;
    let bad = |m: &str| ApiError::client(StatusCode::BAD_REQUEST, "invalid_request", m);
    let limit = i64::from(limit_param(q.limit.as_deref(), 20, 100)?);
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(b) => Some(uuid::Uuid::parse_str(b).map_err(|_| bad("`before` is a task id (`next_cursor`)"))?),
    };
    let tasks = views::tasks(&state.pool, caller.scope(), before, limit).await?;
    let full = usize::try_from(limit).unwrap_or(usize::MAX) == tasks.len();
    let next_cursor = if full { tasks.last().map(|t| t.id) } else { None };
    Ok(Json(TaskList { tasks, next_cursor }))
}

/// A task with its jobs; 404 outside the token's install.
pub(super) async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    caller.require(Role::Viewer)?;
    let task_id = parse_id("task", &id)?;
    let task = views::task(&state.pool, caller.scope(), task_id).await?.ok_or_else(|| not_found("task", &id))?;
    Ok(Json(task))
}
