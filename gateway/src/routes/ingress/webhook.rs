//! Generic signed webhooks: `POST /hooks/{endpoint}`, verified with the endpoint's scheme (`github`:
//! `X-Hub-Signature-256`; `standard`: Standard Webhooks; `hmac`: hex HMAC-SHA256 of the body in the configured
//! header). A new delivery is answered 202 with its task id, a duplicate 200; over the endpoint's rate limit,
//! 429 with `Retry-After`. Under `github` and `hmac`, whose delivery ids are unsigned, the same body again within
//! `ingress.webhook_replay_window_s` is a duplicate too, whatever its delivery id.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cynode_adapters::webhook::standard::StandardSecret;
use cynode_adapters::webhook::{self, Encoding, HmacScheme, Scheme, Secret};
use cynode_adapters::{Parsed, Platform, VerifyError};
use cynode_orchestrator::inbound::{Recorded, Retry};
use cynode_orchestrator::installs::Install;
use secrecy::ExposeSecret as _;

use super::{Outcome, accepts, admit_and_record, found, malformed, refused, unsupported_type};
use crate::error::ApiError;
use crate::ratelimit::retry_after_secs;
use crate::server::AppState;

const ACCEPTED: [&str; 2] = ["application/json", "application/x-www-form-urlencoded"];

/// `POST /hooks/{endpoint}`.
pub async fn hook(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !accepts(&headers, &ACCEPTED) {
        return unsupported_type(&state, Platform::Webhook, &ACCEPTED);
    }
    let install =
        match found(&state, Platform::Webhook, state.ingress.installs.find(Platform::Webhook, &endpoint).await) {
            Ok(i) => i,
            Err(response) => return *response,
        };
    let now = state.clock.now_unix();
    let scheme = match scheme(&install).and_then(|s| webhook::verify(&s, &headers, &body, now).map(|()| s)) {
        Ok(scheme) => scheme,
        Err(e) => return refused(&state, Platform::Webhook, e),
    };
    // GitHub's delivery id is unsigned: a captured body replayed under a new id is caught by its hash.
    let replay_key = webhook::replay_key(&scheme, &body);
    let inbound = match webhook::parse(&install.external_id, &headers, &body) {
        Ok(Parsed::Inbound(inbound)) => inbound,
        Ok(Parsed::Handshake(h)) => return h.body.into_response(),
        Ok(Parsed::Ignored { .. }) => return StatusCode::OK.into_response(),
        Err(e) => return malformed(&state, Platform::Webhook, &e),
    };
    match admit_and_record(&state, &install, inbound, Retry::default(), replay_key, true).await {
        Ok(Outcome::Recorded(Recorded::New { task_id, .. })) => {
            (StatusCode::ACCEPTED, Json(serde_json::json!({ "status": "accepted", "task_id": task_id })))
                .into_response()
        }
        Ok(Outcome::Recorded(Recorded::Duplicate)) => {
            Json(serde_json::json!({ "status": "duplicate" })).into_response()
        }
        Ok(Outcome::Limited { retry_after }) => {
            let secs = retry_after_secs(retry_after);
            let message = format!("this endpoint is over its rate limit; retry in {secs} s");
            let mut response = ApiError::client(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
        Err(response) => *response,
    }
}

/// The endpoint's verification scheme from its settings and secrets.
fn scheme(install: &Install) -> Result<Scheme, VerifyError> {
    let secrets = install.webhook_secrets();
    let raw = || secrets.iter().map(|s| Secret::new(s.expose_secret().as_bytes())).collect::<Result<Vec<_>, _>>();
    match install.settings.scheme.as_deref() {
        Some("github") => Ok(Scheme::GitHub { secrets: raw()? }),
        Some("standard") => Ok(Scheme::Standard {
            secrets: secrets.iter().map(|s| StandardSecret::parse(s.expose_secret())).collect::<Result<_, _>>()?,
        }),
        Some("hmac") => {
            let header = install.settings.header.as_deref().ok_or(VerifyError::InvalidKey)?;
            let header = HeaderName::try_from(header.trim()).map_err(|_| VerifyError::InvalidKey)?;
            Ok(Scheme::Hmac(HmacScheme { header, encoding: Encoding::Hex, prefix: None, secrets: raw()? }))
        }
        _ => Err(VerifyError::InvalidKey),
    }
}
