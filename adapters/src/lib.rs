//! CyNode platform adapters: verify raw requests, parse them into a neutral [`Inbound`], render
//! neutral replies, and talk to each platform's API.
//!
//! # The ingress contract
//!
//! Every platform module ([`slack`], [`discord`], [`telegram`], [`webhook`]) exposes two steps that
//! the gateway calls in this order, on the raw headers and the raw body bytes exactly as received:
//!
//! 1. `verify(…)` checks that the request really comes from the platform (HMAC or Ed25519
//!    signature, or a shared secret token) and, where the platform signs a timestamp, that it lies
//!    inside the replay window. Comparisons are constant-time and every failure is an error: the
//!    gateway answers a bare 401 on any [`VerifyError`]. Verification never reads a clock; callers
//!    pass `now_unix` (usually from a [`Clock`]) so tests control time.
//! 2. `parse(…)` turns the verified body into a [`Parsed`]: a platform [`Handshake`] to answer
//!    directly (Slack `url_verification`, Discord PING), a neutral [`Inbound`] to record and act on,
//!    or [`Parsed::Ignored`] for deliveries that must be acknowledged but do nothing (unknown event
//!    types, the bot's own messages, edits). Malformed bodies give a [`ParseError`].
//!
//! Nothing here panics on any input, and neither error type ever carries the body or a secret in
//! its `Display`, so both are safe to log and to use as metric labels (see their `reason()`).
//!
//! [`Handshake`]: Parsed::Handshake

mod clock;
mod common;
mod error;

pub mod discord;
pub mod outbound;
pub mod reply;
pub mod slack;
pub mod split;
pub mod telegram;
pub mod webhook;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ParseError, VerifyError};
pub use outbound::{MessageRef, PlatformError, PlatformResult, RateLimit, Sent};
pub use reply::{
    APPROVE_ACTION, Access, ApprovalCard, ApprovalState, Button, ButtonError, ButtonStyle, CANCEL_ACTION, DENY_ACTION,
    Reply, code_block,
};

/// The maximum nesting depth of a JSON body (objects and arrays) that any parser accepts.
///
/// The limit is checked on the raw bytes before deserialising, so a deeply nested body cannot
/// exhaust the stack.
pub const MAX_JSON_DEPTH: usize = 64;

/// The chat or webhook platform a request came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Slack (Events API, slash commands, interactivity).
    Slack,
    /// Discord (interactions over HTTP).
    Discord,
    /// Telegram (Bot API webhooks).
    Telegram,
    /// A generic signed inbound webhook (GitHub, Standard Webhooks, plain HMAC).
    Webhook,
}

impl Platform {
    /// The lowercase name used in database keys, metrics and logs: `"slack"`, `"discord"`,
    /// `"telegram"` or `"webhook"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Telegram => "telegram",
            Self::Webhook => "webhook",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a conversation lives, precisely enough to reply into the same thread.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ThreadRef {
    /// The platform.
    pub platform: Platform,
    /// The installation: Slack team id, Discord application id, Telegram bot username (without
    /// `@`), or the webhook endpoint name.
    pub install: String,
    /// The channel: Slack channel id, Discord channel id (the parent channel when the
    /// interaction happened inside a thread), Telegram chat id, webhook endpoint name.
    pub channel: String,
    /// The thread inside the channel: Slack `thread_ts` (or the `ts` of the message that starts
    /// the thread), Telegram `message_thread_id`, Discord thread channel id; `None` when the
    /// conversation is not threaded.
    pub thread: Option<String>,
    /// The user's message a reply should attach to: Slack `ts`, Telegram `message_id`.
    pub reply_to: Option<String>,
}

/// Who sent a request, as the platform identifies them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The platform's user id (Slack `U…`, Discord snowflake, Telegram numeric id, or the webhook
    /// endpoint for generic webhooks).
    pub id: String,
    /// A display name when the platform sends one; informational only, never used for
    /// authorisation.
    pub name: Option<String>,
}

/// What the sender asked for, independent of the platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InboundKind {
    /// Free text addressed to the bot: a Slack `app_mention` or direct message, a Telegram message
    /// that mentions the bot, replies to it, or is sent in a private chat. The bot mention itself
    /// is removed and the text trimmed.
    Mention {
        /// The text with the bot mention stripped.
        text: String,
    },
    /// An explicit command: Slack slash command, Discord application command, Telegram
    /// `/command` (with or without `@botname`).
    Command {
        /// The command name without the leading `/` or a Telegram `@botname` suffix, e.g.
        /// `cynode`.
        command: String,
        /// The arguments as one string (Discord options are flattened into it).
        text: String,
    },
    /// A click on an interactive element (button, select menu).
    ///
    /// Slack sends `action_id` and `value` separately. Discord `custom_id` and Telegram
    /// `callback_data` hold one string, which is split with the compact encoding of
    /// [`compact_action`]: `action_id:value`.
    Action {
        /// The element's action id.
        action_id: String,
        /// The element's value (Discord select menus: selected values joined with `,`).
        value: String,
        /// The id of the message that carried the element (Slack `ts`, Discord and Telegram
        /// message id), when known.
        message_ref: Option<String>,
    },
    /// A generic webhook delivery.
    Webhook {
        /// The event name from `X-GitHub-Event` or the payload's `type`/`event` field.
        event: Option<String>,
        /// The JSON payload.
        payload: serde_json::Value,
    },
}

/// Platform context needed later to answer an inbound request.
///
/// Some fields are short-lived credentials (a Slack `response_url` lets anyone post into the
/// channel; a Discord interaction token lets anyone edit the response for 15 minutes), so the
/// `Debug` output redacts them. They are serialised in full because the inbound is stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "lowercase")]
pub enum ReplyHandle {
    /// Slack slash command or interaction.
    Slack {
        /// The `response_url` (usable 5 times within 30 minutes).
        response_url: Option<String>,
        /// The `trigger_id`, needed to open a modal within 3 seconds.
        trigger_id: Option<String>,
    },
    /// Discord interaction.
    Discord {
        /// The application id (the webhook id for follow-ups).
        application_id: String,
        /// The interaction token (valid 15 minutes).
        token: String,
    },
    /// Telegram callback query, which must always be answered.
    Telegram {
        /// The callback query id for `answerCallbackQuery`.
        callback_query_id: String,
    },
}

impl fmt::Debug for ReplyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REDACTED: &str = "<redacted>";
        match self {
            Self::Slack { response_url, trigger_id } => f
                .debug_struct("Slack")
                .field("response_url", &response_url.as_ref().map(|_| REDACTED))
                .field("trigger_id", trigger_id)
                .finish(),
            Self::Discord { application_id, .. } => {
                f.debug_struct("Discord").field("application_id", application_id).field("token", &REDACTED).finish()
            }
            Self::Telegram { callback_query_id } => {
                f.debug_struct("Telegram").field("callback_query_id", callback_query_id).finish()
            }
        }
    }
}

/// A verified request in platform-neutral form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    /// The platform.
    pub platform: Platform,
    /// The platform's dedupe key for this delivery: Slack `event_id` (or `trigger_id` for slash
    /// commands and interactions), Discord interaction id, Telegram `update_id`, webhook
    /// `webhook-id` / `X-GitHub-Delivery` / SHA-256 hex of the body. Unique per
    /// `(platform, thread.install)`.
    pub delivery_id: String,
    /// Where to answer.
    pub thread: ThreadRef,
    /// Who sent it.
    pub actor: Actor,
    /// What was asked.
    pub kind: InboundKind,
    /// Platform reply context, when the platform gives one.
    pub reply_handle: Option<ReplyHandle>,
}

/// The result of parsing a verified request.
#[derive(Clone, Debug, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "built once per request and moved straight to the caller; boxing buys nothing"
)]
pub enum Parsed {
    /// A platform handshake to answer with this exact response (Slack `url_verification`,
    /// Discord PING); nothing is recorded.
    Handshake(HandshakeResponse),
    /// A request to record and act on.
    Inbound(Inbound),
    /// A delivery to acknowledge (2xx) and otherwise ignore.
    Ignored {
        /// Why, as a short static phrase suitable for a metric label or a debug log.
        reason: &'static str,
    },
}

/// An immediate HTTP 200 response the gateway must send as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// The `Content-Type` header value.
    pub content_type: &'static str,
    /// The response body.
    pub body: Vec<u8>,
}

/// The separator of the compact action encoding used where a platform carries a single string
/// per interactive element (Discord `custom_id`, Telegram `callback_data`).
pub const COMPACT_ACTION_SEPARATOR: char = ':';

/// Encodes an action id and value into one compact string, `action_id:value` (or just
/// `action_id` when the value is empty), for Discord `custom_id` and Telegram `callback_data`.
///
/// Parsers split such a string at the first [`COMPACT_ACTION_SEPARATOR`], so `action_id` must not
/// contain it; the value may. Platform length limits (Discord 100 chars, Telegram 64 bytes) are
/// the renderer's to check.
#[must_use]
pub fn compact_action(action_id: &str, value: &str) -> String {
    if value.is_empty() { action_id.to_owned() } else { format!("{action_id}{COMPACT_ACTION_SEPARATOR}{value}") }
}

/// Splits a compact action string (see [`compact_action`]) into `(action_id, value)`.
#[must_use]
pub fn split_compact_action(data: &str) -> (&str, &str) {
    data.split_once(COMPACT_ACTION_SEPARATOR).unwrap_or((data, ""))
}

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
