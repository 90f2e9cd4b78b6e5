//! What the platform clients share: the result of a send ([`Sent`], [`MessageRef`]), Discord-style
//! rate-limit state ([`RateLimit`]) and the one error type ([`PlatformError`]).
//!
//! Clients never log or return tokens: requests are logged by method name and status only, and
//! transport errors are stripped of their URL (Telegram and Discord interaction URLs contain
//! credentials) before they become a [`PlatformError`].

mod error;
pub(crate) mod http;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::PlatformError;

/// The result of a platform call.
pub type PlatformResult<T> = Result<T, PlatformError>;

/// A message CyNode posted, precisely enough to edit it later.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageRef {
    /// Slack channel id, Discord channel id, Telegram chat id.
    pub channel: String,
    /// Slack `ts`, Discord message id, Telegram `message_id`.
    pub id: String,
}

/// A successful send or edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The message.
    pub message: MessageRef,
    /// The rate-limit state the platform reported with the response (Discord's `X-RateLimit-*`
    /// headers); `None` for platforms that do not report one.
    pub rate_limit: Option<RateLimit>,
}

/// Rate-limit state from Discord's `X-RateLimit-*` headers, so a caller can pace itself before
/// it hits a 429.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RateLimit {
    /// `X-RateLimit-Limit`: requests allowed per window.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`: requests left in this window.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Reset-After`: time until the window resets.
    pub reset_after: Option<Duration>,
    /// `X-RateLimit-Bucket`: the bucket id shared by routes with the same limit.
    pub bucket: Option<String>,
    /// `X-RateLimit-Scope`: `user`, `global` or `shared`.
    pub scope: Option<String>,
}

impl RateLimit {
    /// How long to wait before the next request in this bucket: the reset time when nothing
    /// remains, else zero.
    #[must_use]
    pub fn wait_before_next(&self) -> Duration {
        match (self.remaining, self.reset_after) {
            (Some(0), Some(reset)) => reset,
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
