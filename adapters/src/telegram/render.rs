//! Telegram message payloads from a neutral [`Reply`]: plain text with `entities` for code (no
//! `parse_mode`, so output needs no escaping and cannot inject formatting), within 4,096 UTF-16
//! units, and an inline keyboard whose `callback_data` fits 64 bytes.

mod entities;

use serde::Serialize;

pub use entities::{MessageEntity, to_entities};

use crate::reply::{Dialect, display_name, layout, time};
use crate::split::Budget;
use crate::{Button, ButtonStyle, Reply};

/// The longest message text, in UTF-16 units after entity parsing.
pub const TEXT_LIMIT: usize = 4_096;
/// The longest `callback_data`, in bytes.
pub const CALLBACK_DATA_LIMIT: usize = 64;
/// The longest `answerCallbackQuery` text.
pub const CALLBACK_ANSWER_LIMIT: usize = 200;
/// Buttons per keyboard row.
const ROW: usize = 3;

const TEXT: Budget = Budget::fixed(TEXT_LIMIT, char::len_utf16);

/// Telegram's way of writing mentions and dates: names and UTC times as plain text.
const TELEGRAM: Dialect = Dialect { escape: str::to_owned, mention: display_name, time: time::utc };

/// A Telegram message: text, its entities, and an optional inline keyboard. The client adds
/// `chat_id`, `message_thread_id`, `reply_parameters` or `message_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TelegramMessage {
    /// The text, 1 to [`TEXT_LIMIT`] UTF-16 units.
    pub text: String,
    /// Code and pre-formatted spans, offsets in UTF-16 units.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<MessageEntity>,
    /// The inline keyboard; `None` removes an earlier one when editing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_markup: Option<InlineKeyboard>,
}

impl TelegramMessage {
    /// A plain text message (the neutral dialect's code spans become entities), cut to fit.
    #[must_use]
    pub fn plain(text: &str) -> Self {
        message(&TEXT.truncate(&crate::split::sanitize_fences(text), TEXT_LIMIT), None)
    }
}

/// An `InlineKeyboardMarkup`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InlineKeyboard {
    /// Rows of buttons.
    pub inline_keyboard: Vec<Vec<InlineButton>>,
}

/// An `InlineKeyboardButton` with `callback_data`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InlineButton {
    /// The label.
    pub text: String,
    /// The compact action (`action_id:value`), at most [`CALLBACK_DATA_LIMIT`] bytes.
    pub callback_data: String,
    /// `primary`, `success` or `danger`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<&'static str>,
}

fn message(markdown: &str, reply_markup: Option<InlineKeyboard>) -> TelegramMessage {
    let (text, entities) = to_entities(markdown);
    if text.is_empty() {
        return TelegramMessage { text: "…".to_owned(), entities: Vec::new(), reply_markup };
    }
    TelegramMessage { text, entities, reply_markup }
}

/// Every page of `reply`: the status on the first; the footer, approval card and keyboard on the
/// last (the card gets a message of its own when it does not fit on the last page). Never empty.
#[must_use]
pub fn render_pages(reply: &Reply) -> Vec<TelegramMessage> {
    let mut texts = layout::pages(reply, &TEXT);
    if let Some(card) = reply.approval.as_ref().map(|c| c.text(&TELEGRAM)) {
        layout::append(&mut texts, card, &TEXT);
    }
    let last = texts.len().saturating_sub(1);
    texts.iter().enumerate().map(|(i, t)| message(t, if i == last { keyboard(reply) } else { None })).collect()
}

/// One message with the end of the body (a `… N earlier lines` note when cut), for live edits
/// and drafts; the approval card, when any, takes the room it needs first.
#[must_use]
pub fn render_tail(reply: &Reply) -> TelegramMessage {
    let card = reply.approval.as_ref().map(|c| c.text(&TELEGRAM));
    let room = card.as_deref().map_or(0, |c| TEXT.measure(c) + 1);
    let text = layout::tail(reply, &TEXT.shrink(room).unwrap_or(TEXT));
    let all: Vec<String> = [Some(text), card].into_iter().flatten().filter(|t| !t.is_empty()).collect();
    message(&all.join("\n"), keyboard(reply))
}

/// The approval buttons and the reply's buttons, three to a row.
fn keyboard(reply: &Reply) -> Option<InlineKeyboard> {
    let card_buttons = reply.approval.as_ref().map(|c| c.buttons()).unwrap_or_default();
    let mut buttons: Vec<&Button> = card_buttons.iter().collect();
    for b in reply.shown_buttons() {
        if buttons.iter().all(|o| o.compact() != b.compact()) {
            buttons.push(b);
        }
    }
    if buttons.is_empty() {
        return None;
    }
    let rows = buttons.chunks(ROW).map(|row| row.iter().map(|b| inline_button(b)).collect()).collect();
    Some(InlineKeyboard { inline_keyboard: rows })
}

fn inline_button(b: &Button) -> InlineButton {
    InlineButton {
        text: b.label().to_owned(),
        callback_data: b.compact(),
        style: match b.style() {
            ButtonStyle::Neutral => None,
            ButtonStyle::Primary => Some("primary"),
            ButtonStyle::Success => Some("success"),
            ButtonStyle::Danger => Some("danger"),
        },
    }
}

#[cfg(test)]
mod tests;
