//! Slack: `chat.postMessage` with `thread_ts`, `chat.update`, `chat.postEphemeral`.

use cynode_adapters::slack::{self, SlackClient, SlackMessage};
use cynode_adapters::split::Budget;
use cynode_adapters::{Platform, PlatformError, PlatformResult, Reply};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::{Common, bucket};
use crate::stream::SlackRates;
use crate::stream::sink::{BucketSpec, Op, Owned, Posted, Target, ThreadSink, Via, one};

/// Slack threads.
#[derive(Debug, Clone)]
pub struct SlackSink {
    common: Common,
    rates: SlackRates,
}

impl SlackSink {
    /// A sink using `installs` for tokens and base URLs.
    #[must_use]
    pub fn new(http: reqwest::Client, installs: std::sync::Arc<crate::installs::Installs>, rates: SlackRates) -> Self {
        Self { common: Common { http, installs }, rates }
    }

    async fn client(&self, target: &Target) -> PlatformResult<SlackClient> {
        let c = self.common.creds(target, SlackClient::DEFAULT_BASE_URL).await?;
        Ok(SlackClient::new(self.common.http.clone(), c.base_url, c.token))
    }
}

fn render(reply: &Reply) -> SlackMessage {
    one(reply, slack::render_pages, slack::render_tail)
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
        }
    }

    fn post<'a>(&'a self, target: &'a Target, _: usize, reply: &'a Reply) -> BoxFuture<'a, PlatformResult<Posted>> {
        async move {
            let client = self.client(target).await?;
            let sent = client.post_message(&target.thread.channel, thread_ts(target), &render(reply)).await?;
            let message = Owned { channel: sent.message.channel, id: sent.message.id, via: Via::Channel };
            Ok(Posted { message, rate_limit: sent.rate_limit })
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

    fn private<'a>(&'a self, target: &'a Target, text: &'a str) -> BoxFuture<'a, PlatformResult<()>> {
        async move {
            let client = self.client(target).await?;
            let message = SlackMessage::plain(text);
            client.post_ephemeral(&target.thread.channel, &target.requester, thread_ts(target), &message).await
        }
        .boxed()
    }
}
