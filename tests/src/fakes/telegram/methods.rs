//! The fake Telegram's methods: parameter checks and message state.

use std::time::Duration;

use serde_json::{Value, json};

use super::api::{Res, bad};
use super::{CallbackAnswer, Draft, Message, State};
use crate::fakes::params::{Params, chars, utf16};

/// The longest message text, in UTF-16 units.
pub const TEXT_LIMIT: usize = 4_096;
/// The longest `callback_data`, in bytes.
pub const CALLBACK_DATA_LIMIT: usize = 64;
/// The longest callback answer text, in characters.
pub const CALLBACK_TEXT_LIMIT: usize = 200;

const ENTITY_TYPES: &[&str] = &[
    "mention",
    "hashtag",
    "cashtag",
    "bot_command",
    "url",
    "email",
    "phone_number",
    "bold",
    "italic",
    "underline",
    "strikethrough",
    "spoiler",
    "blockquote",
    "expandable_blockquote",
    "code",
    "pre",
    "text_link",
    "text_mention",
    "custom_emoji",
    "date_time",
];
const BUTTON_ACTIONS: &[&str] = &[
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
];

fn typed(name: &str, kind: &str) -> super::api::Refusal {
    bad(&format!("field \"{name}\" must be of type {kind}"))
}

/// `chat_id`: an integer (or numeric string); `@username` chats are unknown to the fake.
pub(super) fn chat_id(p: &Params) -> Result<i64, super::api::Refusal> {
    if !p.has("chat_id") {
        return Err(bad("chat_id is empty"));
    }
    p.int("chat_id").ok().flatten().ok_or_else(|| bad("chat not found"))
}

fn int(p: &Params, name: &str) -> Result<Option<i64>, super::api::Refusal> {
    p.int(name).map_err(|()| typed(name, "Integer"))
}

/// The text and its entities, checked: 1 (or `min`) to 4,096 UTF-16 units, entities inside.
fn text(p: &Params, min: usize) -> Result<(String, Value), super::api::Refusal> {
    let text = p.str("text").map_err(|()| typed("text", "String"))?.unwrap_or_default().to_owned();
    if min > 0 && text.trim().is_empty() {
        return Err(bad("message text is empty"));
    }
    let len = utf16(&text);
    if len > TEXT_LIMIT {
        return Err(bad("message is too long"));
    }
    if let Some(mode) = p.str("parse_mode").map_err(|()| typed("parse_mode", "String"))?
        && !matches!(mode, "HTML" | "Markdown" | "MarkdownV2")
    {
        return Err(bad(&format!("unsupported parse_mode \"{mode}\"")));
    }
    let entities = p.structured("entities").map_err(|()| typed("entities", "Array of MessageEntity"))?;
    let entities = entities.unwrap_or_else(|| json!([]));
    let list = entities.as_array().ok_or_else(|| typed("entities", "Array of MessageEntity"))?;
    for e in list {
        let kind_ok = e["type"].as_str().is_some_and(|t| ENTITY_TYPES.contains(&t));
        let (offset, length) = (e["offset"].as_u64(), e["length"].as_u64());
        let inside = matches!((offset, length), (Some(o), Some(l)) if l > 0 && o + l <= len as u64);
        if !kind_ok || !inside {
            return Err(bad("can't parse entities: entity out of text bounds or of unknown type"));
        }
    }
    Ok((text, entities))
}

/// `reply_markup`: an inline keyboard is checked button by button.
fn markup(p: &Params, inline_only: bool) -> Result<Option<Value>, super::api::Refusal> {
    let Some(markup) = p.structured("reply_markup").map_err(|()| typed("reply_markup", "InlineKeyboardMarkup"))? else {
        return Ok(None);
    };
    let Some(rows) = markup.get("inline_keyboard") else {
        return if inline_only { Err(bad("inline keyboard expected")) } else { Ok(Some(markup)) };
    };
    let rows = rows.as_array().ok_or_else(|| bad("field \"inline_keyboard\" must be an Array"))?;
    for row in rows {
        for button in row.as_array().ok_or_else(|| bad("inline keyboard rows must be Arrays"))? {
            if button["text"].as_str().is_none_or(str::is_empty) {
                return Err(bad("text must be non-empty in inline keyboard buttons"));
            }
            let actions = BUTTON_ACTIONS.iter().filter(|a| !button[**a].is_null()).count();
            if actions != 1 {
                return Err(bad("text buttons are unallowed in the inline keyboard"));
            }
            if let Some(data) = button.get("callback_data") {
                let len = data.as_str().map_or(0, str::len);
                if !(1..=CALLBACK_DATA_LIMIT).contains(&len) {
                    return Err(bad("BUTTON_DATA_INVALID"));
                }
            }
            if !matches!(button["style"].as_str(), None | Some("danger" | "success" | "primary")) {
                return Err(bad("BUTTON_STYLE_INVALID"));
            }
        }
    }
    Ok(Some(markup))
}

fn chat_json(chat: i64) -> Value {
    let kind = if chat > 0 {
        "private"
    } else if chat < -1_000_000_000_000 {
        "supergroup"
    } else {
        "group"
    };
    json!({"id": chat, "type": kind})
}

fn message_json(m: &Message) -> Value {
    let mut v = json!({"message_id": m.message_id, "date": 1_700_000_000, "chat": chat_json(m.chat_id), "text": m.text,
                       "from": {"id": 123_456_789, "is_bot": true, "first_name": "CyNode", "username": "cynode_bot"}});
    if m.entities.as_array().is_some_and(|e| !e.is_empty()) {
        v["entities"] = m.entities.clone();
    }
    if let Some(thread) = m.thread_id {
        v["message_thread_id"] = json!(thread);
        v["is_topic_message"] = json!(true);
    }
    if let Some(markup) = &m.reply_markup {
        v["reply_markup"] = markup.clone();
    }
    if m.edits > 0 {
        v["edit_date"] = json!(1_700_000_001);
    }
    v
}

pub(super) fn send_message(state: &mut State, p: &Params, chat: i64, at: Duration) -> Res {
    let thread_id = int(p, "message_thread_id")?;
    if thread_id.is_some_and(|t| t <= 0) {
        return Err(bad("message thread not found"));
    }
    let reply = p.structured("reply_parameters").map_err(|()| typed("reply_parameters", "ReplyParameters"))?;
    let reply_to = match reply {
        Some(r) => {
            Some(r["message_id"].as_i64().filter(|id| *id > 0).ok_or_else(|| bad("message to be replied not found"))?)
        }
        None => None,
    };
    let (text, entities) = text(p, 1)?;
    let reply_markup = markup(p, false)?;
    state.seq += 1;
    let m = Message {
        chat_id: chat,
        message_id: 100 + state.seq,
        thread_id,
        reply_to,
        text,
        entities,
        reply_markup,
        edits: 0,
        updated_at: at,
    };
    let result = message_json(&m);
    state.messages.push(m);
    Ok(result)
}

pub(super) fn edit_message_text(state: &mut State, p: &Params, chat: i64, at: Duration) -> Res {
    let id = int(p, "message_id")?.ok_or_else(|| bad("message identifier is not specified"))?;
    let (text, entities) = text(p, 1)?;
    let reply_markup = markup(p, true)?;
    let m = state
        .messages
        .iter_mut()
        .find(|m| m.chat_id == chat && m.message_id == id)
        .ok_or_else(|| bad("message to edit not found"))?;
    if m.text == text && m.entities == entities && m.reply_markup == reply_markup {
        return Err(bad(
            "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        ));
    }
    m.text = text;
    m.entities = entities;
    m.reply_markup = reply_markup;
    m.edits += 1;
    m.updated_at = at;
    Ok(message_json(m))
}

pub(super) fn send_message_draft(state: &mut State, p: &Params, chat: i64) -> Res {
    if chat <= 0 {
        return Err(bad("drafts can be sent only to private chats"));
    }
    let draft_id = int(p, "draft_id")?.filter(|d| *d != 0).ok_or_else(|| bad("draft_id must be non-zero"))?;
    let thread_id = int(p, "message_thread_id")?;
    let (text, _) = text(p, 0)?;
    state.drafts.push(Draft { chat_id: chat, thread_id, draft_id, text });
    Ok(json!(true))
}

pub(super) fn answer_callback_query(state: &mut State, p: &Params) -> Res {
    let id = p.str("callback_query_id").map_err(|()| typed("callback_query_id", "String"))?.unwrap_or_default();
    let text = p.str("text").map_err(|()| typed("text", "String"))?.map(str::to_owned);
    if text.as_deref().is_some_and(|t| chars(t) > CALLBACK_TEXT_LIMIT) {
        return Err(bad("MESSAGE_TOO_LONG"));
    }
    let show_alert = p.bool("show_alert").map_err(|()| typed("show_alert", "Boolean"))?.unwrap_or(false);
    match state.queries.get_mut(id) {
        Some(answer @ None) => {
            *answer = Some(CallbackAnswer { text, show_alert });
            Ok(json!(true))
        }
        _ => Err(bad("query is too old and response timeout expired or query ID is invalid")),
    }
}
