//! The platform side of a stream: [`ThreadSink`], one implementation per platform over the adapters' clients
//! and renderers, injected as `Arc<dyn ThreadSink>` so tests can swap in a fake.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cynode_adapters::split::Budget;
use cynode_adapters::{Platform, PlatformError, PlatformResult, RateLimit, Reply, ReplyHandle, ThreadRef};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a stream answers: the thread, the install, and the platform's reply context.
#[derive(Clone, Debug)]
pub struct Target {
    /// The task the stream belongs to.
    pub task_id: Uuid,
    /// The install row.
    pub install_id: Uuid,
    /// The thread, with `reply_to` set to the user's message when known.
    pub thread: ThreadRef,
    /// The platform's reply context of the request (Discord interaction token, Telegram callback query).
    pub handle: Option<ReplyHandle>,
    /// When the request arrived (a Discord interaction token lives 15 minutes from then).
    pub received_at: Option<DateTime<Utc>>,
    /// Who asked (the recipient of private notices).
    pub requester: String,
}

impl Target {
    /// The platform.
    #[must_use]
    pub const fn platform(&self) -> Platform {
        self.thread.platform
    }
}

/// How an owned message is edited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A bot message in the channel (edited with the bot token).
    Channel,
    /// A Discord interaction's original response (edited through the interaction webhook while the token
    /// lives, with the bot token afterwards).
    Original,
    /// A post whose outcome is unknown (the replica crashed while sending it): never edited, never re-posted.
    Lost,
    /// An open Slack stream (`chat.startStream`): text is appended until `chat.stopStream`, then it is a
    /// [`Via::Channel`] message. Never edited while open.
    Stream,
}

/// A message the stream owns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owned {
    /// Slack channel id, Discord channel id, Telegram chat id.
    pub channel: String,
    /// Slack `ts`, Discord message id, Telegram `message_id`.
    pub id: String,
    /// How it is edited.
    pub via: Via,
}

/// What a send returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posted {
    /// The message.
    pub message: Owned,
    /// Discord's `X-RateLimit-*` state, when reported.
    pub rate_limit: Option<RateLimit>,
}

/// The kind of outbound call, for budgeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new message in the thread (or the first edit of a Discord deferred response).
    Post,
    /// An edit of an owned message.
    Edit(Via),
    /// A private notice to one user.
    Private,
    /// A streaming call (Slack's `chat.startStream`, `chat.appendStream`, `chat.stopStream`).
    Stream(StreamOp),
    /// An ephemeral draft of a message not posted yet (Telegram's `sendMessageDraft`).
    Draft,
    /// Looking for a message whose post was interrupted (Slack's `conversations.replies`).
    Find,
}

/// The streaming calls, budgeted separately (Slack: start and stop Tier 2, append Tier 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamOp {
    /// Starts a streamed message in the thread.
    Start,
    /// Appends text to an open stream.
    Append,
    /// Ends a stream.
    Stop,
}

/// One token bucket of the shared outbound budget.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketSpec {
    /// The bucket's key within the install, e.g. `slack:update` or `telegram:chat:-100`.
    pub key: String,
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed back to back.
    pub burst: f64,
}

/// A platform's way of posting into threads. Implementations render neutral [`Reply`]s with the adapters'
/// renderers and never log message text or tokens.
pub trait ThreadSink: Send + Sync + std::fmt::Debug {
    /// The platform.
    fn platform(&self) -> Platform;

    /// The budget for the body of one message: the stream splits output into pages of this size (with room
    /// left for a status line and a footer).
    fn page_budget(&self) -> Budget;

    /// The shared budget buckets an operation spends, each one token.
    fn buckets(&self, target: &Target, op: Op) -> Vec<BucketSpec>;

    /// The buckets that the rate-limit headers of a successful answer to `op` describe (blocked until the
    /// platform's window resets when it reports nothing left). By default every bucket of `op`; a sink whose
    /// headers describe one route only (Discord) leaves out its bot-wide bucket, which the route's window says
    /// nothing about.
    fn reported(&self, target: &Target, op: Op) -> Vec<BucketSpec> {
        self.buckets(target, op)
    }

    /// Posts `reply` as a new message in the thread (`index` 0 is the first reply of the stream).
    fn post<'a>(&'a self, target: &'a Target, index: usize, reply: &'a Reply) -> BoxFuture<'a, PlatformResult<Posted>>;

    /// Looks in the thread for message `index` of the stream, whose post was interrupted (the replica crashed or
    /// the answer was lost, so whether it landed is unknown). `Ok(Some)`: it landed, and this is it; `Ok(None)`: it
    /// is surely not there; `Err`: the platform cannot tell (no lookup, a missing scope, an error). Sinks that can
    /// look posts up mark each post so that it can be found; by default the platform cannot tell.
    fn find<'a>(&'a self, _: &'a Target, _: usize) -> BoxFuture<'a, PlatformResult<Option<Owned>>> {
        Box::pin(async { Err(PlatformError::InvalidRequest("no lookup of interrupted posts".into())) })
    }

    /// Replaces the content of an owned message with `reply`.
    fn edit<'a>(
        &'a self,
        target: &'a Target,
        message: &'a Owned,
        reply: &'a Reply,
    ) -> BoxFuture<'a, PlatformResult<Posted>>;

    /// Whether this sink streams output pages into `target` (then the view keeps the status and the final
    /// footer in a header message of their own, and output pages are appended to streamed messages).
    fn streams(&self, _target: &Target) -> bool {
        false
    }

    /// How often a stream with an open streamed message steps, when more often than the edit cadence (appends
    /// may have a larger budget than edits).
    fn stream_cadence(&self) -> Option<std::time::Duration> {
        None
    }

    /// Starts a streamed message (message `index` of the stream) showing `markdown`.
    fn start_stream<'a>(&'a self, _: &'a Target, _: usize, _: &'a str) -> BoxFuture<'a, PlatformResult<Posted>> {
        Box::pin(async { Err(PlatformError::InvalidRequest("streaming not supported".into())) })
    }

    /// Appends `markdown` to the open stream `message`.
    fn append_stream<'a>(&'a self, _: &'a Target, _: &'a Owned, _: &'a str) -> BoxFuture<'a, PlatformResult<()>> {
        Box::pin(async { Err(PlatformError::InvalidRequest("streaming not supported".into())) })
    }

    /// Ends the stream `message`, appending `markdown` first when given. Ending a stream that is already
    /// closed succeeds.
    fn stop_stream<'a>(&'a self, _: &'a Target, _: &'a Owned, _: Option<&'a str>) -> BoxFuture<'a, PlatformResult<()>> {
        Box::pin(async { Err(PlatformError::InvalidRequest("streaming not supported".into())) })
    }

    /// Whether live output in `target` may be shown as drafts: an ephemeral preview of the message being
    /// written (re-sent with the growing text), posted for real with [`Self::post`] once it is complete.
    fn drafts(&self, _target: &Target) -> bool {
        false
    }

    /// How often a stream whose last message is a live draft steps, when more often than the edit cadence.
    fn draft_cadence(&self) -> Option<std::time::Duration> {
        None
    }

    /// How long a draft stays visible without being sent again (it is refreshed well before).
    fn draft_lifetime(&self) -> std::time::Duration {
        std::time::Duration::from_secs(30)
    }

    /// Shows `reply` as the draft of message `index` of the stream (the same draft is updated in place).
    fn draft<'a>(&'a self, _: &'a Target, _: usize, _: &'a Reply) -> BoxFuture<'a, PlatformResult<()>> {
        Box::pin(async { Err(PlatformError::InvalidRequest("drafts not supported".into())) })
    }

    /// Shows `text` only to the requester (Slack ephemeral, Discord ephemeral follow-up, Telegram callback answer).
    fn private<'a>(&'a self, target: &'a Target, text: &'a str) -> BoxFuture<'a, PlatformResult<()>>;
}

/// The sinks by platform.
#[derive(Clone, Debug, Default)]
pub struct Sinks {
    by_platform: HashMap<Platform, Arc<dyn ThreadSink>>,
}

impl Sinks {
    /// No sinks (streams of every platform stay open until one is added).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the sink of its platform.
    #[must_use]
    pub fn with(mut self, sink: Arc<dyn ThreadSink>) -> Self {
        self.by_platform.insert(sink.platform(), sink);
        self
    }

    /// The sink of `platform`.
    #[must_use]
    pub fn get(&self, platform: Platform) -> Option<&Arc<dyn ThreadSink>> {
        self.by_platform.get(&platform)
    }

    /// The platforms served.
    #[must_use]
    pub fn platforms(&self) -> Vec<&'static str> {
        self.by_platform.keys().map(|p| p.as_str()).collect()
    }
}

/// One message from a neutral reply: the first page when everything fits on it, else the tail view (which
/// always fits one message).
pub(crate) fn one<M>(reply: &Reply, pages: fn(&Reply) -> Vec<M>, tail: fn(&Reply) -> M) -> M {
    let mut all = pages(reply);
    if all.len() == 1 { all.swap_remove(0) } else { tail(reply) }
}
