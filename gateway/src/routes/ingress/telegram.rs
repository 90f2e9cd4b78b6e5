//! Telegram: `POST /telegram/{bot}`, the URL given to `setWebhook` together with the `secret_token`. Every
//! accepted update is acknowledged with an empty 200 (Telegram retries anything else).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cynode_adapters::{Parsed, Platform, VerifyError, telegram};
use cynode_orchestrator::inbound::Retry;
use secrecy::ExposeSecret as _;

use super::{Outcome, accepts, admit_and_record, found, malformed, refused, unsupported_type};
use crate::server::AppState;

const JSON: &str = "application/json";

/// `POST /telegram/{bot}`.
pub async fn webhook(
    State(state): State<AppState>,
    Path(bot): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !accepts(&headers, &[JSON]) {
        return unsupported_type(&state, Platform::Telegram, &[JSON]);
    }
    let install = match found(&state, Platform::Telegram, state.ingress.installs.find(Platform::Telegram, &bot).await) {
        Ok(i) => i,
        Err(response) => return *response,
    };
    let verified = install
        .secret("secret_token")
        .ok_or(VerifyError::InvalidKey)
        .and_then(|secret| telegram::verify(&headers, secret.expose_secret()));
    if let Err(e) = verified {
        return refused(&state, Platform::Telegram, e);
    }
    let username = install.settings.username.as_deref().unwrap_or_default();
    let inbound = match telegram::parse(&body, username) {
        Ok(Parsed::Inbound(inbound)) => inbound,
        Ok(Parsed::Handshake(h)) => return h.body.into_response(),
        Ok(Parsed::Ignored { reason }) => {
            tracing::debug!(reason, "telegram update ignored");
            return StatusCode::OK.into_response();
        }
        Err(e) => return malformed(&state, Platform::Telegram, &e),
    };
    match admit_and_record(&state, &install, inbound, Retry::default(), None, false).await {
        Ok(Outcome::Recorded(_) | Outcome::Limited { .. }) => StatusCode::OK.into_response(),
        Err(response) => *response,
    }
}
