//! A Telegram Bot API client. The bot token is part of every URL (`/bot<token>/<method>`), so
//! transport errors are stripped of their URL and calls are logged by method name only.

use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::TelegramMessage;
use super::render::CALLBACK_ANSWER_LIMIT;
use crate::outbound::http::{self, Response};
use crate::outbound::{MessageRef, PlatformError, PlatformResult, Sent};
use crate::{Platform, ThreadRef};

/// A Telegram client for one bot.
#[derive(Clone, Debug)]
pub struct TelegramClient {
    http: reqwest::Client,
    base_url: Url,
    token: SecretString,
}

/// Where a message goes: a chat, optionally a forum topic, optionally as a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatTarget {
    /// The chat id (`@username` chats are not used by CyNode).
    pub chat_id: i64,
    /// The forum topic (`message_thread_id`).
    pub thread_id: Option<i64>,
    /// The message to reply to (`reply_parameters.message_id`); the reply is sent even if that
    /// message is gone.
    pub reply_to: Option<i64>,
}

impl ChatTarget {
    /// The target for answering in `thread` (a Telegram [`ThreadRef`] with numeric ids).
    #[must_use]
    pub fn from_thread(thread: &ThreadRef) -> Option<Self> {
        if thread.platform != Platform::Telegram {
            return None;
        }
        let number = |s: &Option<String>| s.as_deref().and_then(|s| s.parse().ok());
        Some(Self {
            chat_id: thread.channel.parse().ok()?,
            thread_id: number(&thread.thread),
            reply_to: number(&thread.reply_to),
        })
    }
}

impl TelegramClient {
    /// The Bot API base URL.
    pub const DEFAULT_BASE_URL: &str = "https://api.telegram.org/";

    /// A client calling `base_url` (e.g. [`Self::DEFAULT_BASE_URL`], or a fake's URL in tests)
    /// as the bot with `token`.
    #[must_use]
    pub fn new(http: reqwest::Client, base_url: Url, token: SecretString) -> Self {
        Self { http, base_url: http::with_trailing_slash(base_url), token }
    }

    /// `sendMessage` with `message_thread_id` and `reply_parameters` from `target`.
    ///
    /// # Errors
    ///
    /// [`PlatformError`]; `RateLimited` with the body's `parameters.retry_after`.
    pub async fn send_message(&self, target: &ChatTarget, message: &TelegramMessage) -> PlatformResult<Sent> {
        let mut body = message_body(message);
        body["chat_id"] = json!(target.chat_id);
        if let Some(thread) = target.thread_id {
            body["message_thread_id"] = json!(thread);
        }
        if let Some(reply_to) = target.reply_to {
            body["reply_parameters"] = json!({"message_id": reply_to, "allow_sending_without_reply": true});
        }
        let result = self.call("sendMessage", &body).await?;
        sent(&result)
    }

    /// `editMessageText`. A message without a keyboard removes the previous one.
    ///
    /// # Errors
    ///
    /// [`PlatformError`]; `NotModified` when nothing changes (treat as success).
    pub async fn edit_message_text(
        &self,
        chat_id: i64,
        message_id: i64,
        message: &TelegramMessage,
    ) -> PlatformResult<Sent> {
        let mut body = message_body(message);
        body["chat_id"] = json!(chat_id);
        body["message_id"] = json!(message_id);
        let result = self.call("editMessageText", &body).await?;
        sent(&result)
    }

    /// `sendMessageDraft`: an ephemeral 30-second preview in a private chat, updated in place
    /// for the same non-zero `draft_id`. The final text must still be sent with
    /// [`Self::send_message`].
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn send_message_draft(
        &self,
        chat_id: i64,
        thread_id: Option<i64>,
        draft_id: i64,
        message: &TelegramMessage,
    ) -> PlatformResult<()> {
        let mut body = json!({"chat_id": chat_id, "draft_id": draft_id, "text": message.text});
        if !message.entities.is_empty() {
            body["entities"] = json!(message.entities);
        }
        if let Some(thread) = thread_id {
            body["message_thread_id"] = json!(thread);
        }
        self.call("sendMessageDraft", &body).await.map(drop)
    }

    /// `answerCallbackQuery`, with an optional notice (cut to 200 characters) shown as a toast
    /// or, with `alert`, a dialog.
    ///
    /// # Errors
    ///
    /// [`PlatformError`]; `Expired` for a query that is too old or already answered.
    pub async fn answer_callback_query(
        &self,
        callback_query_id: &str,
        text: Option<&str>,
        alert: bool,
    ) -> PlatformResult<()> {
        let mut body = json!({"callback_query_id": callback_query_id});
        if let Some(text) = text {
            body["text"] = json!(crate::reply::cut(text, CALLBACK_ANSWER_LIMIT));
            body["show_alert"] = json!(alert);
        }
        self.call("answerCallbackQuery", &body).await.map(drop)
    }

    async fn call(&self, method: &'static str, body: &Value) -> PlatformResult<Value> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| PlatformError::invalid("bad base URL"))?
            .pop_if_empty()
            .push(&format!("bot{}", self.token.expose_secret()))
            .push(method);
        let response = http::send_json(self.http.post(url), body).await?;
        tracing::debug!(telegram.method = method, http.status = response.status.as_u16(), "telegram call");
        match response.json["ok"].as_bool() {
            Some(true) => Ok(response.json["result"].clone()),
            _ => Err(error(&response)),
        }
    }
}

fn message_body(message: &TelegramMessage) -> Value {
    let mut body = serde_json::to_value(message).unwrap_or_else(|_| json!({"text": message.text}));
    body["link_preview_options"] = json!({"is_disabled": true});
    body
}

fn sent(result: &Value) -> PlatformResult<Sent> {
    let id = result["message_id"].as_i64();
    let chat = result.pointer("/chat/id").and_then(Value::as_i64);
    match (chat, id) {
        (Some(chat), Some(id)) => {
            Ok(Sent { message: MessageRef { channel: chat.to_string(), id: id.to_string() }, rate_limit: None })
        }
        _ => Err(PlatformError::transient("response without message")),
    }
}

/// Maps `{"ok":false,"error_code":…,"description":…,"parameters":{"retry_after":N}}`.
fn error(response: &Response) -> PlatformError {
    let body = &response.json;
    let description = body["description"].as_str().unwrap_or_default();
    let code = body["error_code"].as_u64().unwrap_or(u64::from(response.status.as_u16()));
    let lower = description.to_ascii_lowercase();
    match code {
        429 => PlatformError::RateLimited {
            retry_after: Duration::from_secs(
                body.pointer("/parameters/retry_after").and_then(Value::as_u64).unwrap_or(1),
            ),
            global: false,
        },
        401 | 404 => PlatformError::Auth,
        400 if lower.contains("message is not modified") => PlatformError::NotModified,
        400 if lower.contains("too long") || lower.contains("too_long") => PlatformError::TooLong,
        400 if lower.contains("message to edit not found") || lower.contains("chat not found") => {
            PlatformError::NotFound
        }
        400 if lower.contains("query is too old") || lower.contains("query id is invalid") => PlatformError::Expired,
        c if c >= 500 => PlatformError::transient(&format!("HTTP {c}")),
        _ if description.is_empty() => http::status_error(response.status),
        _ => PlatformError::invalid(description),
    }
}

#[cfg(test)]
mod tests;
