//! A fake Discord HTTP API (v10) for messages: channel messages with the bot token, and
//! interaction webhooks (`@original` edits and follow-ups) with the interaction token.
//!
//! Enforced: `Authorization: Bot <token>` on channel routes; interaction tokens that exist, belong
//! to the application and are younger than their lifetime (15 minutes by default; an expired one
//! gets `401 {"code":50027}`); `content` ≤ 2,000 characters; non-empty messages; components (rows of
//! 1–5, at most 5 rows and 40 components, buttons with `custom_id` 1–100 unique in the message,
//! label ≤ 80, link buttons with a `url` instead); `allowed_mentions` and `flags` (ephemeral only on
//! follow-ups). Rate limits are fixed windows per route and channel or interaction (5 per 5 s by
//! default) plus a global limit for bot routes, with `X-RateLimit-*` headers on every response and
//! the real 429: `{"message":"You are being rate limited.","retry_after":0.65,"global":false}` with
//! `Retry-After`.

mod answer;
mod routes;
mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use validate::CONTENT_LIMIT;

use super::rate::{Window, Windows};
use super::server::Server;
use super::{Call, filter_calls};

/// Rate limits as fixed windows.
#[derive(Clone, Copy, Debug)]
pub struct DiscordRates {
    /// `POST /channels/{id}/messages`, per channel (5 per 5 s).
    pub create_message: Window,
    /// `PATCH /channels/{id}/messages/{id}`, per channel (5 per 5 s).
    pub edit_message: Window,
    /// Interaction webhook routes, per interaction token (5 per 5 s).
    pub webhook: Window,
    /// All bot-token routes together (50 per second).
    pub global: Window,
}

impl Default for DiscordRates {
    fn default() -> Self {
        let five = Window::new(5, Duration::from_secs(5));
        Self {
            create_message: five,
            edit_message: five,
            webhook: five,
            global: Window::new(50, Duration::from_secs(1)),
        }
    }
}

impl DiscordRates {
    /// No rate limits.
    #[must_use]
    pub fn unlimited() -> Self {
        let w = Window::new(u32::MAX, Duration::from_secs(1));
        Self { create_message: w, edit_message: w, webhook: w, global: w }
    }
}

/// A message as the fake holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The message id.
    pub id: String,
    /// The channel (or thread) id.
    pub channel_id: String,
    /// The current content.
    pub content: String,
    /// The current components.
    pub components: Value,
    /// The flags.
    pub flags: u64,
    /// Sent through an interaction's webhook.
    pub via_interaction: bool,
    /// The deferred "thinking…" response, not edited yet.
    pub deferred: bool,
    /// Only the invoking user sees it.
    pub ephemeral: bool,
    /// How many times it was edited.
    pub edits: u32,
    /// When it was last changed, since the fake started.
    pub updated_at: Duration,
}

/// An interaction registered with [`FakeDiscord::interaction`] or [`FakeDiscord::component_interaction`].
#[derive(Clone, Debug)]
struct Interaction {
    channel_id: String,
    created: Instant,
    messages: Vec<String>,
}

/// Builds a [`FakeDiscord`].
#[derive(Clone, Debug)]
pub struct FakeDiscordBuilder {
    bot_token: String,
    application_id: String,
    rates: DiscordRates,
    interaction_lifetime: Duration,
}

impl FakeDiscordBuilder {
    /// The rate limits (default [`DiscordRates::default`]).
    #[must_use]
    pub fn rates(mut self, rates: DiscordRates) -> Self {
        self.rates = rates;
        self
    }

    /// How long interaction tokens live (default 15 minutes).
    #[must_use]
    pub fn interaction_lifetime(mut self, lifetime: Duration) -> Self {
        self.interaction_lifetime = lifetime;
        self
    }

    /// The bot token (default `fake-bot-token`).
    #[must_use]
    pub fn bot_token(mut self, token: &str) -> Self {
        self.bot_token = token.to_owned();
        self
    }

    /// Starts the server.
    pub async fn start(self) -> FakeDiscord {
        let shared = Arc::new(Shared {
            bot_token: self.bot_token,
            application_id: self.application_id,
            rates: self.rates,
            interaction_lifetime: self.interaction_lifetime,
            started: Instant::now(),
            state: Mutex::new(State::default()),
        });
        let server = Server::start(routes::router(shared.clone())).await;
        FakeDiscord { shared, server }
    }
}

/// A running fake Discord.
#[derive(Debug)]
pub struct FakeDiscord {
    shared: Arc<Shared>,
    server: Server,
}

#[derive(Debug)]
struct Shared {
    bot_token: String,
    application_id: String,
    rates: DiscordRates,
    interaction_lifetime: Duration,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    messages: Vec<Message>,
    interactions: HashMap<String, Interaction>,
    windows: Windows<String>,
    seq: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    fn next_id(&mut self) -> String {
        self.seq += 1;
        (1_300_000_000_000_000_000_u64 + self.seq).to_string()
    }
}

impl FakeDiscord {
    /// A builder with default token, application id `1170000000000000000` and rates.
    #[must_use]
    pub fn builder() -> FakeDiscordBuilder {
        FakeDiscordBuilder {
            bot_token: "fake-bot-token".to_owned(),
            application_id: "1170000000000000000".to_owned(),
            rates: DiscordRates::default(),
            interaction_lifetime: Duration::from_secs(15 * 60),
        }
    }

    /// Starts a fake with the defaults.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// The API base URL, `http://127.0.0.1:PORT/api/v10/`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("{}/api/v10/", self.server.origin())
    }

    /// The accepted bot token.
    #[must_use]
    pub fn bot_token(&self) -> &str {
        &self.shared.bot_token
    }

    /// The application id.
    #[must_use]
    pub fn application_id(&self) -> &str {
        &self.shared.application_id
    }

    /// Registers an interaction in `channel_id` that was answered with a deferred response
    /// (type 5): its original message exists, "thinking…", until edited. Returns the token.
    #[must_use]
    pub fn interaction(&self, channel_id: &str) -> String {
        let mut state = self.shared.lock();
        let id = state.next_id();
        let token = format!("aW50ZXJhY3Rpb246{id}OmZha2U");
        let at = Instant::now().saturating_duration_since(self.shared.started);
        state.messages.push(Message {
            id: id.clone(),
            channel_id: channel_id.to_owned(),
            content: String::new(),
            components: Value::Array(Vec::new()),
            flags: 0,
            via_interaction: true,
            deferred: true,
            ephemeral: false,
            edits: 0,
            updated_at: at,
        });
        let interaction =
            Interaction { channel_id: channel_id.to_owned(), created: Instant::now(), messages: vec![id] };
        state.interactions.insert(token.clone(), interaction);
        token
    }

    /// Registers a click on a component of message `message_id` in `channel_id`, answered with a deferred update
    /// (type 6): the interaction's original response is the clicked message, and follow-ups (ephemeral ones
    /// included) go through its token. Returns the token.
    #[must_use]
    pub fn component_interaction(&self, channel_id: &str, message_id: &str) -> String {
        let mut state = self.shared.lock();
        let id = state.next_id();
        let token = format!("Y29tcG9uZW50OjE{id}OmZha2U");
        let interaction = Interaction {
            channel_id: channel_id.to_owned(),
            created: Instant::now(),
            messages: vec![message_id.to_owned()],
        };
        state.interactions.insert(token.clone(), interaction);
        token
    }

    /// The ephemeral follow-ups sent with the interaction token `token`.
    #[must_use]
    pub fn ephemerals_of(&self, token: &str) -> Vec<Message> {
        let state = self.shared.lock();
        let Some(i) = state.interactions.get(token) else { return Vec::new() };
        state.messages.iter().filter(|m| m.ephemeral && i.messages.contains(&m.id)).cloned().collect()
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

    /// The calls to one route (`create_message`, `edit_message`, `execute_webhook`,
    /// `edit_webhook_message`).
    #[must_use]
    pub fn calls_to(&self, route: &str) -> Vec<Call> {
        filter_calls(&self.shared.lock().calls, route)
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

    /// The non-ephemeral messages in a channel (or thread), oldest first.
    #[must_use]
    pub fn messages_in(&self, channel_id: &str) -> Vec<Message> {
        let state = self.shared.lock();
        state.messages.iter().filter(|m| m.channel_id == channel_id && !m.ephemeral).cloned().collect()
    }

    /// Ephemeral follow-ups.
    #[must_use]
    pub fn ephemerals(&self) -> Vec<Message> {
        self.shared.lock().messages.iter().filter(|m| m.ephemeral).cloned().collect()
    }

    /// One message by id.
    #[must_use]
    pub fn message(&self, id: &str) -> Option<Message> {
        self.shared.lock().messages.iter().find(|m| m.id == id).cloned()
    }

    /// The original response of the interaction with `token`.
    #[must_use]
    pub fn original(&self, token: &str) -> Option<Message> {
        let state = self.shared.lock();
        let id = state.interactions.get(token)?.messages.first()?.clone();
        state.messages.iter().find(|m| m.id == id).cloned()
    }
}
