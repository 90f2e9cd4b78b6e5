//! Generic inbound webhooks (`POST /hooks/{endpoint}`): GitHub, Standard Webhooks or a plain
//! HMAC header, chosen per endpoint with a [`Scheme`].
//!
//! [`verify()`] with the endpoint's scheme, then [`parse()`] the JSON body into an
//! [`InboundKind::Webhook`].

pub mod standard;
mod verify;

use http::HeaderMap;
use serde_json::Value;

pub use verify::{
    CONFIGURED_HEADER_LABEL, Encoding, GITHUB_SIGNATURE_HEADER, HmacScheme, Scheme, Secret, github_signature, verify,
};

use crate::common::{crypto, form::Form, headers, json};
use crate::{Actor, Inbound, InboundKind, ParseError, Parsed, Platform, ThreadRef};

/// GitHub's event name header.
pub const GITHUB_EVENT_HEADER: &str = "x-github-event";
/// GitHub's delivery id header.
pub const GITHUB_DELIVERY_HEADER: &str = "x-github-delivery";

/// The longest header-provided delivery id kept; longer ones fall back to the body hash.
const MAX_DELIVERY_ID_LEN: usize = 200;
/// The longest event name kept.
const MAX_EVENT_LEN: usize = 200;

/// Parses a verified webhook delivery for `endpoint` into an [`InboundKind::Webhook`].
///
/// The body is JSON, or a form with a single `payload` field holding JSON (GitHub's
/// `application/x-www-form-urlencoded` option). The event name comes from `X-GitHub-Event`, else
/// the payload's top-level `type` or `event` string. The delivery id is `webhook-id` (or
/// `svix-id`), else `X-GitHub-Delivery`, else the SHA-256 hex of the raw body.
///
/// `X-GitHub-Delivery` is not covered by GitHub's signature, and GitHub signs no timestamp, so a
/// captured GitHub delivery replayed with a fresh delivery id is not caught by deduplication on the
/// id alone: [`replay_key`] gives the body hash the recorder also deduplicates on, within a window.
/// Standard Webhooks' `webhook-id` is signed.
///
/// The thread's install and channel, and the actor id, are all `endpoint`.
///
/// # Errors
///
/// [`ParseError`] for bodies that are not JSON (or a form without a JSON `payload`).
pub fn parse(endpoint: &str, headers: &HeaderMap, body: &[u8]) -> Result<Parsed, ParseError> {
    let is_form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|ct| ct.to_str().ok())
        .is_some_and(|ct| headers::is_media_type(ct, "application/x-www-form-urlencoded"));
    let payload: Value = if is_form {
        let form = Form::parse(body)?;
        json::from_slice(form.required("payload")?.as_bytes())?
    } else {
        json::from_slice(body)?
    };
    let event = headers::informational(headers, GITHUB_EVENT_HEADER, MAX_EVENT_LEN).map(str::to_owned).or_else(|| {
        ["type", "event"].iter().find_map(|key| {
            payload
                .get(key)
                .and_then(Value::as_str)
                .filter(|e| !e.is_empty() && e.len() <= MAX_EVENT_LEN)
                .map(str::to_owned)
        })
    });
    let delivery_id = [standard::ID_HEADER, "svix-id", GITHUB_DELIVERY_HEADER]
        .into_iter()
        .find_map(|name| headers::informational(headers, name, MAX_DELIVERY_ID_LEN))
        .map_or_else(|| hex::encode(crypto::sha256(body)), str::to_owned);
    Ok(Parsed::Inbound(Inbound {
        platform: Platform::Webhook,
        delivery_id,
        thread: ThreadRef {
            platform: Platform::Webhook,
            install: endpoint.to_owned(),
            channel: endpoint.to_owned(),
            thread: None,
            reply_to: None,
        },
        actor: Actor { id: endpoint.to_owned(), name: None },
        kind: InboundKind::Webhook { event, payload },
        reply_handle: None,
    }))
}

/// The replay key of a verified delivery under `scheme`: the SHA-256 of the raw body when the scheme does not
/// sign the delivery id ([`Scheme::signs_delivery_id`]), else `None`. The recorder treats a second delivery
/// with the same key on the same endpoint within its replay window as a duplicate, whatever its delivery id.
#[must_use]
pub fn replay_key(scheme: &Scheme, body: &[u8]) -> Option<[u8; 32]> {
    (!scheme.signs_delivery_id()).then(|| crypto::sha256(body))
}

#[cfg(test)]
mod tests;
