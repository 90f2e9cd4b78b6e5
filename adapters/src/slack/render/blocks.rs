//! Block Kit blocks for buttons and approval cards.

use serde_json::{Value, json};

use super::{BUTTON_TEXT_LIMIT, ID_LIMIT, MAX_ACTIONS_ELEMENTS, escape};
use crate::reply::{Dialect, cut, display_name, time};
use crate::{Actor, ApprovalCard, Button, ButtonStyle, Reply};

/// Slack's way of writing mentions, dates and literal text.
const SLACK: Dialect = Dialect { escape, mention, time: date };

/// `<@U…>` for a Slack user id, else the escaped name.
fn mention(actor: &Actor) -> String {
    let is_id = (1..=32).contains(&actor.id.len()) && actor.id.chars().all(|c| c.is_ascii_alphanumeric());
    if is_id { format!("<@{}>", actor.id) } else { escape(&display_name(actor)) }
}

/// A date Slack shows in each reader's time zone, with a UTC fallback.
fn date(unix: i64) -> String {
    format!("<!date^{unix}^{{date_short_pretty}} at {{time}}|{}>", time::utc(unix))
}

/// A `section` block with `mrkdwn` text (already escaped).
pub(super) fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// The blocks after the text: the approval card, then the reply's buttons.
pub(super) fn interactive(reply: &Reply) -> Vec<Value> {
    let mut blocks = Vec::new();
    if let Some(card) = &reply.approval {
        blocks.extend(card_blocks(card));
    }
    blocks.extend(action_blocks(&reply.shown_buttons()));
    blocks
}

fn card_blocks(card: &ApprovalCard) -> Vec<Value> {
    let mut blocks = vec![
        section(&card.head_text(&SLACK)),
        section(&card.command_text(&SLACK)),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": card.state_text(&SLACK)}]}),
    ];
    let buttons = card.buttons();
    if !buttons.is_empty() {
        let elements: Vec<Value> = buttons.iter().map(button).collect();
        let block_id = cut(&format!("cynode_approval_{}", card.job), ID_LIMIT);
        blocks.push(json!({"type": "actions", "block_id": block_id, "elements": elements}));
    }
    blocks
}

/// Buttons in `actions` blocks, never repeating an action id inside one block (Slack requires
/// unique action ids per block) and never more than 25 per block.
fn action_blocks(buttons: &[&Button]) -> Vec<Value> {
    let mut groups: Vec<Vec<&Button>> = Vec::new();
    for &b in buttons {
        let free = groups
            .iter_mut()
            .find(|g| g.len() < MAX_ACTIONS_ELEMENTS && g.iter().all(|o| o.action_id() != b.action_id()));
        match free {
            Some(group) => group.push(b),
            None => groups.push(vec![b]),
        }
    }
    groups
        .iter()
        .enumerate()
        .map(|(i, group)| {
            let elements: Vec<Value> = group.iter().map(|b| button(b)).collect();
            json!({"type": "actions", "block_id": format!("cynode_actions_{i}"), "elements": elements})
        })
        .collect()
}

fn button(b: &Button) -> Value {
    let mut v = json!({
        "type": "button",
        "text": {"type": "plain_text", "text": cut(b.label(), BUTTON_TEXT_LIMIT), "emoji": true},
        "action_id": b.action_id(),
    });
    if !b.value().is_empty() {
        v["value"] = json!(b.value());
    }
    match b.style() {
        ButtonStyle::Primary | ButtonStyle::Success => v["style"] = json!("primary"),
        ButtonStyle::Danger => v["style"] = json!("danger"),
        ButtonStyle::Neutral => {}
    }
    v
}
