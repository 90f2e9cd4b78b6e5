//! Delivery history and replays: `GET /v1/subscriptions/{id}/deliveries`, `POST /v1/subscriptions/{id}/replay`
//! (a time range), `GET /v1/deliveries/{id}` and `POST /v1/deliveries/{id}/replay`. The same scope rules as for
//! subscriptions: a delivery of a subscription the caller may not see answers 404.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::Utc;
use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::outbox::{DeliveryQuery, DeliveryState, ReplayRange};
use serde::Deserialize;

use super::auth::Caller;
use super::model::{ApiJson, limit_param, not_found, parse_id};
use super::model_subs::{Delivery, DeliveryList, QueuedDelivery, ReplayRangeRequest, ReplayRangeResponse};
use super::subscriptions::{find, outbox_error, visible};
use crate::error::ApiError;
use crate::server::AppState;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::client(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// `GET /v1/subscriptions/{id}/deliveries` query.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    state: Option<String>,
    limit: Option<String>,
    before: Option<String>,
}

/// A subscription's deliveries, newest first.
pub(super) async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<DeliveryList>, ApiError> {
    caller.require(Role::Viewer)?;
    let filter = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            serde_json::from_value::<DeliveryState>(serde_json::Value::String(s.into()))
                .map_err(|_| bad("`state` is pending, delivered, failed or dead"))?,
        ),
    };
    let limit = limit_param(q.limit.as_deref(), 50, 1000)?;
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(b) => Some(uuid::Uuid::parse_str(b).map_err(|_| bad("`before` is a delivery id (`next_cursor`)"))?),
    };
    let sub = find(&state, &caller, &id).await?;
    let query = DeliveryQuery { subscription: Some(sub.id), state: filter, before, limit: Some(limit) };
    let deliveries = state.subscriptions.deliveries(&query).await.map_err(|e| ApiError::Internal(e.into()))?;
    let full = usize::try_from(limit).unwrap_or(usize::MAX) == deliveries.len();
    let next_cursor = if full { deliveries.last().map(|d| d.id) } else { None };
    Ok(Json(DeliveryList { deliveries, next_cursor }))
}

/// Resends, with their original `webhook-id`s, the deliveries of `[since, until]` that failed.
pub(super) async fn replay_range(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReplayRangeRequest>,
) -> Result<(StatusCode, Json<ReplayRangeResponse>), ApiError> {
    caller.require(Role::Operator)?;
    let sub = find(&state, &caller, &id).await?;
    let range = ReplayRange {
        from: req.since,
        to: req.until.unwrap_or_else(Utc::now),
        include_delivered: req.include_delivered,
    };
    let queued = state
        .subscriptions
        .replay_range(&caller.token.name, sub.id, &range)
        .await
        .map_err(|e| outbox_error(e, "subscription", &id))?;
    Ok((StatusCode::ACCEPTED, Json(ReplayRangeResponse { queued })))
}

/// The delivery `raw` if the caller may see its subscription.
async fn find_delivery(state: &AppState, caller: &Caller, raw: &str) -> Result<Delivery, ApiError> {
    let id = parse_id("delivery", raw)?;
    let delivery = state.subscriptions.delivery(id).await.map_err(|e| outbox_error(e, "delivery", raw))?;
    let sub = state.subscriptions.get(delivery.subscription_id).await.map_err(|e| outbox_error(e, "delivery", raw))?;
    visible(caller, &sub).then_some(delivery).ok_or_else(|| not_found("delivery", raw))
}

/// One delivery with the outcome of its last attempt.
pub(super) async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(find_delivery(&state, &caller, &id).await?))
}

/// Sends one delivery again with the same `webhook-id`.
pub(super) async fn replay(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<QueuedDelivery>), ApiError> {
    caller.require(Role::Operator)?;
    let d = find_delivery(&state, &caller, &id).await?;
    let delivery_id =
        state.subscriptions.replay(&caller.token.name, d.id).await.map_err(|e| outbox_error(e, "delivery", &id))?;
    Ok((StatusCode::ACCEPTED, Json(QueuedDelivery { delivery_id })))
}
