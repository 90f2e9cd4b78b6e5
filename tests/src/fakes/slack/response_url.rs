//! `response_url`s: minted per interaction, usable 5 times within 30 minutes.

use std::time::{Duration, Instant};

use serde_json::json;

use super::State;
use super::api::Outcome;
use super::methods::{UPDATE_TEXT_LIMIT, content, find, new_message};
use crate::fakes::params::Params;

/// Uses of one `response_url`.
const USES: u32 = 5;
/// Lifetime of a `response_url`.
const LIFETIME: Duration = Duration::from_secs(30 * 60);

/// A minted `response_url`: where it answers, and how often it was used.
#[derive(Clone, Debug)]
pub(crate) struct ResponseUrl {
    channel: String,
    user: String,
    message_ts: Option<String>,
    minted: Instant,
    uses: u32,
}

impl ResponseUrl {
    pub(super) fn new(channel: &str, user: &str, message_ts: Option<&str>, now: Instant) -> Self {
        let (channel, user, message_ts) = (channel.to_owned(), user.to_owned(), message_ts.map(str::to_owned));
        Self { channel, user, message_ts, minted: now, uses: 0 }
    }
}

/// A `response_url` answer: ephemeral by default, `in_channel`, or `replace_original`.
pub(super) fn respond(state: &mut State, id: &str, p: &Params, now: Instant, at: Duration) -> Outcome {
    let fail =
        |status: u16, code: &str| Outcome { status, body: json!({"ok": false, "error": code}), retry_after: None };
    let Some(url) = state.response_urls.get_mut(id) else { return fail(404, "expired_url") };
    if now.saturating_duration_since(url.minted) > LIFETIME {
        return fail(404, "expired_url");
    }
    if url.uses >= USES {
        return fail(404, "used_url");
    }
    url.uses += 1;
    let url = url.clone();
    let content = match content(p, UPDATE_TEXT_LIMIT) {
        Ok(c) => c,
        Err(e) => return fail(400, e.body["error"].as_str().unwrap_or("invalid_payload")),
    };
    let replace = p.bool("replace_original").unwrap_or(None).unwrap_or(false);
    let kind = p.str("response_type").unwrap_or(None).unwrap_or("ephemeral");
    if replace {
        let Some(ts) = url.message_ts.as_deref() else { return fail(404, "message_not_found") };
        let Ok(m) = find(state, &url.channel, ts) else { return fail(404, "message_not_found") };
        m.text = content.text;
        m.blocks = content.blocks.or(Some(json!([])));
        m.edits += 1;
        m.updated_at = at;
    } else {
        let thread_ts = p.str("thread_ts").unwrap_or(None).map(str::to_owned);
        let mut m = new_message(state, url.channel.clone(), thread_ts, content, at);
        if kind == "in_channel" {
            state.messages.push(m);
        } else {
            m.ephemeral_to = Some(url.user.clone());
            state.ephemerals.push(m);
        }
    }
    Outcome::ok(json!({}))
}
