//! Approval cards: a held job, the buttons to decide it, and the decision once made.

use serde::{Deserialize, Serialize};

use super::{APPROVE_ACTION, Button, ButtonStyle, DENY_ACTION, code_block, inline_code};
use crate::Actor;

/// The longest command shown on a card, in characters; longer commands are cut with `…`.
pub const MAX_COMMAND_CHARS: usize = 500;
/// The longest policy reason shown on a card, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// What a held job may reach beyond its sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// The job may use the network.
    pub network: bool,
    /// The job may use a GPU.
    pub gpu: bool,
}

/// Where an approval stands. Times are seconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for an approver; the card shows approve and deny buttons.
    Pending {
        /// When the request expires, if it does.
        expires_at: Option<i64>,
    },
    /// Approved; the job queues.
    Approved {
        /// The approver.
        by: Actor,
        /// When.
        at: i64,
    },
    /// Denied; the job is cancelled.
    Denied {
        /// The approver who denied it.
        by: Actor,
        /// When.
        at: i64,
    },
    /// Nobody decided in time; the job is cancelled.
    Expired {
        /// When it expired.
        at: i64,
    },
}

/// An approval request for a held job, shown in the job's thread.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalCard {
    /// The job's short id (the buttons' value, and the argument of `approve`/`deny` commands).
    pub job: String,
    /// The command the job would run.
    pub command: String,
    /// Who asked for it.
    pub requester: Actor,
    /// The sandbox template, when one was chosen.
    pub template: Option<String>,
    /// What the job may reach.
    pub access: Access,
    /// Why policy holds it, when known.
    pub reason: Option<String>,
    /// Where the approval stands.
    pub state: ApprovalState,
}

impl ApprovalCard {
    /// The card's title: `Approval needed`, `Approved`, `Denied` or `Expired`.
    #[must_use]
    pub const fn title(&self) -> &'static str {
        match self.state {
            ApprovalState::Pending { .. } => "Approval needed",
            ApprovalState::Approved { .. } => "Approved",
            ApprovalState::Denied { .. } => "Denied",
            ApprovalState::Expired { .. } => "Expired",
        }
    }

    /// An emoji for the state.
    #[must_use]
    pub const fn icon(&self) -> &'static str {
        match self.state {
            ApprovalState::Pending { .. } => "🔐",
            ApprovalState::Approved { .. } => "✅",
            ApprovalState::Denied { .. } => "❌",
            ApprovalState::Expired { .. } => "⌛",
        }
    }

    /// The approve and deny buttons while pending (empty once decided, or when the job id is too
    /// long to encode; the card then tells people to reply with a command instead).
    #[must_use]
    pub fn buttons(&self) -> Vec<Button> {
        if !matches!(self.state, ApprovalState::Pending { .. }) {
            return Vec::new();
        }
        let approve = Button::new(APPROVE_ACTION, &self.job, "Approve", ButtonStyle::Success);
        let deny = Button::new(DENY_ACTION, &self.job, "Deny", ButtonStyle::Danger);
        match (approve, deny) {
            (Ok(a), Ok(d)) => vec![a, d],
            _ => Vec::new(),
        }
    }

    /// What the job may reach, in words: `network, GPU`, or `no network, no GPU`.
    #[must_use]
    pub fn access_text(&self) -> String {
        let net = if self.access.network { "network" } else { "no network" };
        let gpu = if self.access.gpu { "GPU" } else { "no GPU" };
        format!("{net}, {gpu}")
    }

    /// The lines above the command: title and job, requester, template and access, reason.
    pub(crate) fn head_text(&self, d: &Dialect) -> String {
        let mut lines = vec![
            format!("{} {} · job {}", self.icon(), self.title(), (d.escape)(&inline_code(&cut(&self.job, 64)))),
            format!("Requested by {}", (d.mention)(&self.requester)),
        ];
        let template = self
            .template
            .as_deref()
            .map(|t| format!("Template {} · access: ", inline_code(&cut(t, 60))))
            .unwrap_or_else(|| "Access: ".to_owned());
        lines.push((d.escape)(&format!("{template}{}", self.access_text())));
        if let Some(reason) = &self.reason {
            let reason = cut(reason, MAX_REASON_CHARS).replace(['\n', '\r'], " ");
            lines.push((d.escape)(&format!("Why: {reason}")));
        }
        lines.join("\n")
    }

    /// The command as a fenced code block, cut to [`MAX_COMMAND_CHARS`].
    pub(crate) fn command_text(&self, d: &Dialect) -> String {
        (d.escape)(&code_block(&cut(&self.command, MAX_COMMAND_CHARS), ""))
    }

    /// The line describing the state: expiry, or who decided and when.
    pub(crate) fn state_text(&self, d: &Dialect) -> String {
        match &self.state {
            ApprovalState::Pending { expires_at } => {
                let how = if self.buttons().is_empty() {
                    (d.escape)(&format!(
                        "Reply {} or {}.",
                        inline_code(&format!("approve {}", self.job)),
                        inline_code(&format!("deny {}", self.job))
                    ))
                } else {
                    "Approvers: use the buttons below.".to_owned()
                };
                match expires_at {
                    Some(at) => format!("Expires {}. {how}", (d.time)(*at)),
                    None => how,
                }
            }
            ApprovalState::Approved { by, at } => {
                format!("✅ Approved by {} at {}", (d.mention)(by), (d.time)(*at))
            }
            ApprovalState::Denied { by, at } => {
                format!("❌ Denied by {} at {}; the job will not run.", (d.mention)(by), (d.time)(*at))
            }
            ApprovalState::Expired { at } => {
                format!("⌛ Expired at {} without a decision; the job will not run.", (d.time)(*at))
            }
        }
    }

    /// The whole card as text in a platform's dialect.
    pub(crate) fn text(&self, d: &Dialect) -> String {
        [self.head_text(d), self.command_text(d), self.state_text(d)].join("\n")
    }
}

/// How a platform writes what the neutral dialect cannot: escaping of literal text, user
/// mentions and timestamps.
pub(crate) struct Dialect {
    /// Escapes literal text (identity where nothing needs escaping).
    pub(crate) escape: fn(&str) -> String,
    /// Mentions a user without notifying them where the platform allows.
    pub(crate) mention: fn(&Actor) -> String,
    /// Shows a time (seconds since the Unix epoch).
    pub(crate) time: fn(i64) -> String,
}

/// A user's name for display (or their id), cut to 80 characters.
pub(crate) fn display_name(actor: &Actor) -> String {
    cut(actor.name.as_deref().unwrap_or(&actor.id), 80)
}

/// `text` cut to `max` characters with `…` appended when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some(_) => {
            let keep: String = text.chars().take(max.saturating_sub(1)).collect();
            format!("{keep}…")
        }
        None => text.to_owned(),
    }
}
