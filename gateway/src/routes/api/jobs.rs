//! `GET /v1/jobs/{id}`, its output, and cancel/approve/deny — which go through the same commands as chat, so
//! ownership, approver lists and the audit log apply unchanged.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::views::{self, JobView};
use serde::Deserialize;

use super::auth::Caller;
use super::model::{ActionResponse, not_found, parse_id};
use crate::error::ApiError;
use crate::server::AppState;

const FINAL_JOB_STATES: [&str; 4] = ["succeeded", "failed", "cancelled", "timed_out"];

async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<(JobView, String), ApiError> {
    let job_id = parse_id("job", id)?;
    views::job(&state.pool, caller.scope(), job_id).await?.ok_or_else(|| not_found("job", id))
}

/// A job; 404 outside the token's install.
pub(super) async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(find(&state, &caller, &id).await?.0))
}

/// `GET /v1/jobs/{id}/output` query.
#[derive(Debug, Deserialize)]
pub(super) struct OutputQuery {
    attempt: Option<String>,
}

/// The whole output of an attempt (default: the latest), every stream in upload order, as `text/plain`.
pub(super) async fn output(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<OutputQuery>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let (job, _) = find(&state, &caller, &id).await?;
    let attempt = match q.attempt.as_deref() {
        None | Some("") => None,
        Some(a) => Some(a.parse::<i32>().ok().filter(|n| *n >= 1 && *n <= job.attempt.max(1)).ok_or_else(|| {
            ApiError::client(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("`attempt` is 1–{} for this job", job.attempt.max(1)),
            )
        })?),
    };
    let (attempt, bytes) = views::output(&state.pool, &job, attempt).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()),
            (header::HeaderName::from_static("x-cynode-attempt"), attempt.to_string()),
        ],
        bytes,
    ))
}

/// Cancels a job: an operator only its own, an admin any it may cancel as an approver.
pub(super) async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ActionResponse>, ApiError> {
    caller.require(Role::Operator)?;
    let (job, requester) = find(&state, &caller, &id).await?;
    if caller.role() < Role::Admin && requester != caller.token.name {
        return Err(ApiError::client(StatusCode::FORBIDDEN, "forbidden", "operators can cancel only their own jobs"));
    }
    if FINAL_JOB_STATES.contains(&job.state.as_str()) {
        let message = format!("job {} already finished ({})", job.id, job.state);
        return Err(ApiError::client(StatusCode::CONFLICT, "conflict", message));
    }
    let reply = state.commands.handle(&caller.origin(), &format!("cancel {}", job.id)).await?;
    let (after, _) = find(&state, &caller, &id).await?;
    if after.state == "cancelled" || after.cancel_requested {
        return Ok(Json(ActionResponse { reply: reply.text, job: after }));
    }
    if FINAL_JOB_STATES.contains(&after.state.as_str()) {
        return Err(ApiError::client(StatusCode::CONFLICT, "conflict", reply.text));
    }
    Err(ApiError::client(StatusCode::FORBIDDEN, "forbidden", reply.text))
}

/// Approves a job waiting for approval (the token's name must be one of its approvers).
pub(super) async fn approve(
    caller: Caller,
    state: State<AppState>,
    id: Path<String>,
) -> Result<Json<ActionResponse>, ApiError> {
    decide(caller, state, id, "approve").await
}

/// Denies a job waiting for approval (the token's name must be one of its approvers).
pub(super) async fn deny(
    caller: Caller,
    state: State<AppState>,
    id: Path<String>,
) -> Result<Json<ActionResponse>, ApiError> {
    decide(caller, state, id, "deny").await
}

async fn decide(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    verb: &str,
) -> Result<Json<ActionResponse>, ApiError> {
    caller.require(Role::Operator)?;
    let (job, _) = find(&state, &caller, &id).await?;
    if job.state != "awaiting_approval" {
        return Err(ApiError::client(
            StatusCode::CONFLICT,
            "conflict",
            format!("job {} is not waiting for approval (it is {})", job.id, job.state),
        ));
    }
    let reply = state.commands.handle(&caller.origin(), &format!("{verb} {}", job.id)).await?;
    let (after, _) = find(&state, &caller, &id).await?;
    // A vote that counted but left the job waiting (N of M) is a success; a refused one is forbidden.
    if after.state == "awaiting_approval" && reply.refused {
        return Err(ApiError::client(StatusCode::FORBIDDEN, "forbidden", reply.text));
    }
    Ok(Json(ActionResponse { reply: reply.text, job: after }))
}
