//! Streaming back into threads: every chat task with a conversation has a durable stream record
//! (`stream_records`, created by a trigger in the task's own transaction) saying which messages CyNode owns
//! there and what each last showed. A worker on every gateway replica drives open streams:
//!
//! - **Claims.** A replica claims streams with one `UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)` for a
//!   short lease (`claim_ttl`) under a fresh `claim_token`; every later write names the token, so after a
//!   lapsed lease (a crashed or partitioned replica) only the new holder can write. Any replica continues a
//!   stream where the record says it stands, in the same messages.
//!   A replica claims at most `claim_batch` streams per look, and looks again after a quarter of `poll` when the
//!   batch was full, so a burst spreads over the replicas (their looks interleave) instead of going to whichever
//!   looked first.
//! - **Rendering.** Each step renders the task's whole state (reply, approval card, job status, output) into
//!   one neutral [`Reply`](cynode_adapters::Reply) per message: output is split code-fence-aware into pages of
//!   the platform's size (full pages never change, so only the last message is edited and a new one is posted
//!   when it fills up); past `max_messages` the last message shows the output's tail, and the final footer says
//!   how to fetch everything (`cynode logs <job>` or `GET /v1/jobs/{id}/output`). Only messages whose fingerprint
//!   changed are sent; edits are never queued, the next step simply renders the latest state (merged, never
//!   dropped).
//! - **Posting at most once.** Record-before-send: before posting message `n` the record stores
//!   `pending_post = n`; the id is stored after the post. A replica that finds `pending_post` set without the id
//!   does not post it blindly: where the sink can look the post up (Slack: every thread post carries a metadata
//!   marker naming its task and index, found with `conversations.replies`), the stream goes on in the message
//!   found, or posts it when it surely never arrived; where the platform cannot tell (Discord, Telegram, a stream
//!   start), the message is marked lost — never repeated — and posted anew once it must show something else, so
//!   the thread still ends with the final status.
//! - **Drafts.** Where a sink offers drafts (Telegram private chats), the message being written is shown as an
//!   ephemeral draft re-sent with the growing text (and again before it expires when output pauses) and posted
//!   for real, record-before-send as above, once its page is full or the job ended. Drafts are not recorded:
//!   re-sending one is harmless (the same draft is updated), so a replica taking over simply drafts again.
//!   Drafts carry no buttons, so a message with buttons (an agent turn's Stop) is posted, never drafted.
//! - **Parking.** A stream whose job waits for approval, once its card shows, lets its claim go with
//!   `parked_until` set instead of being polled: no replica claims it again until a wake-up (database triggers on
//!   the job leaving `awaiting_approval`, the approval's state, a vote bump `wake_seq` and clear `parked_until`)
//!   or `park_max` passes. A stream parks only if `wake_seq` is what the step read, so a decision that lands while
//!   the step runs is never slept through. Claims take streams that never posted first, so a new request's first
//!   answer does not wait behind lapsed claims of streams under way.
//! - **One budget per install.** Every call first takes a token from shared buckets in `outbound_budget` (per
//!   method, channel, chat and install, see [`StreamRates`]); a platform 429 blocks the bucket for exactly its
//!   `Retry-After` on every replica. N replicas therefore never multiply the rate.

mod body;
mod budget;
mod platforms;
mod sink;
mod store;
mod text;
mod view;
mod worker;

use std::time::Duration;

pub use budget::{OutboundBudget, Take};
pub use platforms::{DiscordSink, SlackSink, TelegramSink};
pub use sink::{BucketSpec, Op, Owned, Posted, Sinks, StreamOp, Target, ThreadSink, Via};
pub use worker::{StreamWorker, spawn_stream_worker};

/// A sustained rate with bursts, for one outbound budget bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, sustained.
    pub per_second: f64,
    /// Requests allowed back to back.
    pub burst: f64,
}

impl Rate {
    /// `n` requests a minute, `burst` at once.
    #[must_use]
    pub fn per_minute(n: f64, burst: f64) -> Self {
        Self { per_second: n / 60.0, burst }
    }
}

/// Slack budgets (per workspace and app). Defaults stay under Slack's published tiers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlackRates {
    /// `chat.postMessage` per channel (Slack: about one a second).
    pub post_message: Rate,
    /// `chat.update` for the whole workspace (Tier 3: 50+ a minute).
    pub update: Rate,
    /// `chat.postEphemeral` (Tier 4: 100+ a minute).
    pub ephemeral: Rate,
    /// `chat.startStream`, and separately `chat.stopStream` (Tier 2: 20+ a minute each).
    pub start_stop_stream: Rate,
    /// `chat.appendStream` (Tier 4: 100+ a minute).
    pub append_stream: Rate,
}

impl Default for SlackRates {
    fn default() -> Self {
        Self {
            post_message: Rate { per_second: 1.0, burst: 1.0 },
            update: Rate::per_minute(48.0, 3.0),
            ephemeral: Rate::per_minute(90.0, 5.0),
            start_stop_stream: Rate::per_minute(18.0, 2.0),
            append_stream: Rate::per_minute(90.0, 5.0),
        }
    }
}

/// Discord budgets. Discord's windows are fixed (5 per 5 s per route, 50 per second per bot) and every answer
/// says what is left of its window (`X-RateLimit-Remaining`, `X-RateLimit-Reset-After`): when nothing is left, the
/// bucket is blocked until the window resets (see the stream worker), so a per-route pace of one request a second
/// never runs into a window's end. The bot-wide bucket keeps 10/s of its 50 as a margin, and a burst of 5 so no
/// one-second window sees more than 45: a reserved token is spent at the stream's next step, so sends bunch up
/// unevenly (45/s with a burst of 3 met 429s in the benchmark, and so did 40/s with a burst of 10 once 50 streams
/// wanted more than 40 a second). Interaction webhooks are not bound to the bot-wide limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiscordRates {
    /// One route of one channel (create or edit), or one interaction's webhook.
    pub per_route: Rate,
    /// Every bot-token route together.
    pub global: Rate,
}

impl Default for DiscordRates {
    fn default() -> Self {
        Self { per_route: Rate { per_second: 1.0, burst: 1.0 }, global: Rate { per_second: 40.0, burst: 5.0 } }
    }
}

/// Telegram budgets (per bot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TelegramRates {
    /// Messages and edits in one chat (about one a second).
    pub per_chat: Rate,
    /// Messages and edits in one group (20 a minute).
    pub per_group: Rate,
    /// Everything the bot sends (about 30 a second).
    pub global: Rate,
    /// Drafts (`sendMessageDraft`) in one private chat. The Bot API documents no limit for drafts; this budget
    /// assumes they count neither as messages of the chat nor towards the bot-wide limit (they are ephemeral
    /// previews, not messages) and stays at the documented rate of messages in one chat (a burst of 2 keeps that
    /// rate when a step is late). A 429 on a draft is honoured like any other.
    pub drafts: Rate,
}

impl Default for TelegramRates {
    fn default() -> Self {
        Self {
            per_chat: Rate { per_second: 1.0, burst: 1.0 },
            per_group: Rate::per_minute(19.0, 3.0),
            global: Rate { per_second: 25.0, burst: 5.0 },
            drafts: Rate { per_second: 1.0, burst: 2.0 },
        }
    }
}

/// Every platform's budgets.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamRates {
    /// Slack.
    pub slack: SlackRates,
    /// Discord.
    pub discord: DiscordRates,
    /// Telegram.
    pub telegram: TelegramRates,
}

/// Stream worker tuning.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// How often to look for streams to claim (new requests, streams of crashed replicas).
    pub poll: Duration,
    /// How long a claim holds a stream without being renewed.
    pub claim_ttl: Duration,
    /// The shortest time between two updates of one stream (edit cadence per message).
    pub cadence: Duration,
    /// Streams driven at once by one replica.
    pub capacity: usize,
    /// Streams one replica claims per poll at most, so a burst of new requests spreads over the replicas (each
    /// takes a few per poll) instead of going to whichever looks first.
    pub claim_batch: usize,
    /// The most messages one stream posts; beyond, the last one shows the output's tail.
    pub max_messages: usize,
    /// Streams of tasks older than this are closed without posting (after a long outage).
    pub max_age: Duration,
    /// Show live output as drafts where the platform offers them (Telegram private chats, `sendMessageDraft`):
    /// the message being written is previewed and posted once complete, instead of posted early and edited.
    pub drafts: bool,
    /// How long looking up an interrupted post (Slack's `conversations.replies`) may keep failing with transient
    /// errors before the post is settled as lost: never repeated, and posted anew once it must show something
    /// else, so the thread still ends with the final status instead of the stream waiting for the lookup forever.
    pub lookup_patience: Duration,
    /// A stream that only waits for a person (an approval card) is parked — nobody polls it — until a wake-up
    /// (the approval decided or expired, a vote, the job moving on), and at most this long.
    pub park_max: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(200),
            claim_ttl: Duration::from_secs(5),
            cadence: Duration::from_millis(1_000),
            capacity: 512,
            claim_batch: 4,
            max_messages: 4,
            max_age: Duration::from_secs(24 * 3600),
            drafts: true,
            lookup_patience: Duration::from_secs(30),
            park_max: Duration::from_secs(60),
        }
    }
}
