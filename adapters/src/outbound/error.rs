//! The error every platform client returns.

use std::time::Duration;

/// Why a platform call failed. The `Display` never contains a token, URL or message text, so
/// it is safe to log; [`reason`](Self::reason) is a stable metric label.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Over the platform's rate limit: wait `retry_after`, then retry the same request (Slack
    /// `Retry-After`, Discord `retry_after`, Telegram `parameters.retry_after`).
    #[error("rate limited; retry after {} ms", retry_after.as_millis())]
    RateLimited {
        /// How long to wait.
        retry_after: Duration,
        /// Discord's global limit (every route of the bot) rather than one route's.
        global: bool,
    },
    /// The text is longer than the platform accepts (Slack `msg_too_long`).
    #[error("message is too long")]
    TooLong,
    /// The edit changes nothing (Telegram refuses such edits); treat as success.
    #[error("message is not modified")]
    NotModified,
    /// The message, channel or chat does not exist (or is not ours to edit).
    #[error("message or channel not found")]
    NotFound,
    /// A short-lived credential is no longer valid: a Discord interaction token after 15
    /// minutes, a used-up Slack `response_url`, an old Telegram callback query. Fall back to
    /// the bot token (Discord channel post) or drop the call.
    #[error("interaction token, response URL or callback query expired")]
    Expired,
    /// The platform rejected the request; the platform's error code or description (never
    /// message text).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The token is missing, invalid, revoked, or lacks a permission.
    #[error("platform authentication failed")]
    Auth,
    /// The platform or the network failed; retrying later may work.
    #[error("transient platform failure: {0}")]
    Transient(String),
}

impl PlatformError {
    /// Whether retrying the same request later may succeed (rate limits and transient failures).
    #[must_use]
    pub const fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_))
    }

    /// The wait a rate limit asks for.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// A short, stable label for metrics.
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::TooLong => "too_long",
            Self::NotModified => "not_modified",
            Self::NotFound => "not_found",
            Self::Expired => "expired",
            Self::InvalidRequest(_) => "invalid_request",
            Self::Auth => "auth",
            Self::Transient(_) => "transient",
        }
    }

    /// An `InvalidRequest` with a platform code cleaned for logs: printable ASCII, at most 120
    /// characters.
    pub(crate) fn invalid(code: &str) -> Self {
        Self::InvalidRequest(clean(code))
    }

    /// A `Transient` failure with a cleaned description.
    pub(crate) fn transient(what: &str) -> Self {
        Self::Transient(clean(what))
    }
}

fn clean(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).take(120).collect()
}
