//! The fake Slack's methods: parameter checks and message state.

use std::time::Duration;

use serde_json::{Value, json};

use super::api::Outcome;
use super::{Message, State, Status, blocks};
use crate::fakes::params::{Params, chars};

/// `chat.update` refuses longer `text` with `msg_too_long`.
pub const UPDATE_TEXT_LIMIT: usize = 4_000;
/// Posts refuse longer `text` (Slack truncates past 40,000; the fake refuses).
pub const POST_TEXT_LIMIT: usize = 40_000;
/// The longest `markdown_text` (and streamed chunk).
pub const MARKDOWN_LIMIT: usize = 12_000;

/// A method's answer: `Err` holds the error answer, so `?` works.
pub(super) type Res = Result<Outcome, Outcome>;

/// What a message carries.
pub(super) struct Content {
    pub(super) text: Option<String>,
    pub(super) blocks: Option<Value>,
    pub(super) markdown: Option<String>,
}

fn invalid(field: &str) -> Outcome {
    Outcome::err_with("invalid_arguments", vec![format!("[ERROR] invalid or missing `{field}`")])
}

fn channel(p: &Params, key: &str) -> Result<String, Outcome> {
    let c = p.str(key).map_err(|()| invalid(key))?.unwrap_or_default();
    let valid = c.len() >= 2 && c.starts_with(['C', 'D', 'G']) && c.bytes().all(|b| b.is_ascii_alphanumeric());
    if valid { Ok(c.to_owned()) } else { Err(Outcome::err("channel_not_found")) }
}

fn is_ts(ts: &str) -> bool {
    ts.split_once('.')
        .is_some_and(|(s, f)| !s.is_empty() && !f.is_empty() && s.bytes().chain(f.bytes()).all(|b| b.is_ascii_digit()))
}

fn ts_param(p: &Params, key: &str, required: bool) -> Result<Option<String>, Outcome> {
    match p.str(key).map_err(|()| invalid(key))? {
        Some(ts) if is_ts(ts) => Ok(Some(ts.to_owned())),
        Some(_) => Err(Outcome::err(if key == "thread_ts" { "invalid_thread_ts" } else { "message_not_found" })),
        None if required => Err(invalid(key)),
        None => Ok(None),
    }
}

/// Markdown from `markdown_text` or `chunks` (`[{"type":"markdown_text","text":…}]`).
fn markdown(p: &Params) -> Result<Option<String>, Outcome> {
    let text = p.str("markdown_text").map_err(|()| invalid("markdown_text"))?.map(str::to_owned);
    let chunks = p.structured("chunks").map_err(|()| invalid("chunks"))?;
    let from_chunks = match chunks {
        None => None,
        Some(Value::Array(items)) => {
            let texts: Option<Vec<&str>> =
                items.iter().map(|c| (c["type"] == "markdown_text").then(|| c["text"].as_str()).flatten()).collect();
            Some(texts.ok_or_else(|| invalid("chunks"))?.concat())
        }
        Some(_) => return Err(invalid("chunks")),
    };
    if text.is_some() && from_chunks.is_some() {
        return Err(invalid("chunks"));
    }
    let md = text.or(from_chunks);
    if md.as_deref().is_some_and(|m| chars(m) > MARKDOWN_LIMIT) {
        return Err(Outcome::err("msg_too_long"));
    }
    Ok(md)
}

pub(super) fn content(p: &Params, text_limit: usize) -> Result<Content, Outcome> {
    let text = p.str("text").map_err(|()| invalid("text"))?.map(str::to_owned);
    let blocks = p.structured("blocks").map_err(|()| Outcome::err("invalid_blocks_format"))?;
    if let Some(b) = &blocks {
        blocks::validate(b).map_err(|msgs| Outcome::err_with("invalid_blocks", msgs))?;
    }
    let markdown = markdown(p)?;
    if markdown.is_some() && (text.is_some() || blocks.is_some()) {
        return Err(Outcome::err("markdown_text_conflict"));
    }
    let has_blocks = blocks.as_ref().and_then(Value::as_array).is_some_and(|b| !b.is_empty());
    let has_text = text.as_deref().is_some_and(|t| !t.trim().is_empty());
    let has_md = markdown.as_deref().is_some_and(|t| !t.trim().is_empty());
    if !(has_text || has_blocks || has_md || p.has("attachments")) {
        return Err(Outcome::err("no_text"));
    }
    if text.as_deref().is_some_and(|t| chars(t) > text_limit) {
        return Err(Outcome::err("msg_too_long"));
    }
    Ok(Content { text, blocks, markdown })
}

fn next_ts(state: &mut State) -> String {
    state.seq += 1;
    format!("{}.{:06}", 1_700_000_000 + state.seq / 1_000_000, state.seq % 1_000_000)
}

fn message_json(m: &Message) -> Value {
    json!({"type": "message", "subtype": "bot_message", "bot_id": "B0FAKE", "user": "U0FAKEBOT",
           "ts": m.ts, "thread_ts": m.thread_ts, "text": m.text.clone().or(m.markdown.clone()).unwrap_or_default(),
           "blocks": m.blocks})
}

pub(super) fn new_message(
    state: &mut State,
    channel: String,
    thread_ts: Option<String>,
    c: Content,
    at: Duration,
) -> Message {
    let ts = next_ts(state);
    Message {
        channel,
        ts,
        thread_ts,
        text: c.text,
        blocks: c.blocks,
        markdown: c.markdown,
        streaming: false,
        ephemeral_to: None,
        metadata: None,
        edits: 0,
        updated_at: at,
    }
}

/// Message metadata: `{"event_type": "snake_case_name", "event_payload": {…}}` (a JSON object, or a JSON string in
/// form bodies), else `invalid_metadata_format`; a payload over 8 KB is `metadata_too_large`.
fn metadata(p: &Params) -> Result<Option<Value>, Outcome> {
    let Some(m) = p.structured("metadata").map_err(|()| Outcome::err("invalid_metadata_format"))? else {
        return Ok(None);
    };
    let event_type = m["event_type"].as_str().unwrap_or_default();
    let valid_type = !event_type.is_empty()
        && event_type.len() <= 255
        && event_type.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let keys_ok = m.as_object().is_some_and(|o| o.keys().all(|k| k == "event_type" || k == "event_payload"));
    if !valid_type || !m["event_payload"].is_object() || !keys_ok {
        return Err(Outcome::err("invalid_metadata_format"));
    }
    if m["event_payload"].to_string().len() > 8_192 {
        return Err(Outcome::err("metadata_too_large"));
    }
    Ok(Some(m))
}

pub(super) fn post_message(state: &mut State, p: &Params, at: Duration) -> Res {
    let channel = channel(p, "channel")?;
    let thread_ts = ts_param(p, "thread_ts", false)?;
    let metadata = metadata(p)?;
    let content = content(p, POST_TEXT_LIMIT)?;
    let mut m = new_message(state, channel, thread_ts, content, at);
    m.metadata = metadata;
    let body = json!({"channel": m.channel, "ts": m.ts, "message": message_json(&m)});
    state.messages.push(m);
    Ok(Outcome::ok(body))
}

/// `conversations.replies`: the bot's messages in the thread `ts` (the fake does not hold the users' messages, so
/// it cannot tell an unknown thread from one without bot replies: both answer an empty list), oldest first, `limit` (1–1,000, default 1,000) per page with an opaque `cursor`; metadata only with
/// `include_all_metadata`. Arguments come in the query string or a form body (Slack reads no JSON body here).
pub(super) fn replies(state: &State, p: &Params) -> Res {
    let channel = channel(p, "channel")?;
    let ts = ts_param(p, "ts", true)?.unwrap_or_default();
    let limit = p.int("limit").map_err(|()| invalid("limit"))?.unwrap_or(1_000);
    if !(1..=1_000).contains(&limit) {
        return Err(invalid("limit"));
    }
    let with_metadata = p.bool("include_all_metadata").map_err(|()| invalid("include_all_metadata"))?.unwrap_or(false);
    let start = match p.str("cursor").map_err(|()| invalid("cursor"))? {
        None | Some("") => 0,
        Some(c) => c
            .strip_prefix("bmV4dDo")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Outcome::err("invalid_cursor"))?,
    };
    let thread: Vec<&Message> =
        state.messages.iter().filter(|m| m.channel == channel && m.thread_ts.as_deref() == Some(ts.as_str())).collect();
    let end = (start + usize::try_from(limit).unwrap_or(1_000)).min(thread.len());
    let page: Vec<Value> = thread
        .get(start..end)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let mut j = message_json(m);
            if with_metadata && let Some(meta) = &m.metadata {
                j["metadata"] = meta.clone();
            }
            j
        })
        .collect();
    let more = end < thread.len();
    let next = if more { format!("bmV4dDo{end}") } else { String::new() };
    Ok(Outcome::ok(json!({"messages": page, "has_more": more, "response_metadata": {"next_cursor": next}})))
}

pub(super) fn find<'s>(state: &'s mut State, channel: &str, ts: &str) -> Result<&'s mut Message, Outcome> {
    state
        .messages
        .iter_mut()
        .find(|m| m.channel == channel && m.ts == ts)
        .ok_or_else(|| Outcome::err("message_not_found"))
}

pub(super) fn update(state: &mut State, p: &Params, at: Duration) -> Res {
    let channel = channel(p, "channel")?;
    let ts = ts_param(p, "ts", true)?.unwrap_or_default();
    let content = content(p, UPDATE_TEXT_LIMIT)?;
    let m = find(state, &channel, &ts)?;
    if m.streaming {
        return Err(Outcome::err("cant_update_message"));
    }
    m.text = content.text;
    m.markdown = content.markdown;
    if content.blocks.is_some() {
        m.blocks = content.blocks;
    }
    m.edits += 1;
    m.updated_at = at;
    let body = json!({"channel": m.channel, "ts": m.ts, "text": m.text, "message": message_json(m)});
    Ok(Outcome::ok(body))
}

pub(super) fn post_ephemeral(state: &mut State, p: &Params, at: Duration) -> Res {
    let channel = channel(p, "channel")?;
    let user = p.str("user").map_err(|()| invalid("user"))?.filter(|u| !u.is_empty());
    let user = user.ok_or_else(|| Outcome::err("user_not_in_channel"))?.to_owned();
    let thread_ts = ts_param(p, "thread_ts", false)?;
    let content = content(p, POST_TEXT_LIMIT)?;
    let mut m = new_message(state, channel, thread_ts, content, at);
    m.ephemeral_to = Some(user);
    let body = json!({"message_ts": m.ts});
    state.ephemerals.push(m);
    Ok(Outcome::ok(body))
}

pub(super) fn start_stream(state: &mut State, p: &Params, at: Duration) -> Res {
    let channel = channel(p, "channel")?;
    let thread_ts = ts_param(p, "thread_ts", true)?;
    let in_channel = !channel.starts_with('D');
    for key in ["recipient_user_id", "recipient_team_id"] {
        let value = p.str(key).map_err(|()| invalid(key))?;
        if in_channel && value.is_none_or(str::is_empty) {
            return Err(invalid(key));
        }
    }
    let markdown = markdown(p)?;
    let content = Content { text: None, blocks: None, markdown: Some(markdown.unwrap_or_default()) };
    let mut m = new_message(state, channel, thread_ts, content, at);
    m.streaming = true;
    let body = json!({"channel": m.channel, "ts": m.ts});
    state.messages.push(m);
    Ok(Outcome::ok(body))
}

fn streaming<'s>(state: &'s mut State, p: &Params) -> Result<&'s mut Message, Outcome> {
    let channel = channel(p, "channel")?;
    let ts = ts_param(p, "ts", true)?.unwrap_or_default();
    let m = find(state, &channel, &ts)?;
    if m.streaming { Ok(m) } else { Err(Outcome::err("message_not_in_streaming_state")) }
}

pub(super) fn append_stream(state: &mut State, p: &Params, at: Duration) -> Res {
    let chunk = markdown(p)?.filter(|m| !m.is_empty()).ok_or_else(|| invalid("markdown_text"))?;
    let m = streaming(state, p)?;
    m.markdown.get_or_insert_with(String::new).push_str(&chunk);
    m.edits += 1;
    m.updated_at = at;
    Ok(Outcome::ok(json!({"channel": m.channel, "ts": m.ts})))
}

pub(super) fn stop_stream(state: &mut State, p: &Params, at: Duration) -> Res {
    let chunk = markdown(p)?;
    let blocks = p.structured("blocks").map_err(|()| Outcome::err("invalid_blocks_format"))?;
    if let Some(b) = &blocks {
        blocks::validate(b).map_err(|msgs| Outcome::err_with("invalid_blocks", msgs))?;
    }
    let m = streaming(state, p)?;
    if let Some(chunk) = chunk {
        m.markdown.get_or_insert_with(String::new).push_str(&chunk);
    }
    m.blocks = blocks.or(m.blocks.take());
    m.streaming = false;
    m.updated_at = at;
    Ok(Outcome::ok(json!({"channel": m.channel, "ts": m.ts, "message": message_json(m)})))
}

pub(super) fn set_status(state: &mut State, p: &Params) -> Res {
    let channel_id = channel(p, "channel_id")?;
    let thread_ts = ts_param(p, "thread_ts", true)?.unwrap_or_default();
    let status = p.str("status").map_err(|()| invalid("status"))?.ok_or_else(|| invalid("status"))?;
    state.statuses.push(Status { channel_id, thread_ts, status: status.to_owned() });
    Ok(Outcome::ok(json!({})))
}
