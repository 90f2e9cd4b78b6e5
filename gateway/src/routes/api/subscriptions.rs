//! `/v1/subscriptions`: outbound webhook subscriptions. Viewers read, operators and admins manage. A token
//! limited to an install sees and manages only that install's subscriptions; any other answers 404.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::outbox::{NewSubscription, OutboxError, Subscription, SubscriptionUpdate};
use secrecy::{ExposeSecret, SecretString};

use super::auth::Caller;
use super::model::{ApiJson, not_found};
use super::model_subs::{
    CreateSubscriptionRequest, CreatedSubscriptionResponse, QueuedDelivery, RotateRequest, RotateResponse,
    SubscriptionList, UpdateSubscriptionRequest,
};
use crate::error::ApiError;
use crate::server::AppState;

/// Default grace period of a rotation (Standard Webhooks suggests 24 h).
const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// Longest grace period accepted.
const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Maps a management error: the user-caused ones to 4xx with their message, the rest to a logged 500.
pub(super) fn outbox_error(e: OutboxError, what: &str, id: &str) -> ApiError {
    match e {
        OutboxError::Invalid(m) => ApiError::client(StatusCode::BAD_REQUEST, "invalid_request", m),
        OutboxError::NotFound(_) => not_found(what, id),
        OutboxError::Conflict(m) => ApiError::client(StatusCode::CONFLICT, "conflict", m),
        other => ApiError::Internal(other.into()),
    }
}

/// The subscription `raw` (id or name) if the caller may see it; 404 otherwise, whether it exists or not.
pub(super) async fn find(state: &AppState, caller: &Caller, raw: &str) -> Result<Subscription, ApiError> {
    let found = match uuid::Uuid::parse_str(raw) {
        Ok(id) => state.subscriptions.get(id).await,
        Err(_) => state.subscriptions.get_by_name(raw).await,
    };
    let sub = found.map_err(|e| outbox_error(e, "subscription", raw))?;
    visible(caller, &sub).then_some(sub).ok_or_else(|| not_found("subscription", raw))
}

/// Whether the caller's scope covers the subscription: global tokens see all, scoped ones their install's.
pub(super) fn visible(caller: &Caller, sub: &Subscription) -> bool {
    caller.scope().install_id.is_none_or(|mine| sub.install_id == Some(mine))
}

fn secret(raw: Option<String>) -> Option<SecretString> {
    raw.map(|s| SecretString::from(s.trim().to_string()))
}

/// Creates a subscription; the secret is in the answer and never again.
pub(super) async fn create(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateSubscriptionRequest>,
) -> Result<(StatusCode, Json<CreatedSubscriptionResponse>), ApiError> {
    caller.require(Role::Operator)?;
    let install_id = match (caller.scope().install_id, req.install_id) {
        (Some(mine), Some(asked)) if asked != mine => {
            return Err(ApiError::client(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "this token is limited to one install; omit `install_id` or give that install's id",
            ));
        }
        (Some(mine), _) => Some(mine),
        (None, asked) => asked,
    };
    let new = NewSubscription {
        name: req.name.trim().to_string(),
        url: req.url,
        install_id,
        event_types: req.event_types,
        filter: req.filter.unwrap_or(serde_json::Value::Null),
        secret: secret(req.secret),
    };
    let created = state
        .subscriptions
        .create(&caller.token.name, &new)
        .await
        .map_err(|e| outbox_error(e, "subscription", &new.name))?;
    tracing::info!(subscription.id = %created.subscription.id, token.id = %caller.token.id, "subscription created");
    let body = CreatedSubscriptionResponse {
        subscription: created.subscription,
        secret: created.secret.expose_secret().to_string(),
    };
    Ok((StatusCode::CREATED, Json(body)))
}

/// The subscriptions the caller may see, by name.
pub(super) async fn list(caller: Caller, State(state): State<AppState>) -> Result<Json<SubscriptionList>, ApiError> {
    caller.require(Role::Viewer)?;
    let subscriptions =
        state.subscriptions.list_for(caller.scope().install_id).await.map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Json(SubscriptionList { subscriptions }))
}

/// One subscription, by id or name.
pub(super) async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(find(&state, &caller, &id).await?))
}

/// Changes URL, event types, filter or enabled state.
pub(super) async fn update(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateSubscriptionRequest>,
) -> Result<Json<Subscription>, ApiError> {
    caller.require(Role::Operator)?;
    let sub = find(&state, &caller, &id).await?;
    let change =
        SubscriptionUpdate { url: req.url, event_types: req.event_types, filter: req.filter, enabled: req.enabled };
    let updated = state
        .subscriptions
        .update(&caller.token.name, sub.id, &change)
        .await
        .map_err(|e| outbox_error(e, "subscription", &id))?;
    Ok(Json(updated))
}

/// Deletes a subscription and its delivery history.
pub(super) async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Operator)?;
    let sub = find(&state, &caller, &id).await?;
    state.subscriptions.delete(&caller.token.name, sub.id).await.map_err(|e| outbox_error(e, "subscription", &id))?;
    tracing::info!(subscription.id = %sub.id, token.id = %caller.token.id, "subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates the signing secret; the previous one keeps signing during the grace period.
pub(super) async fn rotate(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RotateRequest>,
) -> Result<Json<RotateResponse>, ApiError> {
    caller.require(Role::Operator)?;
    let grace = req.grace_seconds.map_or(DEFAULT_GRACE, Duration::from_secs);
    if grace > MAX_GRACE {
        return Err(ApiError::client(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("`grace_seconds` is at most {}", MAX_GRACE.as_secs()),
        ));
    }
    let sub = find(&state, &caller, &id).await?;
    let rotated = state
        .subscriptions
        .rotate_secret(&caller.token.name, sub.id, secret(req.secret), grace)
        .await
        .map_err(|e| outbox_error(e, "subscription", &id))?;
    tracing::info!(subscription.id = %sub.id, token.id = %caller.token.id, "subscription secret rotated");
    Ok(Json(RotateResponse {
        secret: rotated.secret.expose_secret().to_string(),
        previous_valid_until: rotated.previous_valid_until,
    }))
}

/// Queues a `ping` message to the subscription.
pub(super) async fn test(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<QueuedDelivery>), ApiError> {
    caller.require(Role::Operator)?;
    let sub = find(&state, &caller, &id).await?;
    let delivery_id = state.subscriptions.send_test(sub.id).await.map_err(|e| outbox_error(e, "subscription", &id))?;
    Ok((StatusCode::ACCEPTED, Json(QueuedDelivery { delivery_id })))
}
