//! Platform ingress: `POST /slack/events|commands|interactions`, `/discord/interactions`, `/telegram/{bot}`,
//! `/hooks/{endpoint}`.
//!
//! Every handler takes the headers and the raw body and goes through the same steps:
//!
//! 1. **Content type** — a type the endpoint cannot parse is 415 (before anything else; it reveals nothing).
//! 2. **Install** — found from what the request names (Slack team or app id, Discord application id, the
//!    Telegram or webhook path); its secrets come from the store through a short TTL cache.
//! 3. **Verify** the raw bytes with the install's secret (adapters: constant time, replay windows). Unknown or
//!    disabled installs and every verification failure get a bare 401; the reason goes to one log line and
//!    the `cynode_rejected_requests_total{platform,reason}` metric, never to the body.
//! 4. **Parse** into a neutral `Inbound` (400 with a message that never quotes the body); handshakes are
//!    answered here, unknown event types acknowledged and ignored.
//! 5. **Admit** against the rate limits (chat: the normal ack and a "slow down" notice at most once per user
//!    per window, no work; webhooks: 429 with `Retry-After`).
//! 6. **Record** durably (group commit: the event, its conversation and its task in one transaction), then
//!    **ack**. A duplicate delivery is acknowledged and creates nothing.

pub mod discord;
pub mod slack;
pub mod telegram;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cynode_adapters::{Inbound, Platform, VerifyError};
use cynode_orchestrator::inbound::{
    InterpreterSettings, NewInbound, Notice, Recorded, Recorder, RecorderSettings, Retry, record_notice,
};
use cynode_orchestrator::installs::{Install, InstallError, Installs, Lookup};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ratelimit::{Admission, RateLimits, RateSettings, Who, notice_text};
use crate::server::AppState;

/// Ingress settings (configuration `ingress` and `limits.rate`).
#[derive(Debug, Clone)]
pub struct IngressSettings {
    /// Group commit of inbound requests.
    pub recorder: RecorderSettings,
    /// Interpretation of recorded tasks.
    pub interpreter: InterpreterSettings,
    /// Default rate limits.
    pub rate: RateSettings,
    /// How long install lookups are cached.
    pub install_cache_ttl: Duration,
    /// How long a request waits for its durable record before the answer is 503.
    pub record_timeout: Duration,
    /// Freshness window of Discord's signed timestamp, in seconds.
    pub discord_window_s: u32,
}

impl Default for IngressSettings {
    fn default() -> Self {
        Self {
            recorder: RecorderSettings::default(),
            interpreter: InterpreterSettings::default(),
            rate: RateSettings::default(),
            install_cache_ttl: Duration::from_secs(10),
            record_timeout: Duration::from_millis(2500),
            discord_window_s: cynode_adapters::discord::DEFAULT_WINDOW_SECS,
        }
    }
}

/// What the ingress handlers share.
#[derive(Debug)]
pub struct Ingress {
    /// Install lookups (cached).
    pub installs: Installs,
    /// The group-commit recorder.
    pub recorder: Recorder,
    /// Rate limits.
    pub limits: RateLimits,
    /// Settings.
    pub settings: IngressSettings,
    /// Refused requests, counted for the audit log.
    pub refusals: Arc<cynode_orchestrator::audit::Refusals>,
}

/// The result of admitting and recording one verified request.
pub(crate) enum Outcome {
    /// Recorded (or recognised as a duplicate).
    Recorded(Recorded),
    /// Over a limit; nothing recorded but, for chat, at most one notice per window.
    Limited {
        /// How long until it would be admitted.
        retry_after: Duration,
    },
}

/// A response that ends a request early (boxed: a `Response` is large).
pub(crate) type Early = Box<Response>;

/// Counts and logs a refused request and answers a bare 401.
pub(crate) fn unauthorized(state: &AppState, platform: Platform, reason: &'static str) -> Response {
    state.metrics.reject(platform.as_str(), reason);
    state.ingress.refusals.note(platform.as_str(), reason);
    tracing::warn!(platform = platform.as_str(), reason, "platform request refused");
    StatusCode::UNAUTHORIZED.into_response()
}

/// [`unauthorized`] for a verification failure.
pub(crate) fn refused(state: &AppState, platform: Platform, e: VerifyError) -> Response {
    if e == VerifyError::InvalidKey {
        tracing::error!(platform = platform.as_str(), "an install's configured verification key is invalid");
    }
    unauthorized(state, platform, e.reason())
}

/// Turns a lookup into the install, or the response refusing the request.
pub(crate) fn found(
    state: &AppState,
    platform: Platform,
    lookup: Result<Lookup, InstallError>,
) -> Result<Arc<Install>, Early> {
    match lookup {
        Ok(Lookup::Found(install)) => Ok(install),
        Ok(Lookup::Unknown) => Err(Box::new(unauthorized(state, platform, "unknown_install"))),
        Ok(Lookup::Disabled) => Err(Box::new(unauthorized(state, platform, "disabled_install"))),
        Err(e @ InstallError::Unusable { .. }) => {
            tracing::error!(error = %e, "refusing a request for an unusable install");
            Err(Box::new(unauthorized(state, platform, "unusable_install")))
        }
        Err(e @ InstallError::Store(_)) => Err(Box::new(ApiError::Internal(e.into()).into_response())),
    }
}

/// A 400 for a verified body that does not parse. The message names positions and fields, never content.
pub(crate) fn malformed(state: &AppState, platform: Platform, e: &cynode_adapters::ParseError) -> Response {
    state.metrics.reject(platform.as_str(), e.reason());
    tracing::info!(platform = platform.as_str(), reason = e.reason(), error = %e, "malformed platform request");
    let status = if *e == cynode_adapters::ParseError::UnsupportedContentType {
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    } else {
        StatusCode::BAD_REQUEST
    };
    ApiError::client(status, "invalid_body", e.to_string()).into_response()
}

/// The request's `Content-Type`, when it is readable.
pub(crate) fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

/// Whether the content type is absent or one of `accepted` (parameters and case ignored).
pub(crate) fn accepts(headers: &HeaderMap, accepted: &[&str]) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        None => true,
        Some(v) => v.to_str().ok().and_then(|ct| ct.split(';').next()).is_some_and(|media| {
            let media = media.trim();
            accepted.iter().any(|a| media.eq_ignore_ascii_case(a))
        }),
    }
}

/// A 415 naming what the endpoint accepts.
pub(crate) fn unsupported_type(state: &AppState, platform: Platform, accepted: &[&str]) -> Response {
    state.metrics.reject(platform.as_str(), "unsupported_content_type");
    let message = format!("unsupported Content-Type; send {}", accepted.join(" or "));
    ApiError::client(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", message).into_response()
}

/// Admits `inbound` against the rate limits and records it durably. `replay_key` is the body hash of a webhook
/// whose delivery id is unsigned ([`NewInbound::replay_key`]).
///
/// A chat request over a limit is not recorded; the first time in the window its user gets a "slow down"
/// notice, stored as an answered task in the request's thread (unless `notice_inline`: the platform's response
/// carries it).
pub(crate) async fn admit_and_record(
    state: &AppState,
    install: &Install,
    inbound: Inbound,
    retry: Retry,
    replay_key: Option<[u8; 32]>,
    notice_inline: bool,
) -> Result<Outcome, Early> {
    let platform = inbound.platform;
    let who = match platform {
        Platform::Webhook => Who::Webhook,
        _ => Who::Chat { user: &inbound.actor.id, channel: &inbound.thread.channel },
    };
    let ingress = &state.ingress;
    if let Admission::Limited { scope, retry_after, notify } =
        ingress.limits.check(install.id, install.settings.rate_limits, who)
    {
        state.metrics.reject(platform.as_str(), "rate_limited");
        tracing::info!(platform = platform.as_str(), install = %install.id, scope = scope.as_str(), "request over the rate limit");
        if notify && !notice_inline {
            let text = notice_text(retry_after);
            let notice =
                Notice { install_id: install.id, thread: &inbound.thread, requester: &inbound.actor.id, text: &text };
            if let Err(e) = record_notice(&state.pool, &notice).await {
                tracing::warn!(error = %e, "could not record a rate-limit notice");
            }
        }
        return Ok(Outcome::Limited { retry_after });
    }
    let new = NewInbound { install_id: install.id, inbound, retry, replay_key };
    match tokio::time::timeout(ingress.settings.record_timeout, ingress.recorder.record(new)).await {
        Ok(Ok(recorded)) => {
            if recorded == Recorded::Duplicate {
                state.metrics.reject(platform.as_str(), "duplicate");
                tracing::debug!(platform = platform.as_str(), "duplicate delivery acknowledged");
            }
            Ok(Outcome::Recorded(recorded))
        }
        Ok(Err(e)) => {
            // The database is away (restarting, cut off, out of connections) or the process is stopping: the
            // request is not recorded, so it must not be acknowledged; the platform retries.
            tracing::warn!(platform = platform.as_str(), error = %e, "recording a request failed; answering 503");
            state.metrics.reject(platform.as_str(), "record_failed");
            Err(Box::new(busy()))
        }
        Err(_) => {
            tracing::warn!(platform = platform.as_str(), "recording a request took too long; answering 503");
            state.metrics.reject(platform.as_str(), "record_timeout");
            Err(Box::new(busy()))
        }
    }
}

fn busy() -> Response {
    let body = ApiError::client(StatusCode::SERVICE_UNAVAILABLE, "busy", "the server is busy; retry shortly");
    let mut response = body.into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// What the 413 middleware needs.
#[derive(Debug, Clone)]
pub struct BodyLimit {
    /// The configured cap in bytes.
    pub max_body_bytes: usize,
    /// Metrics, to count refused ingress requests.
    pub metrics: Arc<Metrics>,
}

/// Rewrites every 413 (from the body limit layer, or a handler that hit the limit while reading) into the
/// common error shape naming the limit, and counts it for ingress routes.
pub async fn payload_too_large(State(limit): State<BodyLimit>, req: Request, next: Next) -> Response {
    let platform = platform_of(req.uri().path());
    let response = next.run(req).await;
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    if let Some(p) = platform {
        limit.metrics.reject(p.as_str(), "payload_too_large");
        tracing::info!(platform = p.as_str(), "request body over the limit");
    }
    let message = format!("request body is larger than the limit of {} bytes", limit.max_body_bytes);
    ApiError::client(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message).into_response()
}

fn platform_of(path: &str) -> Option<Platform> {
    let first = path.trim_start_matches('/').split('/').next()?;
    match first {
        "slack" => Some(Platform::Slack),
        "discord" => Some(Platform::Discord),
        "telegram" => Some(Platform::Telegram),
        "hooks" => Some(Platform::Webhook),
        _ => None,
    }
}
