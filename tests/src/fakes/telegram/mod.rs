//! A fake Telegram Bot API: `sendMessage`, `editMessageText`, `sendMessageDraft`,
//! `answerCallbackQuery` and `getMe` at `/bot<token>/<method>` (method names case-insensitive,
//! as clients differ), with JSON, form-encoded and query-string parameters.
//!
//! Enforced: the token in the path (`401 Unauthorized`), unknown methods (`404 Not Found`),
//! required parameters and their types, text 1–4,096 UTF-16 units, entities inside the text,
//! inline keyboards (`callback_data` 1–64 bytes, one action per button), edits that change
//! nothing (`message is not modified`), drafts only in private chats with a non-zero `draft_id`,
//! callback queries answered once with text ≤ 200. [`FakeTelegramBuilder::without_drafts`] plays a Bot API
//! server older than 10.0 (`sendMessageDraft` unknown: `404 Not Found`). Rate limits per chat, per group and overall
//! answer `429 {"ok":false,"error_code":429,"description":"Too Many Requests: retry after N",
//! "parameters":{"retry_after":N}}`.

mod api;
mod methods;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use methods::{CALLBACK_DATA_LIMIT, CALLBACK_TEXT_LIMIT, TEXT_LIMIT};

use super::rate::{Buckets, Rate};
use super::server::Server;
use super::{Call, filter_calls};

/// Rate limits (token buckets).
#[derive(Clone, Copy, Debug)]
pub struct TelegramRates {
    /// Messages and edits per chat (about one a second).
    pub per_chat: Rate,
    /// Messages and edits per group or supergroup (20 a minute).
    pub per_group: Rate,
    /// Messages and edits of the bot overall (about 30 a second).
    pub global: Rate,
    /// Drafts per chat (not documented; generous by default).
    pub drafts: Rate,
}

impl Default for TelegramRates {
    fn default() -> Self {
        Self {
            per_chat: Rate::per_second(1, 3),
            per_group: Rate::per_minute(20, 20),
            global: Rate::per_second(30, 30),
            drafts: Rate::per_second(5, 5),
        }
    }
}

impl TelegramRates {
    /// No rate limits.
    #[must_use]
    pub fn unlimited() -> Self {
        let u = Rate::unlimited();
        Self { per_chat: u, per_group: u, global: u, drafts: u }
    }
}

/// A message as the fake holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The chat id.
    pub chat_id: i64,
    /// The message id.
    pub message_id: i64,
    /// The forum topic.
    pub thread_id: Option<i64>,
    /// The message it replies to.
    pub reply_to: Option<i64>,
    /// The current text.
    pub text: String,
    /// The current entities (an array).
    pub entities: Value,
    /// The current reply markup.
    pub reply_markup: Option<Value>,
    /// How many times it was edited.
    pub edits: u32,
    /// When it was last changed, since the fake started.
    pub updated_at: Duration,
}

/// A `sendMessageDraft` call that was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    /// The private chat.
    pub chat_id: i64,
    /// The topic, if any.
    pub thread_id: Option<i64>,
    /// The draft id.
    pub draft_id: i64,
    /// The text.
    pub text: String,
}

/// An answer to a callback query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackAnswer {
    /// The notice text.
    pub text: Option<String>,
    /// Shown as an alert.
    pub show_alert: bool,
}

/// Builds a [`FakeTelegram`].
#[derive(Clone, Debug)]
pub struct FakeTelegramBuilder {
    token: String,
    rates: TelegramRates,
    drafts: bool,
}

impl FakeTelegramBuilder {
    /// The bot token (default `123456789:AAFakeTokenForCyNodeTests`).
    #[must_use]
    pub fn token(mut self, token: &str) -> Self {
        self.token = token.to_owned();
        self
    }

    /// The rate limits (default [`TelegramRates::default`]).
    #[must_use]
    pub fn rates(mut self, rates: TelegramRates) -> Self {
        self.rates = rates;
        self
    }

    /// Answers `sendMessageDraft` with `404 Not Found`, as a Bot API server before 10.0 does.
    #[must_use]
    pub fn without_drafts(mut self) -> Self {
        self.drafts = false;
        self
    }

    /// Starts the server.
    pub async fn start(self) -> FakeTelegram {
        let shared = Arc::new(Shared {
            token: self.token,
            rates: self.rates,
            drafts: self.drafts,
            started: Instant::now(),
            state: Mutex::new(State::default()),
        });
        let server = Server::start(api::router(shared.clone())).await;
        FakeTelegram { shared, server }
    }
}

/// A running fake Telegram.
#[derive(Debug)]
pub struct FakeTelegram {
    shared: Arc<Shared>,
    server: Server,
}

#[derive(Debug)]
struct Shared {
    token: String,
    rates: TelegramRates,
    drafts: bool,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    messages: Vec<Message>,
    drafts: Vec<Draft>,
    queries: HashMap<String, Option<CallbackAnswer>>,
    buckets: Buckets<(&'static str, i64)>,
    seq: i64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl FakeTelegram {
    /// A builder with the default token and rates.
    #[must_use]
    pub fn builder() -> FakeTelegramBuilder {
        FakeTelegramBuilder {
            token: "123456789:AAFakeTokenForCyNodeTests".to_owned(),
            rates: TelegramRates::default(),
            drafts: true,
        }
    }

    /// Starts a fake with the defaults.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// The Bot API base URL, `http://127.0.0.1:PORT/` (methods live at `bot<token>/<method>`).
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("{}/", self.server.origin())
    }

    /// The accepted token.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Registers a callback query (a click on the message `message_id` in `chat_id`) that the
    /// bot must answer once; returns its id.
    #[must_use]
    pub fn callback_query(&self, chat_id: i64, message_id: i64) -> String {
        let mut state = self.shared.lock();
        state.seq += 1;
        let id = format!("{}{chat_id}{message_id}", 4_382_000_000_000_000_000_i64 + state.seq);
        state.queries.insert(id.clone(), None);
        id
    }

    /// How a callback query was answered (`None` while unanswered or unknown).
    #[must_use]
    pub fn callback_answer(&self, id: &str) -> Option<CallbackAnswer> {
        self.shared.lock().queries.get(id).cloned().flatten()
    }

    /// When the fake started: [`Call::at`] and message times count from here.
    #[must_use]
    pub fn started(&self) -> Instant {
        self.shared.started
    }

    /// Every call so far.
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// The calls to one method (as the client spelled it).
    #[must_use]
    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        filter_calls(&self.shared.lock().calls, method)
    }

    /// How many calls were answered with HTTP 429.
    #[must_use]
    pub fn count_429(&self) -> usize {
        self.shared.lock().calls.iter().filter(|c| c.is_rate_limited()).count()
    }

    /// The calls refused for a reason other than rate limits.
    #[must_use]
    pub fn rejections(&self) -> Vec<Call> {
        self.shared.lock().calls.iter().filter(|c| c.is_rejected()).cloned().collect()
    }

    /// The messages in a chat, in the topic `thread_id` when given (else outside topics).
    #[must_use]
    pub fn messages_in(&self, chat_id: i64, thread_id: Option<i64>) -> Vec<Message> {
        let state = self.shared.lock();
        state.messages.iter().filter(|m| m.chat_id == chat_id && m.thread_id == thread_id).cloned().collect()
    }

    /// One message.
    #[must_use]
    pub fn message(&self, chat_id: i64, message_id: i64) -> Option<Message> {
        self.shared.lock().messages.iter().find(|m| m.chat_id == chat_id && m.message_id == message_id).cloned()
    }

    /// Every draft accepted, in order.
    #[must_use]
    pub fn drafts(&self) -> Vec<Draft> {
        self.shared.lock().drafts.clone()
    }
}
