//! Telegram: `sendMessage` with `reply_parameters` and `message_thread_id`, `editMessageText`, and
//! `answerCallbackQuery` for private notices. In private chats (positive chat ids: a private chat's id is the
//! user's id, groups and channels have negative ids) live output is shown with `sendMessageDraft` until it is
//! posted; drafts have a budget of their own per chat ([`TelegramRates::drafts`]).

use std::time::Duration;

use cynode_adapters::split::Budget;
use cynode_adapters::telegram::{self, ChatTarget, TelegramClient, TelegramMessage};
use cynode_adapters::{Platform, PlatformError, PlatformResult, Reply, ReplyHandle};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use uuid::Uuid;

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

/// Whether `target` is a private chat (the only chats with drafts).
fn private_chat(target: &Target) -> bool {
    target.thread.channel.parse::<i64>().is_ok_and(|id| id > 0)
}

/// A notice as `answerCallbackQuery` shows it: plain text, no entities, so the Markdown code marks of the
/// neutral reply would show as raw backticks.
fn plain(text: &str) -> String {
    text.replace("```", "").replace('`', "")
}

/// The draft id of message `index` of a task's stream: stable across replicas (a replica taking over updates
/// the same draft), different per message, non-zero and within 31 bits.
fn draft_id(task: Uuid, index: usize) -> i64 {
    let digest = Sha256::new().chain_update(task.as_bytes()).chain_update((index as u64).to_le_bytes()).finalize();
    let bits = u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff;
    i64::from(bits.max(1))
}

impl ThreadSink for TelegramSink {
    fn platform(&self) -> Platform {
        Platform::Telegram
    }

    fn page_budget(&self) -> Budget {
        Budget::utf16(telegram::TEXT_LIMIT - 900).unwrap_or_else(|| Budget::utf16(3_000).expect("above the minimum"))
    }

    fn buckets(&self, target: &Target, op: Op) -> Vec<BucketSpec> {
        let chat = &target.thread.channel;
        match op {
            Op::Private => return vec![bucket("telegram:callback".into(), self.rates.global)],
            Op::Draft => return vec![bucket(format!("telegram:draft:{chat}"), self.rates.drafts)],
            Op::Find => return Vec::new(),
            _ => {}
        }
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

    fn drafts(&self, target: &Target) -> bool {
        private_chat(target)
    }

    fn draft_cadence(&self) -> Option<Duration> {
        // Twice per draft token: a step that finds the token not yet due reserves it and sends when it is, so
        // drafts go out at the budget's rate instead of one cadence after the token was due.
        Some(Duration::from_secs_f64(0.5 / self.rates.drafts.per_second.clamp(0.1, 10.0)))
    }

    fn draft<'a>(&'a self, target: &'a Target, index: usize, reply: &'a Reply) -> BoxFuture<'a, PlatformResult<()>> {
        async move {
            let chat = ChatTarget::from_thread(&target.thread)
                .filter(|c| c.chat_id > 0)
                .ok_or_else(|| PlatformError::InvalidRequest("drafts need a private chat".into()))?;
            let client = self.client(target).await?;
            client
                .send_message_draft(chat.chat_id, chat.thread_id, draft_id(target.task_id, index), &render(reply))
                .await
        }
        .boxed()
    }

    fn private<'a>(&'a self, target: &'a Target, text: &'a str) -> BoxFuture<'a, PlatformResult<()>> {
        async move {
            let Some(ReplyHandle::Telegram { callback_query_id }) = &target.handle else {
                return Err(PlatformError::Expired);
            };
            let client = self.client(target).await?;
            client.answer_callback_query(callback_query_id, Some(&plain(text)), false).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::{draft_id, plain};

    #[test]
    fn callback_answers_carry_no_markdown_marks() {
        assert_eq!(plain("Job `abcd1234` approved by ada."), "Job abcd1234 approved by ada.");
        assert_eq!(plain("You are not an approver for job `abcd1234`."), "You are not an approver for job abcd1234.");
    }
    use uuid::Uuid;

    #[test]
    fn draft_ids_are_stable_per_message_and_never_zero() {
        let task = Uuid::now_v7();
        assert_eq!(draft_id(task, 0), draft_id(task, 0));
        assert_ne!(draft_id(task, 0), draft_id(task, 1));
        assert_ne!(draft_id(task, 0), draft_id(Uuid::now_v7(), 0));
        assert!((0..100).all(|i| (1..=i64::from(i32::MAX)).contains(&draft_id(task, i))));
    }
}
