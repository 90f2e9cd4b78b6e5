//! Telegram Bot API update shapes, as far as CyNode reads them. Fields are optional here; the
//! parser decides what is required so errors name the field.

use serde::Deserialize;

/// A `message` (also the shape of `callback_query.message`).
#[derive(Debug, Deserialize)]
pub(super) struct Message {
    pub(super) message_id: Option<i64>,
    pub(super) message_thread_id: Option<i64>,
    pub(super) from: Option<User>,
    pub(super) chat: Option<Chat>,
    pub(super) text: Option<String>,
    pub(super) reply_to_message: Option<RepliedMessage>,
}

/// The message a message replies to; only its author matters.
#[derive(Debug, Deserialize)]
pub(super) struct RepliedMessage {
    pub(super) from: Option<User>,
}

/// A chat.
#[derive(Debug, Deserialize)]
pub(super) struct Chat {
    pub(super) id: Option<i64>,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
}

/// A user or bot.
#[derive(Debug, Deserialize)]
pub(super) struct User {
    pub(super) id: Option<i64>,
    pub(super) is_bot: Option<bool>,
    pub(super) username: Option<String>,
    pub(super) first_name: Option<String>,
    pub(super) last_name: Option<String>,
}

/// A `callback_query` (a click on an inline keyboard button).
#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    pub(super) id: Option<String>,
    pub(super) from: Option<User>,
    pub(super) message: Option<Message>,
    pub(super) data: Option<String>,
}
