//! Discord message payloads from a neutral [`Reply`]: `content` within 2,000 characters,
//! buttons as components, and mentions that never notify anyone (`allowed_mentions` empty).

use serde::Serialize;
use serde_json::{Value, json};

use crate::reply::{Dialect, display_name, layout};
use crate::split::Budget;
use crate::{Actor, Button, ButtonStyle, Reply};

/// The longest `content` Discord accepts.
pub const CONTENT_LIMIT: usize = 2_000;
/// The longest button `custom_id`.
pub const CUSTOM_ID_LIMIT: usize = 100;
/// The longest button label.
pub const LABEL_LIMIT: usize = 80;
/// The most components in one action row.
pub const MAX_ROW_COMPONENTS: usize = 5;
/// The most components (rows and buttons together) in one message.
pub const MAX_COMPONENTS: usize = 40;
/// The `flags` bit of an ephemeral message (only the invoking user sees it).
pub const EPHEMERAL_FLAG: u64 = 1 << 6;

const CONTENT: Budget = Budget::fixed(CONTENT_LIMIT, char::len_utf16);

/// Discord's way of writing mentions and dates; text needs no escaping inside CyNode's dialect.
const DISCORD: Dialect = Dialect { escape: str::to_owned, mention, time: |unix| format!("<t:{unix}:f>") };

/// `<@id>` for a snowflake, else the name.
fn mention(actor: &Actor) -> String {
    let is_id = (1..=20).contains(&actor.id.len()) && actor.id.bytes().all(|b| b.is_ascii_digit());
    if is_id { format!("<@{}>", actor.id) } else { display_name(actor) }
}

/// A Discord message body (for channel messages, interaction responses and follow-ups).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DiscordMessage {
    /// The text, at most [`CONTENT_LIMIT`] characters, never empty.
    pub content: String,
    /// Action rows of buttons; an empty list removes earlier buttons when editing.
    pub components: Vec<Value>,
    /// Always `{"parse": []}`: output can never ping `@everyone`, roles or users.
    pub allowed_mentions: Value,
    /// Message flags, e.g. [`EPHEMERAL_FLAG`] for an ephemeral follow-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<u64>,
}

impl DiscordMessage {
    /// A plain text message cut to fit, e.g. for an ephemeral notice.
    #[must_use]
    pub fn plain(text: &str) -> Self {
        message(CONTENT.truncate(&crate::split::sanitize_fences(text), CONTENT_LIMIT), Vec::new())
    }

    /// The same message, visible only to the user who invoked the interaction.
    #[must_use]
    pub fn ephemeral(mut self) -> Self {
        self.flags = Some(EPHEMERAL_FLAG);
        self
    }
}

fn message(content: String, components: Vec<Value>) -> DiscordMessage {
    DiscordMessage {
        content: if content.trim().is_empty() { "…".to_owned() } else { content },
        components,
        allowed_mentions: json!({"parse": []}),
        flags: None,
    }
}

/// Every page of `reply`: the status on the first; the footer, approval card and buttons on the
/// last (the card gets a message of its own when it does not fit on the last page). Never empty.
#[must_use]
pub fn render_pages(reply: &Reply) -> Vec<DiscordMessage> {
    finish(reply, layout::pages(reply, &CONTENT))
}

/// One message with the end of the body (a `… N earlier lines` note when cut), for live edits;
/// the approval card, when any, takes the room it needs first.
#[must_use]
pub fn render_tail(reply: &Reply) -> DiscordMessage {
    let card = reply.approval.as_ref().map(|c| c.text(&DISCORD));
    let room = card.as_deref().map_or(0, |c| CONTENT.measure(c) + 1);
    let budget = CONTENT.shrink(room).unwrap_or(CONTENT);
    let text = layout::tail(reply, &budget);
    let content = [Some(text), card].into_iter().flatten().filter(|t| !t.is_empty());
    message(content.collect::<Vec<_>>().join("\n"), components(reply))
}

fn finish(reply: &Reply, mut texts: Vec<String>) -> Vec<DiscordMessage> {
    if let Some(card) = reply.approval.as_ref().map(|c| c.text(&DISCORD)) {
        layout::append(&mut texts, card, &CONTENT);
    }
    let last = texts.len().saturating_sub(1);
    texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let rows = if i == last { components(reply) } else { Vec::new() };
            message(text, rows)
        })
        .collect()
}

/// The approval buttons and the reply's buttons in rows of five.
fn components(reply: &Reply) -> Vec<Value> {
    let card_buttons = reply.approval.as_ref().map(|c| c.buttons()).unwrap_or_default();
    let mut buttons: Vec<&Button> = card_buttons.iter().collect();
    for b in reply.shown_buttons() {
        if buttons.iter().all(|o| o.compact() != b.compact()) {
            buttons.push(b);
        }
    }
    buttons
        .chunks(MAX_ROW_COMPONENTS)
        .map(|row| json!({"type": 1, "components": row.iter().map(|b| button(b)).collect::<Vec<_>>()}))
        .collect()
}

fn button(b: &Button) -> Value {
    let style = match b.style() {
        ButtonStyle::Primary => 1,
        ButtonStyle::Neutral => 2,
        ButtonStyle::Success => 3,
        ButtonStyle::Danger => 4,
    };
    json!({"type": 2, "style": style, "label": b.label(), "custom_id": b.compact()})
}

#[cfg(test)]
mod tests;
