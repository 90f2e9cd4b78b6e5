//! Discord: interactions over HTTP (slash commands and message components).
//!
//! [`verify()`] with the application's [`PublicKey`], then [`parse()`]. A PING is answered with the
//! [`Parsed::Handshake`] body; other interactions need an initial response within 3 seconds,
//! usually [`deferred_response`], after which the [`ReplyHandle::Discord`] token edits the
//! response for 15 minutes.

mod client;
mod model;
mod options;
pub mod render;
mod verify;

use serde::Deserialize;
use serde_json::Value;

pub use client::{DiscordClient, InteractionToken};
pub use render::{CONTENT_LIMIT, DiscordMessage, EPHEMERAL_FLAG, render_pages, render_tail};
pub use verify::{DEFAULT_WINDOW_SECS, PublicKey, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify};

use self::model::{CommandData, ComponentData, Interaction};
use crate::common::{json, non_empty};
use crate::{
    Actor, HandshakeResponse, Inbound, InboundKind, ParseError, Parsed, Platform, ReplyHandle, ThreadRef,
    split_compact_action,
};

const JSON: &str = "application/json";

/// Channel types that are threads: announcement, public and private threads.
const THREAD_CHANNEL_TYPES: [u64; 3] = [10, 11, 12];

/// The deferred initial responses CyNode uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeferredKind {
    /// Type 5, DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: the user sees "thinking…" until the
    /// original response is edited. For commands.
    ChannelMessage,
    /// Type 6, DEFERRED_UPDATE_MESSAGE: acknowledges a component click without a visible
    /// change; the message is edited later. For components.
    UpdateMessage,
}

/// The HTTP 200 response that defers an interaction's answer.
#[must_use]
pub fn deferred_response(kind: DeferredKind) -> HandshakeResponse {
    let body: &[u8] = match kind {
        DeferredKind::ChannelMessage => br#"{"type":5}"#,
        DeferredKind::UpdateMessage => br#"{"type":6}"#,
    };
    HandshakeResponse { content_type: JSON, body: body.to_vec() }
}

/// Parses a verified interaction body.
///
/// - Type 1 PING → [`Parsed::Handshake`] with `{"type":1}` as `application/json`.
/// - Type 2 APPLICATION_COMMAND → [`InboundKind::Command`]: the command name, and its options
///   flattened to text: subcommand names in order, then `--flag` for true booleans and
///   `--name value` for other named options, then the values of free-text options (`text`,
///   `command`, `cmd`, `prompt`, `args`, `input`, `id`). `/cynode run command:echo hi` gives
///   command `cynode`, text `run echo hi`.
/// - Type 3 MESSAGE_COMPONENT → [`InboundKind::Action`]: `custom_id` split as a compact action
///   (`action_id:value`); select menus' chosen values replace the value, joined with `,`.
/// - Autocomplete, modal submits and unknown types → [`Parsed::Ignored`].
///
/// The delivery id is the interaction id; the install is the application id. In a thread, the
/// [`ThreadRef`] has the parent channel and the thread id.
///
/// # Errors
///
/// [`ParseError`] for malformed JSON and missing required fields.
pub fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let value: Value = json::from_slice(body)?;
    let kind =
        value.get("type").ok_or(ParseError::MissingField("type"))?.as_u64().ok_or(ParseError::InvalidField("type"))?;
    match kind {
        1 => Ok(Parsed::Handshake(HandshakeResponse { content_type: JSON, body: br#"{"type":1}"#.to_vec() })),
        2 => {
            let data = CommandData::deserialize(value.get("data").ok_or(ParseError::MissingField("data"))?)
                .map_err(|_| ParseError::InvalidField("data"))?;
            let command = non_empty(data.name, "data.name")?;
            let text = options::flatten(data.options.as_deref().unwrap_or_default());
            inbound(&value, InboundKind::Command { command, text })
        }
        3 => {
            let data = ComponentData::deserialize(value.get("data").ok_or(ParseError::MissingField("data"))?)
                .map_err(|_| ParseError::InvalidField("data"))?;
            let custom_id = non_empty(data.custom_id, "data.custom_id")?;
            let (action_id, value_part) = split_compact_action(&custom_id);
            let chosen = data.values.filter(|v| !v.is_empty()).map(|v| v.join(","));
            let message_ref = value.pointer("/message/id").and_then(Value::as_str).map(str::to_owned);
            let kind = InboundKind::Action {
                action_id: action_id.to_owned(),
                value: chosen.unwrap_or_else(|| value_part.to_owned()),
                message_ref,
            };
            inbound(&value, kind)
        }
        4 => Ok(Parsed::Ignored { reason: "autocomplete is not supported" }),
        5 => Ok(Parsed::Ignored { reason: "modal submits are not supported" }),
        _ => Ok(Parsed::Ignored { reason: "unsupported discord interaction type" }),
    }
}

fn inbound(value: &Value, kind: InboundKind) -> Result<Parsed, ParseError> {
    let interaction = Interaction::deserialize(value).map_err(|_| ParseError::InvalidField("interaction"))?;
    let application_id = non_empty(interaction.application_id, "application_id")?;
    // The name the guild shows: the member's nickname, else the user's global display name, else the username.
    let (user, nick) = match interaction.member {
        Some(m) => (m.user, m.nick),
        None => (None, None),
    };
    let user = user.or(interaction.user).ok_or(ParseError::MissingField("member.user"))?;
    let channel_id = interaction.channel_id.or_else(|| interaction.channel.as_ref().and_then(|c| c.id.clone()));
    let channel_id = non_empty(channel_id, "channel_id")?;
    let (channel, thread) = match interaction.channel {
        Some(c) if c.kind.is_some_and(|k| THREAD_CHANNEL_TYPES.contains(&k)) => {
            (c.parent_id.unwrap_or_else(|| channel_id.clone()), Some(channel_id))
        }
        _ => (channel_id, None),
    };
    Ok(Parsed::Inbound(Inbound {
        platform: Platform::Discord,
        delivery_id: non_empty(interaction.id, "id")?,
        thread: ThreadRef {
            platform: Platform::Discord,
            install: application_id.clone(),
            channel,
            thread,
            reply_to: None,
        },
        actor: Actor {
            id: non_empty(user.id, "user.id")?,
            name: non_blank(nick).or(non_blank(user.global_name)).or(non_blank(user.username)),
        },
        kind,
        reply_handle: Some(ReplyHandle::Discord { application_id, token: non_empty(interaction.token, "token")? }),
    }))
}

/// A name that is present and not blank.
fn non_blank(name: Option<String>) -> Option<String> {
    name.filter(|n| !n.trim().is_empty())
}

#[cfg(test)]
mod tests;
