//! Discord: while the interaction token lives, everything goes through the interaction's webhook — the deferred
//! response is the first message (`PATCH …/messages/@original`), later messages are follow-ups and are edited as
//! follow-ups (`PATCH …/messages/{id}`). Interaction endpoints are not bound to the bot's global rate limit, so
//! a stream started by `/cynode` spends only its own interaction's budget. Past the token's 15 minutes, posts and
//! edits use the bot token on the channel (per-channel routes plus the bot-wide budget). Private notices are
//! ephemeral follow-ups.

use std::time::Duration;

use chrono::Utc;
use cynode_adapters::discord::{self, DiscordClient, DiscordMessage, InteractionToken};
use cynode_adapters::split::Budget;
use cynode_adapters::{Platform, PlatformError, PlatformResult, Reply, Sent};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::{Common, bucket};
use crate::stream::DiscordRates;
use crate::stream::sink::{BucketSpec, Op, Owned, Posted, Target, ThreadSink, Via, one};

/// How long an interaction token is used: under Discord's 15 minutes, with a margin for clock skew.
const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);

/// The bot-wide bucket's key.
const GLOBAL: &str = "discord:global";

/// Discord channels and threads.
#[derive(Debug, Clone)]
pub struct DiscordSink {
    common: Common,
    rates: DiscordRates,
}

impl DiscordSink {
    /// A sink using `installs` for bot tokens and base URLs.
    #[must_use]
    pub fn new(
        http: reqwest::Client,
        installs: std::sync::Arc<crate::installs::Installs>,
        rates: DiscordRates,
    ) -> Self {
        Self { common: Common { http, installs }, rates }
    }

    async fn client(&self, target: &Target) -> PlatformResult<DiscordClient> {
        let c = self.common.creds(target, DiscordClient::DEFAULT_BASE_URL).await?;
        Ok(DiscordClient::new(self.common.http.clone(), c.base_url, c.token))
    }
}

/// The interaction token, while it is young enough to use.
fn live_token(target: &Target) -> Option<InteractionToken<'_>> {
    let age = Utc::now().signed_duration_since(target.received_at?).to_std().unwrap_or_default();
    (age < TOKEN_LIFETIME).then_some(())?;
    InteractionToken::from_handle(target.handle.as_ref()?)
}

/// The channel messages go to: the thread channel when the interaction was in a thread.
fn channel(target: &Target) -> &str {
    target.thread.thread.as_deref().unwrap_or(&target.thread.channel)
}

fn render(reply: &Reply) -> DiscordMessage {
    one(reply, discord::render_pages, discord::render_tail)
}

fn posted(sent: Sent, via: Via, fallback_channel: &str) -> Posted {
    let channel = if sent.message.channel.is_empty() { fallback_channel.to_owned() } else { sent.message.channel };
    Posted { message: Owned { channel, id: sent.message.id, via }, rate_limit: sent.rate_limit }
}

impl ThreadSink for DiscordSink {
    fn platform(&self) -> Platform {
        Platform::Discord
    }

    fn page_budget(&self) -> Budget {
        Budget::utf16(discord::CONTENT_LIMIT - 700).unwrap_or_else(|| Budget::utf16(1_000).expect("above the minimum"))
    }

    fn buckets(&self, target: &Target, op: Op) -> Vec<BucketSpec> {
        let global = bucket(GLOBAL.into(), self.rates.global);
        let webhook = bucket(format!("discord:webhook:{}", target.task_id), self.rates.per_route);
        let route = |name: &str| bucket(format!("discord:{name}:{}", channel(target)), self.rates.per_route);
        let interaction = live_token(target).is_some();
        match op {
            Op::Post if interaction => vec![webhook],
            Op::Post => vec![route("create"), global],
            Op::Edit(_) if interaction => vec![webhook],
            Op::Edit(_) => vec![route("edit"), global],
            Op::Private => vec![webhook],
            Op::Stream(_) | Op::Draft | Op::Find => Vec::new(),
        }
    }

    fn reported(&self, target: &Target, op: Op) -> Vec<BucketSpec> {
        // `X-RateLimit-*` on a success describe the route's window; the bot-wide limit only shows in a 429.
        let mut buckets = self.buckets(target, op);
        buckets.retain(|b| b.key != GLOBAL);
        buckets
    }

    fn post<'a>(&'a self, target: &'a Target, index: usize, reply: &'a Reply) -> BoxFuture<'a, PlatformResult<Posted>> {
        async move {
            let client = self.client(target).await?;
            let message = render(reply);
            if let Some(token) = live_token(target) {
                if index == 0 {
                    let sent = client.edit_original(token, &message).await?;
                    return Ok(posted(sent, Via::Original, channel(target)));
                }
                let sent = client.follow_up(token, &message).await?;
                return Ok(posted(sent, Via::Channel, channel(target)));
            }
            let sent = client.create_message(channel(target), &message).await?;
            Ok(posted(sent, Via::Channel, channel(target)))
        }
        .boxed()
    }

    fn edit<'a>(&'a self, target: &'a Target, m: &'a Owned, reply: &'a Reply) -> BoxFuture<'a, PlatformResult<Posted>> {
        async move {
            let client = self.client(target).await?;
            let message = render(reply);
            // While the token lives, every message of the stream was sent through the interaction's webhook (the
            // original response or a follow-up), so it is edited there too.
            let through_webhook = match (m.via, live_token(target)) {
                (Via::Lost, _) => return Err(PlatformError::NotFound),
                (Via::Original, Some(token)) => Some(client.edit_original(token, &message).await),
                (_, Some(token)) => Some(client.edit_follow_up(token, &m.id, &message).await),
                (_, None) => None,
            };
            let sent = match through_webhook {
                Some(Err(PlatformError::Expired)) | None => client.edit_message(&m.channel, &m.id, &message).await?,
                Some(other) => other?,
            };
            Ok(Posted { message: m.clone(), rate_limit: sent.rate_limit })
        }
        .boxed()
    }

    fn private<'a>(&'a self, target: &'a Target, text: &'a str) -> BoxFuture<'a, PlatformResult<()>> {
        async move {
            let Some(token) = live_token(target) else { return Err(PlatformError::Expired) };
            let client = self.client(target).await?;
            let text = mention(text, &target.requester);
            client.follow_up(token, &DiscordMessage::plain(&text).ephemeral()).await.map(drop)
        }
        .boxed()
    }
}

/// A private notice to `user` (a snowflake) with each bare mention of that user as a Discord mention (`<@id>`,
/// shown as the name), as in "Job `…` approved by 1000000000000000001.".
fn mention(text: &str, user: &str) -> String {
    if user.is_empty() || !user.bytes().all(|b| b.is_ascii_digit()) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(at) = rest.find(user) {
        let before = &rest[..at];
        let after = &rest[at + user.len()..];
        let bounded = !before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '@')
            && !after.starts_with(|c: char| c.is_ascii_alphanumeric());
        out.push_str(before);
        if bounded {
            out.push_str(&format!("<@{user}>"));
        } else {
            out.push_str(user);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod mention_tests {
    use super::mention;

    #[test]
    fn the_approver_is_mentioned_not_shown_as_a_raw_id() {
        let id = "1000000000000000001";
        assert_eq!(
            mention(&format!("Job `ab12cd34` approved by {id}."), id),
            format!("Job `ab12cd34` approved by <@{id}>.")
        );
        assert_eq!(mention(&format!("already <@{id}> and x{id}"), id), format!("already <@{id}> and x{id}"));
        assert_eq!(mention("by U123.", "U123"), "by U123.", "only Discord snowflakes");
    }
}
