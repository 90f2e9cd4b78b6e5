//! A fake Slack Web API: `chat.postMessage` (with message metadata), `chat.update`, `chat.postEphemeral`, the
//! streaming methods, `assistant.threads.setStatus`, `conversations.replies`, and `response_url`s.
//!
//! Enforced: `Authorization: Bearer <token>` (or a `token` field), JSON and form bodies,
//! required parameters, `text` vs `markdown_text`, text limits (`msg_too_long` over 4,000
//! characters on `chat.update`, 40,000 on posts, 12,000 for Markdown), Block Kit limits (see
//! [`blocks`]), stream states, `response_url` use limits (5 within 30 minutes), and rate limits
//! per method and workspace (posting per channel) answered with HTTP 429, `Retry-After` and
//! `{"ok":false,"error":"ratelimited"}`.

mod api;
pub mod blocks;
mod methods;
mod response_url;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use methods::{MARKDOWN_LIMIT, POST_TEXT_LIMIT, UPDATE_TEXT_LIMIT};

use super::rate::{Buckets, Rate};
use super::server::Server;
use super::{Call, filter_calls};

/// Rate limits per method and workspace (`post_message` per channel).
#[derive(Clone, Copy, Debug)]
pub struct SlackRates {
    /// `chat.postMessage` per channel: about one a second, short bursts allowed.
    pub post_message: Rate,
    /// `chat.update` (Tier 3, about 50 a minute).
    pub update: Rate,
    /// `chat.postEphemeral` (Tier 4, about 100 a minute).
    pub post_ephemeral: Rate,
    /// `chat.startStream`, and separately `chat.stopStream` (Tier 2, about 20 a minute each).
    pub start_stop_stream: Rate,
    /// `chat.appendStream` (Tier 4).
    pub append_stream: Rate,
    /// `assistant.threads.setStatus` (Tier 3).
    pub set_status: Rate,
    /// `conversations.replies` (Tier 3).
    pub replies: Rate,
}

impl Default for SlackRates {
    fn default() -> Self {
        Self {
            post_message: Rate::per_second(1, 3),
            update: Rate::per_minute(50, 5),
            post_ephemeral: Rate::per_minute(100, 10),
            start_stop_stream: Rate::per_minute(20, 3),
            append_stream: Rate::per_minute(100, 10),
            set_status: Rate::per_minute(50, 5),
            replies: Rate::per_minute(50, 5),
        }
    }
}

impl SlackRates {
    /// No rate limits.
    #[must_use]
    pub fn unlimited() -> Self {
        let u = Rate::unlimited();
        Self {
            post_message: u,
            update: u,
            post_ephemeral: u,
            start_stop_stream: u,
            append_stream: u,
            set_status: u,
            replies: u,
        }
    }
}

/// A message as the fake holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The channel id.
    pub channel: String,
    /// The message `ts` (its id).
    pub ts: String,
    /// The thread it was posted in.
    pub thread_ts: Option<String>,
    /// The current `text`.
    pub text: Option<String>,
    /// The current blocks.
    pub blocks: Option<Value>,
    /// The current Markdown (`markdown_text`, or a stream's accumulated text).
    pub markdown: Option<String>,
    /// A stream still open (`chat.startStream` without `chat.stopStream`).
    pub streaming: bool,
    /// For ephemeral messages, the only user who sees it.
    pub ephemeral_to: Option<String>,
    /// Its message metadata (`{"event_type": …, "event_payload": {…}}`), if posted with some.
    pub metadata: Option<Value>,
    /// How many times it was edited.
    pub edits: u32,
    /// When it was last changed, since the fake started.
    pub updated_at: Duration,
}

impl Message {
    /// Everything the message shows as one string: text, Markdown, and the text of every block.
    #[must_use]
    pub fn shown(&self) -> String {
        let mut parts: Vec<String> = self.text.iter().chain(&self.markdown).cloned().collect();
        if let Some(blocks) = &self.blocks {
            collect_texts(blocks, &mut parts);
        }
        parts.join("\n")
    }
}

fn collect_texts(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(text)) = map.get("text") {
                out.push(text.clone());
            }
            map.values().for_each(|v| collect_texts(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_texts(v, out)),
        _ => {}
    }
}

/// An `assistant.threads.setStatus` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The channel.
    pub channel_id: String,
    /// The thread.
    pub thread_ts: String,
    /// The status (empty clears it).
    pub status: String,
}

/// A `chat.postMessage` whose message exists but whose answer is held back ([`FakeSlackBuilder::answer_posts_late`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// The channel.
    pub channel: String,
    /// The thread.
    pub thread_ts: Option<String>,
    /// The new message's `ts`.
    pub ts: String,
    /// The client's address (which process sent it).
    pub peer: std::net::SocketAddr,
}

/// Builds a [`FakeSlack`].
#[derive(Clone, Debug)]
pub struct FakeSlackBuilder {
    token: String,
    rates: SlackRates,
    refuse_streams: Option<String>,
    late_posts: Option<Duration>,
    unavailable: Vec<String>,
}

impl FakeSlackBuilder {
    /// The bot token the fake accepts (default `xoxb-cynode-fake`).
    #[must_use]
    pub fn token(mut self, token: &str) -> Self {
        self.token = token.to_owned();
        self
    }

    /// Answers every `chat.startStream` with the error `code` (as Slack does for an app or a conversation
    /// that may not stream, e.g. `method_not_supported_for_channel_type`).
    #[must_use]
    pub fn refuse_streams(mut self, code: &str) -> Self {
        self.refuse_streams = Some(code.to_owned());
        self
    }

    /// Answers each successful `chat.postMessage` only after `delay`: the message exists (and shows in threads)
    /// from the moment the request arrives, as at Slack, while the answer is on its way ([`FakeSlack::in_flight`]
    /// lists those posts). Makes the window in which a crash loses a post's answer wide enough to hit.
    #[must_use]
    pub fn answer_posts_late(mut self, delay: Duration) -> Self {
        self.late_posts = Some(delay);
        self
    }

    /// Answers every call of `method` with HTTP 503 and `{"ok":false,"error":"service_unavailable"}`, as Slack
    /// does for a method during an incident (or a proxy between the gateway and Slack that does not pass it).
    #[must_use]
    pub fn unavailable(mut self, method: &str) -> Self {
        self.unavailable.push(method.to_owned());
        self
    }

    /// The rate limits (default [`SlackRates::default`]).
    #[must_use]
    pub fn rates(mut self, rates: SlackRates) -> Self {
        self.rates = rates;
        self
    }

    /// Starts the server.
    pub async fn start(self) -> FakeSlack {
        let shared = Arc::new(Shared {
            token: self.token,
            rates: self.rates,
            refuse_streams: self.refuse_streams,
            late_posts: self.late_posts,
            unavailable: self.unavailable,
            started: Instant::now(),
            state: Mutex::new(State::default()),
        });
        let server = Server::start(api::router(shared.clone())).await;
        FakeSlack { shared, server }
    }
}

/// A running fake Slack.
#[derive(Debug)]
pub struct FakeSlack {
    shared: Arc<Shared>,
    server: Server,
}

#[derive(Debug)]
struct Shared {
    token: String,
    rates: SlackRates,
    refuse_streams: Option<String>,
    late_posts: Option<Duration>,
    unavailable: Vec<String>,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    messages: Vec<Message>,
    ephemerals: Vec<Message>,
    statuses: Vec<Status>,
    buckets: Buckets<(&'static str, String)>,
    response_urls: HashMap<String, response_url::ResponseUrl>,
    in_flight: Vec<InFlight>,
    seq: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl FakeSlack {
    /// A builder with the default token and rates.
    #[must_use]
    pub fn builder() -> FakeSlackBuilder {
        FakeSlackBuilder {
            token: "xoxb-cynode-fake".to_owned(),
            rates: SlackRates::default(),
            refuse_streams: None,
            late_posts: None,
            unavailable: Vec::new(),
        }
    }

    /// Starts a fake with the default token and rates.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    /// The Web API base URL, `http://127.0.0.1:PORT/api/`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("{}/api/", self.server.origin())
    }

    /// The prefix of the `response_url`s this fake mints.
    #[must_use]
    pub fn response_url_prefix(&self) -> String {
        format!("{}/response/", self.server.origin())
    }

    /// The accepted bot token.
    #[must_use]
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Mints a `response_url` for an interaction by `user` in `channel`, on the message
    /// `message_ts` (which `replace_original` edits).
    #[must_use]
    pub fn response_url(&self, channel: &str, user: &str, message_ts: Option<&str>) -> String {
        let mut state = self.shared.lock();
        state.seq += 1;
        let id = format!("T0FAKE/{}/{:016x}", state.seq, state.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let url = response_url::ResponseUrl::new(channel, user, message_ts, Instant::now());
        state.response_urls.insert(id.clone(), url);
        format!("{}{id}", self.response_url_prefix())
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

    /// The calls to one method.
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

    /// The (non-ephemeral) messages in `channel`, in the thread `thread_ts` when given, else
    /// outside threads; oldest first.
    #[must_use]
    pub fn messages_in(&self, channel: &str, thread_ts: Option<&str>) -> Vec<Message> {
        let state = self.shared.lock();
        state.messages.iter().filter(|m| m.channel == channel && m.thread_ts.as_deref() == thread_ts).cloned().collect()
    }

    /// One message by channel and `ts`.
    #[must_use]
    pub fn message(&self, channel: &str, ts: &str) -> Option<Message> {
        self.shared.lock().messages.iter().find(|m| m.channel == channel && m.ts == ts).cloned()
    }

    /// Ephemeral messages (from `chat.postEphemeral` and ephemeral `response_url` answers).
    #[must_use]
    pub fn ephemerals(&self) -> Vec<Message> {
        self.shared.lock().ephemerals.clone()
    }

    /// The posts whose answers are held back right now ([`FakeSlackBuilder::answer_posts_late`]).
    #[must_use]
    pub fn in_flight(&self) -> Vec<InFlight> {
        self.shared.lock().in_flight.clone()
    }

    /// Every `assistant.threads.setStatus` accepted, in order.
    #[must_use]
    pub fn statuses(&self) -> Vec<Status> {
        self.shared.lock().statuses.clone()
    }
}
