//! The neutral reply model: what CyNode shows in a thread, independent of the platform.
//!
//! A [`Reply`] has a one-line status, a body in the neutral Markdown-ish dialect (plain lines,
//! inline `` `code` `` spans and fenced code blocks; see [`split`](crate::split)), an optional
//! footer, optional [`Button`]s and an optional [`ApprovalCard`]. Each platform module renders it
//! within that platform's limits: `slack::render_pages`/`render_tail`, and the same in
//! [`discord`](crate::discord) and [`telegram`](crate::telegram).
//!
//! - *Pages* show everything: the body is split into as many messages as needed (the status on
//!   the first, the footer, buttons and card on the last). Full pages never change when the body
//!   grows, so a streamer edits the last message and posts a new one when it fills up.
//! - *Tail* shows one message: the end of the body with a `… N earlier lines` note, for live
//!   edits and for outputs too long to post in full.

mod approval;
mod button;
pub(crate) mod layout;
pub(crate) mod time;

use serde::{Deserialize, Serialize};

pub use approval::{Access, ApprovalCard, ApprovalState, MAX_COMMAND_CHARS, MAX_REASON_CHARS};
pub(crate) use approval::{Dialect, cut, display_name};
pub use button::{Button, ButtonError, ButtonStyle, MAX_COMPACT_BYTES, MAX_LABEL_CHARS};

use crate::split::sanitize_fences;

/// The action id of an approval card's approve button (its value is the job's short id).
pub const APPROVE_ACTION: &str = "approve";
/// The action id of an approval card's deny button (its value is the job's short id).
pub const DENY_ACTION: &str = "deny";
/// The action id of a button that cancels a job (its value is the job's short id).
pub const CANCEL_ACTION: &str = "cancel";

/// The most buttons a rendered reply shows (besides an approval card's); later ones are dropped,
/// as are buttons repeating an earlier button's action id and value.
pub const MAX_BUTTONS: usize = 10;

/// What to show in a thread.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// A one-line status shown first, e.g. "⏳ Running `pytest -x` on gpu-2".
    pub status: Option<String>,
    /// The body, in the neutral dialect; usually output wrapped with [`code_block`].
    pub body: String,
    /// A line shown last, e.g. "Output truncated: 10,000 lines; `cynode logs 3f2a9c1d` shows all".
    pub footer: Option<String>,
    /// Buttons shown on the last message.
    pub buttons: Vec<Button>,
    /// An approval card shown on the last message.
    pub approval: Option<ApprovalCard>,
}

impl Reply {
    /// A reply with only a body.
    #[must_use]
    pub fn new(body: impl Into<String>) -> Self {
        Self { body: body.into(), ..Self::default() }
    }

    /// Sets the status line.
    #[must_use]
    pub fn with_status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Sets the footer line.
    #[must_use]
    pub fn with_footer(mut self, footer: impl Into<String>) -> Self {
        self.footer = Some(footer.into());
        self
    }

    /// Adds a button.
    #[must_use]
    pub fn with_button(mut self, button: Button) -> Self {
        self.buttons.push(button);
        self
    }

    /// Sets the approval card.
    #[must_use]
    pub fn with_approval(mut self, card: ApprovalCard) -> Self {
        self.approval = Some(card);
        self
    }

    /// The buttons to render: at most [`MAX_BUTTONS`], without repeats.
    pub(crate) fn shown_buttons(&self) -> Vec<&Button> {
        let mut shown: Vec<&Button> = Vec::new();
        for button in &self.buttons {
            let repeat = shown.iter().any(|b| b.action_id() == button.action_id() && b.value() == button.value());
            if !repeat && shown.len() < MAX_BUTTONS {
                shown.push(button);
            }
        }
        shown
    }
}

/// Wraps `text` in a fenced code block with language `lang` (dropped unless short and plain),
/// breaking any run of three backticks inside with a zero-width space so the output cannot close
/// the block early.
#[must_use]
pub fn code_block(text: &str, lang: &str) -> String {
    let lang = crate::split::language_tag(lang);
    let body = sanitize_fences(text);
    let newline = if body.is_empty() || body.ends_with('\n') { "" } else { "\n" };
    format!("```{lang}\n{body}{newline}```")
}

/// `text` made safe for inline code: backticks replaced by `ˋ`, newlines by spaces.
pub(crate) fn inline_code(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| match c {
            '`' => 'ˋ',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect();
    format!("`{clean}`")
}

#[cfg(test)]
mod tests;
