//! Slack: `chat.postMessage` with `thread_ts`, `chat.update`, `chat.postEphemeral`, and (unless turned off)
//! the streaming methods `chat.startStream` / `chat.appendStream` / `chat.stopStream` for output pages. Slack
//! requires the recipient (user and team) of a stream in channels: the requester and the install's team.

use cynode_adapters::slack::{self, SlackClient, SlackMessage, SlackMessageMetadata, StreamStart};
use cynode_adapters::split::Budget;
use cynode_adapters::{Platform, PlatformError, PlatformResult, Reply};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::{Common, bucket};
use crate::stream::SlackRates;
use crate::stream::sink::{BucketSpec, Op, Owned, Posted, StreamOp, Target, ThreadSink, Via, one};

/// Slack's answer to appending to (or stopping) a stream that is already stopped.
const NOT_STREAMING: &str = "message_not_in_streaming_state";

/// Slack threads.
#[derive(Debug, Clone)]
pub struct SlackSink {
    common: Common,
    rates: SlackRates,
    streaming: bool,
}

impl SlackSink {
    /// A sink using `installs` for tokens and base URLs.
    #[must_use]
    pub fn new(http: reqwest::Client, installs: std::sync::Arc<crate::installs::Installs>, rates: SlackRates) -> Self {
        Self { common: Common { http, installs }, rates, streaming: true }
    }

    /// Streams output pages with Slack's streaming methods (`true`, the default) or only posts and edits.
    #[must_use]
    pub fn with_streaming(mut self, on: bool) -> Self {
        self.streaming = on;
        self
    }

    async fn client(&self, target: &Target) -> PlatformResult<SlackClient> {
        let c = self.common.creds(target, SlackClient::DEFAULT_BASE_URL).await?;
        Ok(SlackClient::new(self.common.http.clone(), c.base_url, c.token))
    }
}

fn render(reply: &Reply) -> SlackMessage {
    one(reply, slack::render_pages, slack::render_tail)
}

/// The metadata event type of CyNode's thread posts.
const MARKER_EVENT: &str = "cynode_stream_message";

/// The message metadata marking message `index` of the stream of `target`'s task: a post whose answer was lost is
/// found in the thread by it ([`SlackClient::find_marked`]).
/// Slack's metadata payload holds strings (slack-morphism's type says so), hence `index` as text.
fn marker(target: &Target, index: usize) -> SlackMessageMetadata {
    let payload = [("task".to_owned(), target.task_id.to_string()), ("index".to_owned(), index.to_string())];
    SlackMessageMetadata { event_type: MARKER_EVENT.to_owned(), event_payload: Some(payload.into_iter().collect()) }
}

/// The `thread_ts` to answer in: the thread, else the message that starts it.
fn thread_ts(target: &Target) -> Option<&str> {
    target.thread.thread.as_deref().or(target.thread.reply_to.as_deref())
}

impl ThreadSink for SlackSink {
    fn platform(&self) -> Platform {
        Platform::Slack
    }

    fn page_budget(&self) -> Budget {
        Budget::utf16(slack::TEXT_LIMIT - 900).unwrap_or_else(|| Budget::utf16(3_000).expect("above the minimum"))
    }

    fn buckets(&self, target: &Target, op: Op) -> Vec<BucketSpec> {
        match op {
            Op::Post => vec![bucket(format!("slack:post:{}", target.thread.channel), self.rates.post_message)],
            Op::Edit(_) => vec![bucket("slack:update".into(), self.rates.update)],
            Op::Private => vec![bucket("slack:ephemeral".into(), self.rates.ephemeral)],
            Op::Stream(StreamOp::Start) => vec![bucket("slack:stream_start".into(), self.rates.start_stop_stream)],
            Op::Stream(StreamOp::Append) => vec![bucket("slack:stream_append".into(), self.rates.append_stream)],
            Op::Stream(StreamOp::Stop) => vec![bucket("slack:stream_stop".into(), self.rates.start_stop_stream)],
            Op::Draft => Vec::new(),
            // `conversations.replies` is Tier 3 like `chat.update`, with a bucket of its own.
            Op::Find => vec![bucket("slack:replies".into(), self.rates.update)],
        }
    }

    fn post<'a>(&'a self, target: &'a Target, index: usize, reply: &'a Reply) -> BoxFuture<'a, PlatformResult<Posted>> {
        async move {
            let client = self.client(target).await?;
            let channel = &target.thread.channel;
            let sent = match thread_ts(target) {
                Some(ts) => client.post_marked(channel, ts, &render(reply), &marker(target, index)).await?,
                None => client.post_message(channel, None, &render(reply)).await?,
            };
            let message = Owned { channel: sent.message.channel, id: sent.message.id, via: Via::Channel };
            Ok(Posted { message, rate_limit: sent.rate_limit })
        }
        .boxed()
    }

    fn find<'a>(&'a self, target: &'a Target, index: usize) -> BoxFuture<'a, PlatformResult<Option<Owned>>> {
        async move {
            let thread_ts = thread_ts(target).ok_or_else(|| PlatformError::InvalidRequest("no thread".into()))?;
            let client = self.client(target).await?;
            let channel = &target.thread.channel;
            let found = client.find_marked(channel, thread_ts, &marker(target, index)).await?;
            Ok(found.map(|id| Owned { channel: channel.clone(), id, via: Via::Channel }))
        }
        .boxed()
    }

    fn edit<'a>(&'a self, target: &'a Target, m: &'a Owned, reply: &'a Reply) -> BoxFuture<'a, PlatformResult<Posted>> {
        async move {
            if m.via == Via::Lost {
                return Err(PlatformError::NotFound);
            }
            let client = self.client(target).await?;
            let sent = client.update_message(&m.channel, &m.id, &render(reply)).await?;
            Ok(Posted { message: m.clone(), rate_limit: sent.rate_limit })
        }
        .boxed()
    }

    fn streams(&self, target: &Target) -> bool {
        self.streaming && thread_ts(target).is_some() && !target.requester.is_empty()
    }

    fn stream_cadence(&self) -> Option<std::time::Duration> {
        // One stream may use the workspace's whole append budget; shared streams queue in the budget.
        Some(std::time::Duration::from_secs_f64(1.0 / self.rates.append_stream.per_second.clamp(0.1, 2.0)))
    }

    fn start_stream<'a>(
        &'a self,
        target: &'a Target,
        _: usize,
        markdown: &'a str,
    ) -> BoxFuture<'a, PlatformResult<Posted>> {
        async move {
            let thread_ts = thread_ts(target).ok_or_else(|| PlatformError::InvalidRequest("no thread".into()))?;
            let client = self.client(target).await?;
            let start = StreamStart {
                channel: &target.thread.channel,
                thread_ts,
                recipient_user_id: Some(&target.requester),
                recipient_team_id: Some(&target.thread.install),
                markdown_text: Some(markdown).filter(|m| !m.is_empty()),
            };
            let sent = client.start_stream(&start).await?;
            let message = Owned { channel: sent.message.channel, id: sent.message.id, via: Via::Stream };
            Ok(Posted { message, rate_limit: sent.rate_limit })
        }
        .boxed()
    }

    fn append_stream<'a>(
        &'a self,
        target: &'a Target,
        m: &'a Owned,
        markdown: &'a str,
    ) -> BoxFuture<'a, PlatformResult<()>> {
        async move { self.client(target).await?.append_stream(&m.channel, &m.id, markdown).await }.boxed()
    }

    fn stop_stream<'a>(
        &'a self,
        target: &'a Target,
        m: &'a Owned,
        markdown: Option<&'a str>,
    ) -> BoxFuture<'a, PlatformResult<()>> {
        async move {
            let client = self.client(target).await?;
            match client.stop_stream(&m.channel, &m.id, markdown.filter(|t| !t.is_empty())).await {
                Err(PlatformError::InvalidRequest(code)) if code == NOT_STREAMING => Ok(()),
                other => other,
            }
        }
        .boxed()
    }

    fn private<'a>(&'a self, target: &'a Target, text: &'a str) -> BoxFuture<'a, PlatformResult<()>> {
        async move {
            let client = self.client(target).await?;
            let message = SlackMessage::plain(text);
            client.post_ephemeral(&target.thread.channel, &target.requester, thread_ts(target), &message).await
        }
        .boxed()
    }
}
