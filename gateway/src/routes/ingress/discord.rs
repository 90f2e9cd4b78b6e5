//! Discord: `POST /discord/interactions`. PING is answered `{"type":1}`; commands get the deferred response
//! type 5 ("thinking…") and components type 6 once recorded, inside Discord's 3 s deadline; a user over a rate
//! limit gets an ephemeral "slow down" message as the response itself (type 4).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use cynode_adapters::discord::{self, DeferredKind, PublicKey};
use cynode_adapters::{HandshakeResponse, InboundKind, Parsed, Platform, VerifyError};
use cynode_orchestrator::inbound::Retry;
use cynode_orchestrator::installs::Install;
use serde::Deserialize;

use super::{Early, Outcome, accepts, admit_and_record, found, malformed, refused, unauthorized, unsupported_type};
use crate::ratelimit::notice_text;
use crate::server::AppState;

const JSON: &str = "application/json";
/// Discord's flag for a message only the invoking user sees.
const EPHEMERAL: u64 = 64;

/// What the body claims about its application, read before verification. **Untrusted**: only used to choose
/// the public key.
#[derive(Deserialize)]
struct Hint {
    application_id: Option<String>,
}

/// `POST /discord/interactions`.
pub async fn interactions(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !accepts(&headers, &[JSON]) {
        return unsupported_type(&state, Platform::Discord, &[JSON]);
    }
    let now = state.clock.now_unix();
    let window = state.ingress.settings.discord_window_s;
    let hint = serde_json::from_slice::<Hint>(&body).ok().and_then(|h| h.application_id).filter(|a| !a.is_empty());
    let install = match hint {
        Some(app) => {
            let install =
                match found(&state, Platform::Discord, state.ingress.installs.find(Platform::Discord, &app).await) {
                    Ok(i) => i,
                    Err(response) => return *response,
                };
            if let Err(e) = verify(&install, &headers, &body, now, window) {
                return refused(&state, Platform::Discord, e);
            }
            install
        }
        // A body that names no application: whichever install's key verifies it (then parsing says what is
        // wrong with it).
        None => match verify_any(&state, &headers, &body, now, window).await {
            Ok(install) => install,
            Err(response) => return *response,
        },
    };
    let inbound = match discord::parse(&body) {
        Ok(Parsed::Inbound(inbound)) => inbound,
        Ok(Parsed::Handshake(h)) => return respond(h),
        Ok(Parsed::Ignored { reason }) => {
            tracing::debug!(reason, "discord interaction ignored");
            return respond(discord::deferred_response(DeferredKind::UpdateMessage));
        }
        Err(e) => return malformed(&state, Platform::Discord, &e),
    };
    let deferred = match inbound.kind {
        InboundKind::Action { .. } => DeferredKind::UpdateMessage,
        _ => DeferredKind::ChannelMessage,
    };
    match admit_and_record(&state, &install, inbound, Retry::default(), None, true).await {
        Ok(Outcome::Recorded(_)) => respond(discord::deferred_response(deferred)),
        Ok(Outcome::Limited { retry_after }) => {
            let body =
                serde_json::json!({ "type": 4, "data": { "content": notice_text(retry_after), "flags": EPHEMERAL } });
            axum::Json(body).into_response()
        }
        Err(response) => *response,
    }
}

fn respond(h: HandshakeResponse) -> Response {
    ([(header::CONTENT_TYPE, h.content_type)], h.body).into_response()
}

fn verify(install: &Install, headers: &HeaderMap, body: &[u8], now: i64, window: u32) -> Result<(), VerifyError> {
    let key = install.settings.public_key.as_deref().ok_or(VerifyError::InvalidKey)?;
    let key = PublicKey::from_hex(key)?;
    discord::verify(headers, body, &key, now, window)
}

async fn verify_any(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
    window: u32,
) -> Result<Arc<Install>, Early> {
    let candidates = state
        .ingress
        .installs
        .enabled(Platform::Discord)
        .await
        .map_err(|e| Box::new(crate::error::ApiError::Internal(e.into()).into_response()))?;
    if candidates.is_empty() {
        return Err(Box::new(unauthorized(state, Platform::Discord, "unknown_install")));
    }
    for install in candidates.iter() {
        match verify(install, headers, body, now, window) {
            Ok(()) => return Ok(install.clone()),
            Err(VerifyError::BadSignature | VerifyError::InvalidKey) => {}
            Err(e) => return Err(Box::new(refused(state, Platform::Discord, e))),
        }
    }
    Err(Box::new(refused(state, Platform::Discord, VerifyError::BadSignature)))
}
