//! Slack: Events API, slash commands and interactivity.
//!
//! Call [`install_hint`] on the raw body to find which app (and so which signing secret) a
//! request claims to be for, then [`verify()`], then [`parse()`]. One app has one signing secret for
//! every workspace it is installed in, so the secret is looked up by `api_app_id`; the workspace
//! (`team_id`) becomes [`ThreadRef::install`](crate::ThreadRef::install).

mod client;
mod events;
mod forms;
mod model;
pub mod render;
mod verify;

use serde_json::Value;

pub use client::{ResponseMode, SlackClient, StreamStart};
pub use render::{SlackMessage, TEXT_LIMIT, render_pages, render_tail};
/// Slack's message metadata (`event_type` and a payload of strings), as [`SlackClient::post_marked`] sends it.
pub use slack_morphism::prelude::SlackMessageMetadata;
pub use verify::{REPLAY_WINDOW_SECS, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify};

use crate::common::{form::Form, headers, json};
use crate::{ParseError, Parsed};

/// Parses a verified Slack request body.
///
/// `content_type` is the request's `Content-Type`: `application/json` bodies are Events API
/// envelopes; `application/x-www-form-urlencoded` bodies are slash commands or, with a single
/// `payload` field, interactions. Without a content type the body is sniffed (`{` means JSON).
///
/// - `url_verification` → [`Parsed::Handshake`] answering the `challenge` as plain text.
/// - `event_callback` with `app_mention`, or `message` in a DM (`channel_type: im`) →
///   [`InboundKind::Mention`](crate::InboundKind::Mention), bot mention stripped, delivery id
///   `event_id`.
/// - Messages with `bot_id` or a `subtype`, other events and envelopes → [`Parsed::Ignored`].
/// - Slash command → [`InboundKind::Command`](crate::InboundKind::Command) (command without the
///   `/`), delivery id `trigger_id`.
/// - `block_actions` → [`InboundKind::Action`](crate::InboundKind::Action) for the first
///   action, delivery id `trigger_id`; other interaction types → [`Parsed::Ignored`].
///
/// # Errors
///
/// [`ParseError`] for malformed JSON or form bodies, unsupported content types and missing
/// required fields.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Parsed, ParseError> {
    if is_json(content_type, body)? { events::parse(body) } else { forms::parse(body) }
}

/// What a request claims about its app and workspace, read before verification.
///
/// **Untrusted** until [`verify()`] has passed with the secret looked up from it: use it only to
/// choose that secret, never for authorisation or as data.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallHint {
    /// The Slack app id (`api_app_id`): the key for the signing secret.
    pub api_app_id: Option<String>,
    /// The workspace id (`team_id`, or `team.id` / `user.team_id` in interactions).
    pub team_id: Option<String>,
    /// The Enterprise Grid organisation id, when present.
    pub enterprise_id: Option<String>,
}

/// Extracts the [`InstallHint`] from a raw (not yet verified) body, or `None` when the body is
/// malformed or names neither an app nor a workspace. Reads the same fields [`parse()`] reads, and
/// both reject repeated form fields, so the two cannot disagree.
#[must_use]
pub fn install_hint(content_type: Option<&str>, body: &[u8]) -> Option<InstallHint> {
    let hint = if is_json(content_type, body).ok()? {
        let value: Value = json::from_slice(body).ok()?;
        hint_from_json(&value)
    } else {
        let form = Form::parse(body).ok()?;
        match form.get("payload") {
            Some(payload) => hint_from_json(&json::from_slice::<Value>(payload.as_bytes()).ok()?),
            None => InstallHint {
                api_app_id: owned(form.get("api_app_id")),
                team_id: owned(form.get("team_id")),
                enterprise_id: owned(form.get("enterprise_id")),
            },
        }
    };
    (hint.api_app_id.is_some() || hint.team_id.is_some()).then_some(hint)
}

fn hint_from_json(value: &Value) -> InstallHint {
    let str_at = |pointer: &str| owned(value.pointer(pointer).and_then(Value::as_str));
    InstallHint {
        api_app_id: str_at("/api_app_id"),
        team_id: str_at("/team_id").or_else(|| str_at("/team/id")).or_else(|| str_at("/user/team_id")),
        enterprise_id: str_at("/enterprise_id").or_else(|| str_at("/enterprise/id")),
    }
}

fn owned(value: Option<&str>) -> Option<String> {
    value.filter(|v| !v.is_empty()).map(str::to_owned)
}

fn is_json(content_type: Option<&str>, body: &[u8]) -> Result<bool, ParseError> {
    match content_type {
        Some(ct) if headers::is_media_type(ct, "application/json") => Ok(true),
        Some(ct) if headers::is_media_type(ct, "application/x-www-form-urlencoded") => Ok(false),
        Some(_) => Err(ParseError::UnsupportedContentType),
        None => Ok(body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')),
    }
}

#[cfg(test)]
mod tests;
