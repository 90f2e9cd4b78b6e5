//! Telegram: `sendMessage` with `reply_parameters` and `message_thread_id`, `editMessageText`, and
//! `answerCallbackQuery` for private notices.

use cynode_adapters::split::Budget;
use cynode_adapters::telegram::{self, ChatTarget, TelegramClient, TelegramMessage};
use cynode_adapters::{Platform, PlatformError, PlatformResult, Reply, ReplyHandle};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use super::{Common, bucket};
use crate::stream::TelegramRates;
use crate::stream::sink::{BucketSpec, Op, Owned, Posted, Target, ThreadSink, Via, one};

/// Telegram chats and forum topics.
#[derive(Debug, Clone)]
pub struct TelegramSink {
    common: Common,
    rates: TelegramRates,
}

impl TelegramSink {
    /// A sink using `installs` for bot tokens and base URLs.
    #[must_use]
    pub fn new(
        http: reqwest::Client,
        installs: std::sync::Arc<crate::installs::Installs>,
        rates: TelegramRates,
    ) -> Self {
        Self { common: Common { http, installs }, rates }
    }

    async fn client(&self, target: &Target) -> PlatformResult<TelegramClient> {
        let c = self.common.creds(target, TelegramClient::DEFAULT_BASE_URL).await?;
        Ok(TelegramClient::new(self.common.http.clone(), c.base_url, c.token))
    }
}

fn render(reply: &Reply) -> TelegramMessage {
    one(reply, telegram::render_pages, telegram::render_tail)
}

fn number(text: &str) -> PlatformResult<i64> {
    text.parse().map_err(|_| PlatformError::InvalidRequest("non-numeric telegram id".into()))
}

impl ThreadSink for TelegramSink {
    fn platform(&self) -> Platform {
        Platform::Telegram
    }

    fn page_budget(&self) -> Budget {
        Budget::utf16(telegram::TEXT_LIMIT - 900).unwrap_or_else(|| Budget::utf16(3_000).expect("above the minimum"))
    }

    fn buckets(&self, target: &Target, op: Op) -> Vec<BucketSpec> {
        if op == Op::Private {
            return vec![bucket("telegram:callback".into(), self.rates.global)];
        }
        let chat = &target.thread.channel;
        let mut buckets = vec![
            bucket(format!("telegram:chat:{chat}"), self.rates.per_chat),
            bucket("telegram:global".into(), self.rates.global),
        ];
        if chat.starts_with('-') {
            buckets.push(bucket(format!("telegram:group:{chat}"), self.rates.per_group));
        }
        buckets
    }

    fn post<'a>(&'a self, target: &'a Target, index: usize, reply: &'a Reply) -> BoxFuture<'a, PlatformResult<Posted>> {
        async move {
            let mut chat = ChatTarget::from_thread(&target.thread)
                .ok_or_else(|| PlatformError::InvalidRequest("not a telegram chat".into()))?;
            if index > 0 {
                chat.reply_to = None;
            }
            let client = self.client(target).await?;
            let sent = client.send_message(&chat, &render(reply)).await?;
            let message = Owned { channel: sent.message.channel, id: sent.message.id, via: Via::Channel };
            Ok(Posted { message, rate_limit: None })
        }
        .boxed()
    }

    fn edit<'a>(&'a self, target: &'a Target, m: &'a Owned, reply: &'a Reply) -> BoxFuture<'a, PlatformResult<Posted>> {
        async move {
            if m.via == Via::Lost {
                return Err(PlatformError::NotFound);
            }
            let client = self.client(target).await?;
            match client.edit_message_text(number(&m.channel)?, number(&m.id)?, &render(reply)).await {
                Ok(_) | Err(PlatformError::NotModified) => Ok(Posted { message: m.clone(), rate_limit: None }),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    fn private<'a>(&'a self, target: &'a Target, text: &'a str) -> BoxFuture<'a, PlatformResult<()>> {
        async move {
            let Some(ReplyHandle::Telegram { callback_query_id }) = &target.handle else {
                return Err(PlatformError::Expired);
            };
            let client = self.client(target).await?;
            client.answer_callback_query(callback_query_id, Some(text), false).await
        }
        .boxed()
    }
}
