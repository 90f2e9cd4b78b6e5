//! The node API (`/v1/node/…`): registration with a pre-shared key, then lease, heartbeat, output and finish
//! with a short-lived token. Every refusal is a 4xx with a stable code; see `docs/node-protocol.md`.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use cynode_orchestrator::dispatch::DispatchError;
use cynode_orchestrator::nodes::{self, NodeClaims, RegisterError};
use cynode_protocol::{
    FinishAck, FinishWithOutput, HeartbeatRequest, HeartbeatResponse, LeaseRequest, LeaseResponse, OutputAck,
    OutputBatch, RegisterRequest, RegisterResponse,
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::server::AppState;

/// A JSON body whose problems become clear 400/415 answers in the common error shape.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rej) => {
                let status = if rej.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                } else if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                Err(ApiError::client(status, "invalid_body", rej.body_text()))
            }
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// A node authenticated by its token.
pub struct Node(pub NodeClaims);

impl FromRequestParts<AppState> for Node {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::client(StatusCode::UNAUTHORIZED, "missing_token", "send `Authorization: Bearer <node token>`")
        })?;
        let now = chrono::Utc::now().timestamp();
        state.tokens.verify(token, now).map(Node).map_err(|e| {
            state.metrics.reject("node", e.code());
            ApiError::client(StatusCode::UNAUTHORIZED, e.code(), e.to_string())
        })
    }
}

fn dispatch_error(state: &AppState, e: DispatchError) -> ApiError {
    let status = match &e {
        DispatchError::StaleLease | DispatchError::ConflictingFinish => StatusCode::CONFLICT,
        DispatchError::UnknownJob => StatusCode::NOT_FOUND,
        DispatchError::UnknownNode => StatusCode::UNAUTHORIZED,
        DispatchError::Invalid(_) => StatusCode::BAD_REQUEST,
        DispatchError::Db(_) => return ApiError::Internal(e.into()),
    };
    state.metrics.reject("node", e.code());
    ApiError::client(status, e.code(), e.to_string())
}

/// `POST /v1/node/register`.
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(req): Body<RegisterRequest>,
) -> Result<Json<RegisterResponse>, ApiError> {
    let key = bearer(&headers).ok_or_else(|| {
        ApiError::client(StatusCode::UNAUTHORIZED, "missing_key", "send `Authorization: Bearer <node key>`")
    })?;
    let reg = nodes::register(&state.pool, key, &req).await.map_err(|e| {
        let (status, code) = match &e {
            RegisterError::UnknownKey => (StatusCode::UNAUTHORIZED, "unknown_key"),
            RegisterError::Version { .. } => (StatusCode::BAD_REQUEST, "unsupported_version"),
            RegisterError::NotGranted { .. } => (StatusCode::FORBIDDEN, "not_granted"),
            RegisterError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            RegisterError::Db(_) => return ApiError::Internal(anyhow::anyhow!("{e}")),
        };
        state.metrics.reject("node", code);
        tracing::warn!(reason = code, node = %req.name, "node registration refused");
        ApiError::client(status, code, e.to_string())
    })?;
    state.dispatcher.forget_node(reg.node_id);
    let settings = state.dispatcher.settings();
    let now = chrono::Utc::now().timestamp();
    let ttl = settings.token_ttl.as_secs();
    let claims = NodeClaims {
        sub: reg.node_id,
        key: reg.key_id,
        ver: reg.version,
        iat: now,
        exp: now + i64::try_from(ttl).unwrap_or(900),
    };
    tracing::info!(node.id = %reg.node_id, node = %req.name, "node registered");
    Ok(Json(RegisterResponse {
        node_id: reg.node_id,
        protocol_version: reg.version,
        token: state.tokens.issue(&claims),
        token_expires_in_s: ttl,
        heartbeat_interval_ms: ms(settings.heartbeat_interval),
        lease_ttl_ms: ms(settings.lease_ttl),
        max_wait_ms: ms(settings.max_wait),
    }))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `POST /v1/node/lease` (long poll).
pub async fn lease(
    State(state): State<AppState>,
    Node(node): Node,
    Body(req): Body<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    let leases = state
        .dispatcher
        .lease(node.sub, req.max_jobs, Duration::from_millis(req.wait_ms))
        .await
        .map_err(|e| dispatch_error(&state, e))?;
    Ok(Json(LeaseResponse { leases }))
}

/// `POST /v1/node/heartbeat`.
pub async fn heartbeat(
    State(state): State<AppState>,
    Node(node): Node,
    Body(req): Body<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let r = state.dispatcher.heartbeat(node.sub, &req.leases).await.map_err(|e| dispatch_error(&state, e))?;
    Ok(Json(r))
}

/// `POST /v1/node/output`.
pub async fn output(
    State(state): State<AppState>,
    Node(node): Node,
    Body(batch): Body<OutputBatch>,
) -> Result<Json<OutputAck>, ApiError> {
    let r = state.dispatcher.output(node.sub, &batch).await.map_err(|e| dispatch_error(&state, e))?;
    Ok(Json(r))
}

/// `POST /v1/node/finish` (protocol 2 bodies may carry the job's trailing output).
pub async fn finish(
    State(state): State<AppState>,
    Node(node): Node,
    Body(req): Body<FinishWithOutput>,
) -> Result<Json<FinishAck>, ApiError> {
    let r = state.dispatcher.finish_with_output(node.sub, req).await.map_err(|e| dispatch_error(&state, e))?;
    Ok(Json(r))
}
