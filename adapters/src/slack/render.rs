//! Slack message payloads from a neutral [`Reply`]: `mrkdwn` text within Slack's limits, and
//! Block Kit blocks for buttons and approval cards.
//!
//! Text is escaped (`&`, `<`, `>`), so output can never mention `@channel` or forge a link, and
//! lengths are counted after escaping, in UTF-16 units (never less than Slack's count).

mod blocks;

use serde::Serialize;
use slack_morphism::prelude::SlackBlock;

use crate::reply::layout;
use crate::split::{self, Budget};
use crate::{ApprovalCard, Reply};

/// The longest `text` of a message Slack accepts in `chat.update` (longer → `msg_too_long`).
pub const TEXT_LIMIT: usize = 4_000;
/// The longest text of a `section` block.
pub const SECTION_TEXT_LIMIT: usize = 3_000;
/// The longest text of a `header` block.
pub const HEADER_TEXT_LIMIT: usize = 150;
/// The most blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// The most elements in one `actions` block.
pub const MAX_ACTIONS_ELEMENTS: usize = 25;
/// The longest button text.
pub const BUTTON_TEXT_LIMIT: usize = 75;
/// The longest button value.
pub const BUTTON_VALUE_LIMIT: usize = 2_000;
/// The longest `action_id` or `block_id`.
pub const ID_LIMIT: usize = 255;

/// The length a character takes in Slack text once escaped, in UTF-16 units.
const fn escaped_cost(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        c => c.len_utf16(),
    }
}

const TEXT: Budget = Budget::fixed(TEXT_LIMIT, escaped_cost);
const SECTION: Budget = Budget::fixed(SECTION_TEXT_LIMIT, escaped_cost);
/// The longest notification fallback `text` of a message with blocks.
const FALLBACK_UNITS: usize = 300;

/// A Slack message: `text` (escaped `mrkdwn`; the notification fallback when there are blocks)
/// and optional Block Kit `blocks` (slack-morphism's models). The client adds `channel`, `thread_ts`
/// or `ts`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlackMessage {
    /// The message text.
    pub text: String,
    /// Block Kit blocks, when the message has buttons or a card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<SlackBlock>>,
}

impl SlackMessage {
    /// A plain text message (escaped, cut to [`TEXT_LIMIT`]), e.g. for an ephemeral notice.
    #[must_use]
    pub fn plain(text: &str) -> Self {
        let text = TEXT.truncate(&split::sanitize_fences(text), TEXT_LIMIT);
        Self { text: non_empty(escape(&text)), blocks: None }
    }
}

/// Escapes `&`, `<` and `>` as Slack requires in message text.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Every page of `reply` as a message: the status on the first, the footer, buttons and
/// approval card on the last. Never empty.
#[must_use]
pub fn render_pages(reply: &Reply) -> Vec<SlackMessage> {
    finish(reply, layout::pages(reply, &TEXT))
}

/// One message with the end of the body (a `… N earlier lines` note when cut), for live edits.
#[must_use]
pub fn render_tail(reply: &Reply) -> SlackMessage {
    let text = layout::tail(reply, &TEXT);
    let mut pages = finish(reply, vec![text]);
    pages.swap_remove(0)
}

fn finish(reply: &Reply, texts: Vec<String>) -> Vec<SlackMessage> {
    let extra = blocks::interactive(reply);
    let last = texts.len().saturating_sub(1);
    texts
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            if i == last && !extra.is_empty() {
                let mut all = sections(&raw);
                all.extend(extra.iter().cloned());
                SlackMessage { text: fallback(&raw, reply.approval.as_ref()), blocks: Some(all) }
            } else {
                SlackMessage { text: non_empty(escape(&without_languages(&raw))), blocks: None }
            }
        })
        .collect()
}

/// `raw` as `section` blocks of at most [`SECTION_TEXT_LIMIT`] each.
fn sections(raw: &str) -> Vec<SlackBlock> {
    split::split(raw, &SECTION)
        .into_iter()
        .map(|page| blocks::section(&escape(&without_languages(page.text()))))
        .collect()
}

/// A short notification text for a message whose content is in blocks.
fn fallback(raw: &str, card: Option<&ApprovalCard>) -> String {
    let summary = match card {
        Some(card) => format!("{} {}: job {}", card.icon(), card.title(), card.job),
        None => {
            raw.lines().find(|l| !l.trim().is_empty() && split::fence_info(l).is_none()).unwrap_or_default().to_owned()
        }
    };
    non_empty(escape(&TEXT.truncate(&split::sanitize_fences(&summary), FALLBACK_UNITS)))
}

/// `text` with the language tags of opening fences removed: Slack has no syntax highlighting and
/// would show the tag as the block's first line. Never longer than `text`.
fn without_languages(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match split::fence_info(line) {
            Some(info) if !info.is_empty() => {
                out.push_str(&line[..line.len() - line.trim_start_matches([' ', '\t']).len()]);
                out.push_str("```");
            }
            _ => out.push_str(line),
        }
    }
    out
}

fn non_empty(text: String) -> String {
    if text.trim().is_empty() { "…".to_owned() } else { text }
}

#[cfg(test)]
mod tests;
