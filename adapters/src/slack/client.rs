//! A Slack Web API client for the methods CyNode uses to answer in threads.

use std::time::Duration;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::SlackMessage;
use crate::outbound::http::{self, Response};
use crate::outbound::{MessageRef, PlatformError, PlatformResult, Sent};

/// The most pages of `conversations.replies` [`SlackClient::find_marked`] reads.
pub const FIND_PAGES: usize = 10;

/// The wait assumed when Slack reports a rate limit without `Retry-After`.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);

/// A Slack Web API client for one workspace installation (one bot token).
#[derive(Clone, Debug)]
pub struct SlackClient {
    http: reqwest::Client,
    base_url: Url,
    token: SecretString,
    response_url_prefix: String,
}

/// Where a stream starts (`chat.startStream`). In channels Slack requires the recipient.
#[derive(Clone, Copy, Debug)]
pub struct StreamStart<'a> {
    /// The channel id.
    pub channel: &'a str,
    /// The thread to stream into.
    pub thread_ts: &'a str,
    /// The user the stream answers (required outside DMs).
    pub recipient_user_id: Option<&'a str>,
    /// That user's workspace (required outside DMs).
    pub recipient_team_id: Option<&'a str>,
    /// The first Markdown text, if any.
    pub markdown_text: Option<&'a str>,
}

/// How a `response_url` answer is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseMode {
    /// Only the user who acted sees it.
    Ephemeral,
    /// Everyone in the channel sees a new message.
    InChannel,
    /// The message that carried the clicked button is replaced.
    ReplaceOriginal,
}

impl SlackClient {
    /// Slack's Web API base URL.
    pub const DEFAULT_BASE_URL: &str = "https://slack.com/api/";
    /// The prefix every `response_url` must have unless configured otherwise.
    pub const DEFAULT_RESPONSE_URL_PREFIX: &str = "https://hooks.slack.com/";

    /// A client calling `base_url` (e.g. [`Self::DEFAULT_BASE_URL`], or a fake's URL in tests)
    /// with bot token `token` (`xoxb-…`).
    #[must_use]
    pub fn new(http: reqwest::Client, base_url: Url, token: SecretString) -> Self {
        Self {
            http,
            base_url: http::with_trailing_slash(base_url),
            token,
            response_url_prefix: Self::DEFAULT_RESPONSE_URL_PREFIX.to_owned(),
        }
    }

    /// Accepts `response_url`s starting with `prefix` instead (tests use a fake's URL). Any
    /// other `response_url` is refused, so a forged one cannot make CyNode post elsewhere.
    #[must_use]
    pub fn with_response_url_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.response_url_prefix = prefix.into();
        self
    }

    /// `chat.postMessage`, in the thread `thread_ts` when given.
    ///
    /// # Errors
    ///
    /// [`PlatformError`], e.g. `RateLimited` with Slack's `Retry-After`.
    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: &SlackMessage,
    ) -> PlatformResult<Sent> {
        let mut body = message_body(message);
        body["channel"] = json!(channel);
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
        }
        body["unfurl_links"] = json!(false);
        body["unfurl_media"] = json!(false);
        let reply = self.call("chat.postMessage", &body).await?;
        sent(&reply, channel)
    }

    /// `chat.postMessage` carrying `metadata` (Slack's message metadata, `{"event_type": …, "event_payload": {…}}`),
    /// so the message can be found in its thread again with [`Self::find_marked`] when the answer to the post was
    /// lost (a crash, a timeout).
    ///
    /// # Errors
    ///
    /// [`PlatformError`], as [`Self::post_message`].
    pub async fn post_marked(
        &self,
        channel: &str,
        thread_ts: &str,
        message: &SlackMessage,
        metadata: &Value,
    ) -> PlatformResult<Sent> {
        let mut body = message_body(message);
        body["channel"] = json!(channel);
        body["thread_ts"] = json!(thread_ts);
        body["metadata"] = metadata.clone();
        body["unfurl_links"] = json!(false);
        body["unfurl_media"] = json!(false);
        let reply = self.call("chat.postMessage", &body).await?;
        sent(&reply, channel)
    }

    /// The `ts` of the message in the thread `thread_ts` whose metadata equals `metadata`, if there is one
    /// (`conversations.replies` with `include_all_metadata`, up to [`FIND_PAGES`] pages of 200 messages). Needs
    /// the `*:history` scope of the conversation's kind.
    ///
    /// # Errors
    ///
    /// [`PlatformError`]: `Auth` without the scope, `NotFound` for an unknown thread, `RateLimited`.
    pub async fn find_marked(
        &self,
        channel: &str,
        thread_ts: &str,
        metadata: &Value,
    ) -> PlatformResult<Option<String>> {
        let mut cursor = String::new();
        for _ in 0..FIND_PAGES {
            let mut url =
                self.base_url.join("conversations.replies").map_err(|_| PlatformError::invalid("bad base URL"))?;
            url.query_pairs_mut()
                .append_pair("channel", channel)
                .append_pair("ts", thread_ts)
                .append_pair("include_all_metadata", "true")
                .append_pair("limit", "200");
            if !cursor.is_empty() {
                url.query_pairs_mut().append_pair("cursor", &cursor);
            }
            let request = self.http.get(url).bearer_auth(self.token.expose_secret());
            let response = http::send(request).await?;
            tracing::debug!(
                slack.method = "conversations.replies",
                http.status = response.status.as_u16(),
                "slack call"
            );
            if !(response.status.is_success() && response.json["ok"] == json!(true)) {
                return Err(error(&response));
            }
            let messages = response.json["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
            if let Some(found) = messages.iter().find(|m| m.get("metadata") == Some(metadata)) {
                return Ok(found["ts"].as_str().map(str::to_owned));
            }
            cursor = response
                .json
                .pointer("/response_metadata/next_cursor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if cursor.is_empty() {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// `chat.update` of the message `ts`. Blocks are always sent (empty when the message has
    /// none), so an edit removes buttons the previous version had.
    ///
    /// # Errors
    ///
    /// [`PlatformError`]; `TooLong` for text over 4,000 characters.
    pub async fn update_message(&self, channel: &str, ts: &str, message: &SlackMessage) -> PlatformResult<Sent> {
        let mut body = message_body(message);
        body["channel"] = json!(channel);
        body["ts"] = json!(ts);
        if body.get("blocks").is_none() {
            body["blocks"] = json!([]);
        }
        let reply = self.call("chat.update", &body).await?;
        sent(&reply, channel)
    }

    /// `chat.postEphemeral`: a message only `user` sees.
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        message: &SlackMessage,
    ) -> PlatformResult<()> {
        let mut body = message_body(message);
        body["channel"] = json!(channel);
        body["user"] = json!(user);
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
        }
        self.call("chat.postEphemeral", &body).await.map(drop)
    }

    /// `chat.startStream`: starts a streamed reply in a thread.
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn start_stream(&self, start: &StreamStart<'_>) -> PlatformResult<Sent> {
        let mut body = json!({"channel": start.channel, "thread_ts": start.thread_ts});
        let optional = [
            ("recipient_user_id", start.recipient_user_id),
            ("recipient_team_id", start.recipient_team_id),
            ("markdown_text", start.markdown_text),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                body[key] = json!(v);
            }
        }
        let reply = self.call("chat.startStream", &body).await?;
        sent(&reply, start.channel)
    }

    /// `chat.appendStream`: appends Markdown (at most 12,000 characters) to a stream.
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn append_stream(&self, channel: &str, ts: &str, markdown_text: &str) -> PlatformResult<()> {
        let body = json!({"channel": channel, "ts": ts, "markdown_text": markdown_text});
        self.call("chat.appendStream", &body).await.map(drop)
    }

    /// `chat.stopStream`: ends a stream, optionally with final Markdown.
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn stop_stream(&self, channel: &str, ts: &str, markdown_text: Option<&str>) -> PlatformResult<()> {
        let mut body = json!({"channel": channel, "ts": ts});
        if let Some(text) = markdown_text {
            body["markdown_text"] = json!(text);
        }
        self.call("chat.stopStream", &body).await.map(drop)
    }

    /// `assistant.threads.setStatus`: a "working on it" status under the thread (clears after
    /// two minutes, or with an empty status).
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn set_status(&self, channel_id: &str, thread_ts: &str, status: &str) -> PlatformResult<()> {
        let body = json!({"channel_id": channel_id, "thread_ts": thread_ts, "status": status});
        self.call("assistant.threads.setStatus", &body).await.map(drop)
    }

    /// Answers through a `response_url` (no bot token is sent there).
    ///
    /// # Errors
    ///
    /// `InvalidRequest` for a URL outside the allowed prefix, `Expired` once Slack no longer
    /// accepts it, else [`PlatformError`].
    pub async fn respond(&self, response_url: &str, message: &SlackMessage, mode: ResponseMode) -> PlatformResult<()> {
        if !response_url.starts_with(&self.response_url_prefix) {
            return Err(PlatformError::invalid("response_url outside the allowed prefix"));
        }
        let url = Url::parse(response_url).map_err(|_| PlatformError::invalid("malformed response_url"))?;
        let mut body = message_body(message);
        match mode {
            ResponseMode::Ephemeral => body["response_type"] = json!("ephemeral"),
            ResponseMode::InChannel => body["response_type"] = json!("in_channel"),
            ResponseMode::ReplaceOriginal => body["replace_original"] = json!(true),
        }
        let response = http::send_json(self.http.post(url), &body).await?;
        tracing::debug!(http.status = response.status.as_u16(), "slack response_url answered");
        match response.status.as_u16() {
            200..=299 if response.json["ok"] != json!(false) => Ok(()),
            404 | 410 => Err(PlatformError::Expired),
            _ => Err(error(&response)),
        }
    }

    async fn call(&self, method: &'static str, body: &Value) -> PlatformResult<Value> {
        let url = self.base_url.join(method).map_err(|_| PlatformError::invalid("bad base URL"))?;
        let request = self.http.post(url).bearer_auth(self.token.expose_secret());
        let response = http::send_json(request, body).await?;
        tracing::debug!(slack.method = method, http.status = response.status.as_u16(), "slack call");
        if response.status.is_success() && response.json["ok"] == json!(true) {
            Ok(response.json)
        } else {
            Err(error(&response))
        }
    }
}

fn message_body(message: &SlackMessage) -> Value {
    serde_json::to_value(message).unwrap_or_else(|_| json!({"text": message.text}))
}

fn sent(reply: &Value, channel: &str) -> PlatformResult<Sent> {
    let ts = reply["ts"]
        .as_str()
        .or_else(|| reply.pointer("/message/ts").and_then(Value::as_str))
        .ok_or_else(|| PlatformError::transient("response without ts"))?;
    Ok(Sent {
        message: MessageRef { channel: reply["channel"].as_str().unwrap_or(channel).to_owned(), id: ts.to_owned() },
        rate_limit: None,
    })
}

/// Maps a failed response: HTTP 429 or error `ratelimited`/`rate_limited` with `Retry-After`;
/// Slack's error codes otherwise.
fn error(response: &Response) -> PlatformError {
    let retry_after = http::retry_after_header(&response.headers).unwrap_or(DEFAULT_RETRY);
    let code = response.json["error"].as_str();
    if response.status.as_u16() == 429 || matches!(code, Some("ratelimited" | "rate_limited")) {
        return PlatformError::RateLimited { retry_after, global: false };
    }
    match code {
        Some("msg_too_long" | "markdown_text_too_long") => PlatformError::TooLong,
        Some(
            "not_authed"
            | "invalid_auth"
            | "token_revoked"
            | "token_expired"
            | "account_inactive"
            | "no_permission"
            | "missing_scope"
            | "not_allowed_token_type",
        ) => PlatformError::Auth,
        Some("message_not_found" | "channel_not_found" | "thread_not_found") => PlatformError::NotFound,
        Some("expired_url" | "used_url") => PlatformError::Expired,
        Some("internal_error" | "fatal_error" | "request_timeout" | "service_unavailable") => {
            PlatformError::transient(code.unwrap_or_default())
        }
        Some(code) => PlatformError::invalid(code),
        None => http::status_error(response.status),
    }
}

#[cfg(test)]
mod tests;
