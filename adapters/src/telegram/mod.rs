//! Telegram: Bot API webhook updates.
//!
//! [`verify()`] the secret token, then [`parse()`] with the bot's username (which is also the
//! [`ThreadRef::install`](crate::ThreadRef::install)).

mod client;
mod model;
pub mod render;
mod text;
mod verify;

use serde::Deserialize;
use serde_json::Value;

pub use client::{ChatTarget, TelegramClient};
pub use render::{CALLBACK_DATA_LIMIT, TEXT_LIMIT, TelegramMessage, render_pages, render_tail};
pub use verify::{SECRET_TOKEN_HEADER, is_valid_secret_token, verify};

use self::model::{CallbackQuery, Message, User};
use crate::common::json;
use crate::{Actor, Inbound, InboundKind, ParseError, Parsed, Platform, ReplyHandle, ThreadRef, split_compact_action};

/// Parses a verified Telegram `Update`.
///
/// `bot_username` is the bot's username, with or without the leading `@`.
///
/// - `message` with text:
///   - `/command args` or `/command@bot_username args` → [`InboundKind::Command`] (name
///     lowercased, without `/` and `@…`); a command addressed `@` another bot is ignored;
///   - text mentioning `@bot_username`, replying to the bot, or in a private chat →
///     [`InboundKind::Mention`] with the mention removed;
///   - anything else in a group → [`Parsed::Ignored`].
///
///   `message_thread_id` becomes the thread and `message_id` the message to reply to.
/// - `callback_query` with `data` and a `message` → [`InboundKind::Action`] (`data` split as a
///   compact action), with a [`ReplyHandle::Telegram`] to answer the query.
/// - Messages from bots, edits, channel posts and every other update type → [`Parsed::Ignored`].
///
/// The delivery id is `update_id`.
///
/// # Errors
///
/// [`ParseError`] for malformed JSON and missing required fields.
pub fn parse(body: &[u8], bot_username: &str) -> Result<Parsed, ParseError> {
    let update: Value = json::from_slice(body)?;
    let update_id = update
        .get("update_id")
        .ok_or(ParseError::MissingField("update_id"))?
        .as_i64()
        .ok_or(ParseError::InvalidField("update_id"))?
        .to_string();
    let bot = bot_username.trim().trim_start_matches('@');
    if let Some(message) = update.get("message") {
        let message = Message::deserialize(message).map_err(|_| ParseError::InvalidField("message"))?;
        message_update(update_id, message, bot)
    } else if let Some(query) = update.get("callback_query") {
        let query = CallbackQuery::deserialize(query).map_err(|_| ParseError::InvalidField("callback_query"))?;
        callback_query(update_id, query, bot)
    } else if update.get("edited_message").is_some() {
        Ok(Parsed::Ignored { reason: "edited message" })
    } else {
        Ok(Parsed::Ignored { reason: "unsupported telegram update type" })
    }
}

fn message_update(update_id: String, message: Message, bot: &str) -> Result<Parsed, ParseError> {
    let Some(from) = message.from else {
        return Ok(Parsed::Ignored { reason: "message without a sender" });
    };
    if from.is_bot == Some(true) {
        return Ok(Parsed::Ignored { reason: "message from a bot" });
    }
    let Some(text) = message.text else {
        return Ok(Parsed::Ignored { reason: "message without text" });
    };
    let chat = message.chat.ok_or(ParseError::MissingField("message.chat"))?;
    let kind = if let Some(cmd) = text::command(&text) {
        if cmd.target.is_some_and(|t| !t.eq_ignore_ascii_case(bot)) {
            return Ok(Parsed::Ignored { reason: "command for another bot" });
        }
        InboundKind::Command { command: cmd.name.to_ascii_lowercase(), text: cmd.args.to_owned() }
    } else {
        let (stripped, mentioned) = text::strip_mentions(&text, bot);
        let private = chat.kind.as_deref() == Some("private");
        let replies_to_bot = message.reply_to_message.and_then(|r| r.from).is_some_and(|u| is_this_bot(&u, bot));
        if !(mentioned || private || replies_to_bot) {
            return Ok(Parsed::Ignored { reason: "group message not addressed to the bot" });
        }
        InboundKind::Mention { text: stripped }
    };
    let message_id = message.message_id.ok_or(ParseError::MissingField("message.message_id"))?;
    Ok(Parsed::Inbound(Inbound {
        platform: Platform::Telegram,
        delivery_id: update_id,
        thread: ThreadRef {
            platform: Platform::Telegram,
            install: bot.to_owned(),
            channel: chat.id.ok_or(ParseError::MissingField("message.chat.id"))?.to_string(),
            thread: message.message_thread_id.map(|t| t.to_string()),
            reply_to: Some(message_id.to_string()),
        },
        actor: actor(from, "message.from.id")?,
        kind,
        reply_handle: None,
    }))
}

fn callback_query(update_id: String, query: CallbackQuery, bot: &str) -> Result<Parsed, ParseError> {
    let id = crate::common::non_empty(query.id, "callback_query.id")?;
    let from = query.from.ok_or(ParseError::MissingField("callback_query.from"))?;
    let Some(data) = query.data else {
        return Ok(Parsed::Ignored { reason: "callback query without data (game)" });
    };
    let Some(message) = query.message else {
        return Ok(Parsed::Ignored { reason: "callback query on an inline message" });
    };
    let chat = message.chat.ok_or(ParseError::MissingField("callback_query.message.chat"))?;
    let chat_id = chat.id.ok_or(ParseError::MissingField("callback_query.message.chat.id"))?;
    let message_id = message.message_id.ok_or(ParseError::MissingField("callback_query.message.message_id"))?;
    let (action_id, value) = split_compact_action(&data);
    Ok(Parsed::Inbound(Inbound {
        platform: Platform::Telegram,
        delivery_id: update_id,
        thread: ThreadRef {
            platform: Platform::Telegram,
            install: bot.to_owned(),
            channel: chat_id.to_string(),
            thread: message.message_thread_id.map(|t| t.to_string()),
            reply_to: None,
        },
        actor: actor(from, "callback_query.from.id")?,
        kind: InboundKind::Action {
            action_id: action_id.to_owned(),
            value: value.to_owned(),
            message_ref: Some(message_id.to_string()),
        },
        reply_handle: Some(ReplyHandle::Telegram { callback_query_id: id }),
    }))
}

/// The sender: their id, and a name: their `@username` (a handle unique on Telegram, as cards have always shown),
/// else their first and last name.
fn actor(user: User, field: &'static str) -> Result<Actor, ParseError> {
    let full: Vec<&str> = [user.first_name.as_deref(), user.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let handle = user.username.filter(|u| !u.trim().is_empty());
    let name = handle.or_else(|| (!full.is_empty()).then(|| full.join(" ")));
    Ok(Actor { id: user.id.ok_or(ParseError::MissingField(field))?.to_string(), name })
}

fn is_this_bot(user: &User, bot: &str) -> bool {
    user.is_bot == Some(true)
        && !bot.is_empty()
        && user.username.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(bot))
}

#[cfg(test)]
mod tests;
