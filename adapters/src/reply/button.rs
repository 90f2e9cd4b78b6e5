//! Buttons, validated once against the tightest platform limits so every renderer can show them.

use serde::{Deserialize, Serialize};

use crate::{COMPACT_ACTION_SEPARATOR, compact_action};

/// The longest compact encoding (`action_id:value`) a button may have: Telegram's
/// `callback_data` limit of 64 bytes (Discord allows 100 characters, Slack 255 + 2,000).
pub const MAX_COMPACT_BYTES: usize = 64;
/// The longest label shown, in characters (Slack's limit; Discord's is 80). Longer labels are cut.
pub const MAX_LABEL_CHARS: usize = 75;

/// How a button looks. Platforms without a matching style show their default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonStyle {
    /// The platform's plain button.
    #[default]
    Neutral,
    /// The main action (Slack `primary`, Discord blurple, Telegram `primary`).
    Primary,
    /// A positive action such as approve (Slack `primary`, Discord green, Telegram `success`).
    Success,
    /// A destructive action such as deny or cancel (red everywhere).
    Danger,
}

/// Why a button cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ButtonError {
    /// The action id is empty, not printable ASCII, or contains the compact separator `:`.
    #[error("action id must be printable ASCII without `:`")]
    InvalidActionId,
    /// The label is empty.
    #[error("button label is empty")]
    EmptyLabel,
    /// `action_id:value` is longer than [`MAX_COMPACT_BYTES`].
    #[error("action id and value take {bytes} bytes, more than {MAX_COMPACT_BYTES}")]
    TooLong {
        /// The encoded length.
        bytes: usize,
    },
}

/// A clickable button. Clicks come back through the ingress parsers as
/// [`InboundKind::Action`](crate::InboundKind::Action) with this action id and value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ButtonFields", into = "ButtonFields")]
pub struct Button {
    action_id: String,
    value: String,
    label: String,
    style: ButtonStyle,
}

impl Button {
    /// A button; the label is cut to [`MAX_LABEL_CHARS`].
    ///
    /// # Errors
    ///
    /// [`ButtonError`] when the action id or label is unusable or the compact encoding is too long.
    pub fn new(action_id: &str, value: &str, label: &str, style: ButtonStyle) -> Result<Self, ButtonError> {
        let printable = |c: char| c.is_ascii_graphic() && c != COMPACT_ACTION_SEPARATOR;
        if action_id.is_empty() || !action_id.chars().all(printable) {
            return Err(ButtonError::InvalidActionId);
        }
        let label = label.trim();
        if label.is_empty() {
            return Err(ButtonError::EmptyLabel);
        }
        let bytes = compact_action(action_id, value).len();
        if bytes > MAX_COMPACT_BYTES {
            return Err(ButtonError::TooLong { bytes });
        }
        let label = match label.char_indices().nth(MAX_LABEL_CHARS) {
            Some((cut, _)) => {
                let keep = label[..cut].char_indices().last().map_or(0, |(i, _)| i);
                format!("{}…", &label[..keep])
            }
            None => label.to_owned(),
        };
        Ok(Self { action_id: action_id.to_owned(), value: value.to_owned(), label, style })
    }

    /// The action id.
    #[must_use]
    pub fn action_id(&self) -> &str {
        &self.action_id
    }

    /// The value (may be empty).
    #[must_use]
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The label.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The style.
    #[must_use]
    pub const fn style(&self) -> ButtonStyle {
        self.style
    }

    /// The compact encoding for Discord `custom_id` and Telegram `callback_data`.
    #[must_use]
    pub fn compact(&self) -> String {
        compact_action(&self.action_id, &self.value)
    }
}

/// The serialised form of a [`Button`], validated again when read back.
#[derive(Serialize, Deserialize)]
struct ButtonFields {
    action_id: String,
    value: String,
    label: String,
    #[serde(default)]
    style: ButtonStyle,
}

impl TryFrom<ButtonFields> for Button {
    type Error = ButtonError;

    fn try_from(f: ButtonFields) -> Result<Self, Self::Error> {
        Self::new(&f.action_id, &f.value, &f.label, f.style)
    }
}

impl From<Button> for ButtonFields {
    fn from(b: Button) -> Self {
        Self { action_id: b.action_id, value: b.value, label: b.label, style: b.style }
    }
}
