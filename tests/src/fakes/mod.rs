//! Fake Slack, Discord and Telegram API servers, and a fake OpenAI-compatible model server, for tests.
//!
//! Each fake is an axum server on `127.0.0.1:0` that **enforces** the platform's documented rules
//! instead of accepting anything (see `PLATFORMS.md` and the specs in `shared/specs/`): the auth
//! token, required parameters and their types (JSON and form-encoded bodies alike), length limits,
//! Block Kit and component limits, and rate limits answered with the platform's real 429 shape.
//! Every call is recorded ([`Call`]) with its parameters (never the token), time, status and
//! response, and each fake keeps message state (ids, current text, thread, edit history), so a
//! test can assert what a user would now see, that there were zero 429s, and that nothing was
//! rejected.
//!
//! Rates are configurable ([`Rate`], [`Window`]) so tests can use tighter or faster budgets than
//! the defaults, which follow the platforms' documentation.

pub mod discord;
pub mod openai;
mod params;
mod rate;
mod server;
pub mod slack;
pub mod telegram;

use std::time::Duration;

use serde_json::Value;

pub use discord::FakeDiscord;
pub use openai::FakeModel;
pub use rate::{Rate, Window};
pub use slack::FakeSlack;
pub use telegram::FakeTelegram;

/// One request a fake received.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The API method: Slack `chat.postMessage`, Telegram `sendMessage` (as the client spelled
    /// it), Discord a route name (`create_message`, `edit_message`, `execute_webhook`,
    /// `edit_webhook_message`), or `response_url`.
    pub method: String,
    /// The parameters (JSON object; form fields as strings). Tokens are never recorded.
    pub params: Value,
    /// When, since the fake started.
    pub at: Duration,
    /// The HTTP status answered.
    pub status: u16,
    /// The platform error (Slack `error`, Discord `code`, Telegram `description`), if any.
    pub error: Option<String>,
    /// The response body.
    pub response: Value,
}

impl Call {
    /// Whether the call was rate limited (HTTP 429).
    #[must_use]
    pub fn is_rate_limited(&self) -> bool {
        self.status == 429
    }

    /// Whether the call was refused for another reason (bad auth, parameters, limits).
    #[must_use]
    pub fn is_rejected(&self) -> bool {
        self.status != 429 && self.error.is_some()
    }
}

/// Calls matching `method`.
fn filter_calls(calls: &[Call], method: &str) -> Vec<Call> {
    calls.iter().filter(|c| c.method == method).cloned().collect()
}
