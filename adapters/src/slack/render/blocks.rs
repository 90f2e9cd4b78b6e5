//! Block Kit blocks for buttons and approval cards, built with slack-morphism's Block Kit models.

use slack_morphism::prelude::{
    SlackActionBlockElement, SlackActionId, SlackActionsBlock, SlackBlock, SlackBlockButtonElement,
    SlackBlockButtonStyle, SlackBlockId, SlackBlockMarkDownText, SlackBlockPlainText, SlackBlockText,
    SlackContextBlock, SlackContextBlockElement, SlackSectionBlock,
};

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
pub(super) fn section(text: &str) -> SlackBlock {
    SlackSectionBlock::new().with_text(SlackBlockText::MarkDown(mrkdwn(text))).into()
}

fn mrkdwn(text: &str) -> SlackBlockMarkDownText {
    SlackBlockMarkDownText::new(text.to_owned())
}

/// The blocks after the text: the approval card, then the reply's buttons.
pub(super) fn interactive(reply: &Reply) -> Vec<SlackBlock> {
    let mut blocks = Vec::new();
    if let Some(card) = &reply.approval {
        blocks.extend(card_blocks(card));
    }
    blocks.extend(action_blocks(&reply.shown_buttons()));
    blocks
}

fn card_blocks(card: &ApprovalCard) -> Vec<SlackBlock> {
    let state = SlackContextBlockElement::MarkDown(mrkdwn(&card.state_text(&SLACK)));
    let mut blocks = vec![
        section(&card.head_text(&SLACK)),
        section(&card.command_text(&SLACK)),
        SlackContextBlock::new(vec![state]).into(),
    ];
    let buttons = card.buttons();
    if !buttons.is_empty() {
        let block_id = cut(&format!("cynode_approval_{}", card.job), ID_LIMIT);
        blocks.push(actions(block_id, buttons.iter()));
    }
    blocks
}

fn actions<'b>(block_id: String, buttons: impl Iterator<Item = &'b Button>) -> SlackBlock {
    SlackActionsBlock::new(buttons.map(button).collect()).with_block_id(SlackBlockId(block_id)).into()
}

/// Buttons in `actions` blocks, never repeating an action id inside one block (Slack requires
/// unique action ids per block) and never more than 25 per block.
fn action_blocks(buttons: &[&Button]) -> Vec<SlackBlock> {
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
    groups.iter().enumerate().map(|(i, group)| actions(format!("cynode_actions_{i}"), group.iter().copied())).collect()
}

fn button(b: &Button) -> SlackActionBlockElement {
    let text = SlackBlockPlainText::new(cut(b.label(), BUTTON_TEXT_LIMIT)).with_emoji(true);
    let mut element = SlackBlockButtonElement::new(text.into()).with_action_id(SlackActionId(b.action_id().to_owned()));
    if !b.value().is_empty() {
        element = element.with_value(b.value().to_owned());
    }
    match b.style() {
        ButtonStyle::Primary | ButtonStyle::Success => element = element.with_style(SlackBlockButtonStyle::Primary),
        ButtonStyle::Danger => element = element.with_style(SlackBlockButtonStyle::Danger),
        ButtonStyle::Neutral => {}
    }
    SlackActionBlockElement::Button(element)
}
