//! Slack: `POST /slack/events` (Events API, JSON), `/slack/commands` (slash commands, form) and
//! `/slack/interactions` (`payload=` form). Every accepted request is acknowledged with an empty 200, the ack
//! Slack expects within 3 s (any other status makes Slack retry).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cynode_adapters::{Parsed, Platform, VerifyError, slack};
use cynode_orchestrator::inbound::Retry;
use cynode_orchestrator::installs::Install;
use secrecy::ExposeSecret as _;

use super::{Early, Outcome, accepts, admit_and_record, content_type, found, malformed, refused, unauthorized};
use crate::server::AppState;

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";
/// Sent with answers Slack should not retry (malformed or unsupported requests).
const NO_RETRY: HeaderName = HeaderName::from_static("x-slack-no-retry");
const RETRY_NUM: &str = "x-slack-retry-num";
const RETRY_REASON: &str = "x-slack-retry-reason";

/// `POST /slack/events`.
pub async fn events(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(&state, &headers, &body, JSON).await
}

/// `POST /slack/commands`.
pub async fn commands(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(&state, &headers, &body, FORM).await
}

/// `POST /slack/interactions`.
pub async fn interactions(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(&state, &headers, &body, FORM).await
}

async fn handle(state: &AppState, headers: &HeaderMap, body: &[u8], accepted: &'static str) -> Response {
    if !accepts(headers, &[accepted]) {
        return no_retry(super::unsupported_type(state, Platform::Slack, &[accepted]));
    }
    let ct = content_type(headers);
    let now = state.clock.now_unix();
    let install = match slack::install_hint(ct, body) {
        Some(hint) => {
            let lookup = state.ingress.installs.find_slack(hint.team_id.as_deref(), hint.api_app_id.as_deref()).await;
            let install = match found(state, Platform::Slack, lookup) {
                Ok(i) => i,
                Err(response) => return *response,
            };
            if let (Some(want), Some(got)) = (&install.settings.api_app_id, &hint.api_app_id)
                && want != got
            {
                return unauthorized(state, Platform::Slack, "app_mismatch");
            }
            if let Err(e) = verify(&install, headers, body, now) {
                return refused(state, Platform::Slack, e);
            }
            install
        }
        // Names no team or app (`url_verification`, or a body we cannot read): whichever install's secret
        // verifies it.
        None => match verify_any(state, headers, body, now).await {
            Ok(install) => install,
            Err(response) => return *response,
        },
    };
    let inbound = match slack::parse(ct, body) {
        Ok(Parsed::Inbound(inbound)) => inbound,
        Ok(Parsed::Handshake(h)) => {
            return ([(axum::http::header::CONTENT_TYPE, h.content_type)], h.body).into_response();
        }
        Ok(Parsed::Ignored { reason }) => {
            tracing::debug!(reason, "slack delivery ignored");
            return StatusCode::OK.into_response();
        }
        Err(e) => return no_retry(malformed(state, Platform::Slack, &e)),
    };
    match admit_and_record(state, &install, inbound, retry(headers), None, false).await {
        Ok(Outcome::Recorded(_) | Outcome::Limited { .. }) => StatusCode::OK.into_response(),
        Err(response) => *response,
    }
}

fn verify(install: &Install, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
    let secret = install.secret("signing_secret").ok_or(VerifyError::InvalidKey)?;
    slack::verify(headers, body, secret.expose_secret().as_bytes(), now)
}

async fn verify_any(state: &AppState, headers: &HeaderMap, body: &[u8], now: i64) -> Result<Arc<Install>, Early> {
    let candidates = state
        .ingress
        .installs
        .enabled(Platform::Slack)
        .await
        .map_err(|e| Box::new(crate::error::ApiError::Internal(e.into()).into_response()))?;
    if candidates.is_empty() {
        return Err(Box::new(unauthorized(state, Platform::Slack, "unknown_install")));
    }
    for install in candidates.iter() {
        match verify(install, headers, body, now) {
            Ok(()) => return Ok(install.clone()),
            Err(VerifyError::BadSignature | VerifyError::InvalidKey) => {}
            Err(e) => return Err(Box::new(refused(state, Platform::Slack, e))),
        }
    }
    Err(Box::new(refused(state, Platform::Slack, VerifyError::BadSignature)))
}

/// Slack's redelivery headers, kept when well-formed.
fn retry(headers: &HeaderMap) -> Retry {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    Retry {
        num: text(RETRY_NUM).and_then(|n| n.parse::<i32>().ok()).filter(|n| (0..=100).contains(n)),
        reason: text(RETRY_REASON)
            .filter(|r| !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .map(str::to_string),
    }
}

fn no_retry(mut response: Response) -> Response {
    response.headers_mut().insert(NO_RETRY, HeaderValue::from_static("1"));
    response
}
