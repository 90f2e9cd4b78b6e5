//! A Slack Web API client for the methods CyNode uses to answer in threads: slack-morphism's
//! request and response types and session calls, over our own connector (see [`connector`]).

mod connector;

use std::sync::Arc;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::{
    SlackApiAssistantThreadsSetStatusRequest, SlackApiChatAppendStreamRequest, SlackApiChatPostEphemeralRequest,
    SlackApiChatPostMessageRequest, SlackApiChatStartStreamRequest, SlackApiChatStopStreamRequest,
    SlackApiChatUpdateRequest, SlackApiConversationsRepliesRequest, SlackApiPostWebhookMessageResponse, SlackApiToken,
    SlackApiTokenValue, SlackChannelId, SlackClientSession, SlackMessageContent, SlackMessageMetadata,
    SlackResponseMetadata, SlackTeamId, SlackTs, SlackUserId,
};

use self::connector::Connector;
use super::SlackMessage;
use crate::outbound::{MessageRef, PlatformError, PlatformResult, Sent, http};

/// The most pages of `conversations.replies` [`SlackClient::find_marked`] reads.
pub const FIND_PAGES: usize = 10;

/// The messages of one `conversations.replies` page [`SlackClient::find_marked`] reads.
const FIND_PAGE_SIZE: u16 = 200;

/// A Slack Web API client for one workspace installation (one bot token).
#[derive(Clone)]
pub struct SlackClient {
    api: Arc<slack_morphism::SlackClient<Connector>>,
    token: SlackApiToken,
    response_url_prefix: String,
}

impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient")
            .field("connector", &self.api.http_api.connector)
            .field("token", &"<redacted>")
            .field("response_url_prefix", &self.response_url_prefix)
            .finish()
    }
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
            api: Arc::new(slack_morphism::SlackClient::new(Connector::new(http, base_url))),
            token: SlackApiToken::new(SlackApiTokenValue(token.expose_secret().to_owned())),
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
        let request = SlackApiChatPostMessageRequest::new(slack_channel(channel), content(message))
            .opt_thread_ts(thread_ts.map(slack_ts))
            .with_unfurl_links(false)
            .with_unfurl_media(false);
        let reply = self.call("chat.postMessage", |s| async move { s.chat_post_message(&request).await }).await?;
        Ok(sent(reply.channel, reply.ts))
    }

    /// `chat.postMessage` in the thread `thread_ts` carrying `metadata` (Slack's message metadata), so the message
    /// can be found in its thread again with [`Self::find_marked`] when the answer to the post was lost (a crash, a
    /// timeout).
    ///
    /// # Errors
    ///
    /// [`PlatformError`], as [`Self::post_message`]; `InvalidRequest("invalid_metadata_format")` for metadata Slack
    /// refuses.
    pub async fn post_marked(
        &self,
        channel: &str,
        thread_ts: &str,
        message: &SlackMessage,
        metadata: &SlackMessageMetadata,
    ) -> PlatformResult<Sent> {
        let request = SlackApiChatPostMessageRequest::new(
            slack_channel(channel),
            content(message).with_metadata(metadata.clone()),
        )
        .with_thread_ts(slack_ts(thread_ts))
        .with_unfurl_links(false)
        .with_unfurl_media(false);
        let reply = self.call("chat.postMessage", |s| async move { s.chat_post_message(&request).await }).await?;
        Ok(sent(reply.channel, reply.ts))
    }

    /// The `ts` of the message in the thread `thread_ts` whose metadata equals `metadata`, if there is one
    /// (`conversations.replies` with `include_all_metadata`, up to [`FIND_PAGES`] pages of 200 messages). Needs
    /// the `*:history` scope of the conversation's kind.
    ///
    /// slack-morphism's request type names the arguments; the call adds `include_all_metadata` (which the typed
    /// request lacks) and reads each message's metadata as plain JSON, so another app's metadata of any shape in
    /// the thread cannot fail the page.
    ///
    /// # Errors
    ///
    /// [`PlatformError`]: `Auth` without the scope, `NotFound` for an unknown thread, `RateLimited`.
    pub async fn find_marked(
        &self,
        channel: &str,
        thread_ts: &str,
        metadata: &SlackMessageMetadata,
    ) -> PlatformResult<Option<String>> {
        let wanted = serde_json::to_value(metadata).map_err(|_| PlatformError::invalid("unserialisable metadata"))?;
        let mut request = SlackApiConversationsRepliesRequest::new(slack_channel(channel), slack_ts(thread_ts))
            .with_limit(FIND_PAGE_SIZE);
        for _ in 0..FIND_PAGES {
            let page = self
                .call("conversations.replies", |s| {
                    let request = &request;
                    async move {
                        let limit = request.limit.map(|l| l.to_string());
                        let params = [
                            ("channel", Some(request.channel.0.as_str())),
                            ("ts", Some(request.ts.0.as_str())),
                            ("include_all_metadata", Some("true")),
                            ("limit", limit.as_deref()),
                            ("cursor", request.cursor.as_ref().map(|c| c.0.as_str())),
                        ];
                        s.http_session_api.http_get::<RepliesPage, _, _>("conversations.replies", &params, None).await
                    }
                })
                .await?;
            if let Some(found) = page.messages.into_iter().find(|m| m.metadata.as_ref() == Some(&wanted)) {
                return Ok(Some(found.ts.0));
            }
            match page.response_metadata.and_then(|m| m.next_cursor).filter(|c| !c.0.is_empty()) {
                Some(cursor) => request.cursor = Some(cursor),
                None => return Ok(None),
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
        let mut content = content(message);
        content.blocks.get_or_insert_with(Vec::new);
        let request = SlackApiChatUpdateRequest::new(slack_channel(channel), content, slack_ts(ts));
        let reply = self.call("chat.update", |s| async move { s.chat_update(&request).await }).await?;
        Ok(sent(reply.channel, reply.ts))
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
        let request = SlackApiChatPostEphemeralRequest::new(
            slack_channel(channel),
            SlackUserId(user.to_owned()),
            content(message),
        )
        .opt_thread_ts(thread_ts.map(slack_ts));
        self.call("chat.postEphemeral", |s| async move { s.chat_post_ephemeral(&request).await }).await.map(drop)
    }

    /// `chat.startStream`: starts a streamed reply in a thread.
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn start_stream(&self, start: &StreamStart<'_>) -> PlatformResult<Sent> {
        let request = SlackApiChatStartStreamRequest::new(slack_channel(start.channel))
            .with_thread_ts(slack_ts(start.thread_ts))
            .opt_recipient_user_id(start.recipient_user_id.map(|u| SlackUserId(u.to_owned())))
            .opt_recipient_team_id(start.recipient_team_id.map(|t| SlackTeamId(t.to_owned())))
            .opt_markdown_text(start.markdown_text.map(str::to_owned));
        let reply = self.call("chat.startStream", |s| async move { s.chat_start_stream(&request).await }).await?;
        Ok(sent(reply.channel, reply.ts))
    }

    /// `chat.appendStream`: appends Markdown (at most 12,000 characters) to a stream.
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn append_stream(&self, channel: &str, ts: &str, markdown_text: &str) -> PlatformResult<()> {
        let request = SlackApiChatAppendStreamRequest::new(slack_channel(channel), slack_ts(ts))
            .with_markdown_text(markdown_text.into());
        self.call("chat.appendStream", |s| async move { s.chat_append_stream(&request).await }).await.map(drop)
    }

    /// `chat.stopStream`: ends a stream, optionally with final Markdown.
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn stop_stream(&self, channel: &str, ts: &str, markdown_text: Option<&str>) -> PlatformResult<()> {
        let content = SlackMessageContent::new().opt_markdown_text(markdown_text.map(str::to_owned));
        let request = SlackApiChatStopStreamRequest::new(slack_channel(channel), slack_ts(ts), content);
        self.call("chat.stopStream", |s| async move { s.chat_stop_stream(&request).await }).await.map(drop)
    }

    /// `assistant.threads.setStatus`: a "working on it" status under the thread (clears after
    /// two minutes, or with an empty status).
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn set_status(&self, channel_id: &str, thread_ts: &str, status: &str) -> PlatformResult<()> {
        let request = SlackApiAssistantThreadsSetStatusRequest::new(
            slack_channel(channel_id),
            status.to_owned(),
            slack_ts(thread_ts),
        );
        self.call("assistant.threads.setStatus", |s| async move { s.assistant_threads_set_status(&request).await })
            .await
            .map(drop)
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
        let body = ResponseUrlBody {
            content: content(message),
            response_type: match mode {
                ResponseMode::Ephemeral => Some("ephemeral"),
                ResponseMode::InChannel => Some("in_channel"),
                ResponseMode::ReplaceOriginal => None,
            },
            replace_original: (mode == ResponseMode::ReplaceOriginal).then_some(true),
        };
        let result = self.api.http_api.connector.post::<SlackApiPostWebhookMessageResponse>(url, &body, None).await;
        tracing::debug!(ok = result.is_ok(), "slack response_url answered");
        match result {
            Ok(_) => Ok(()),
            Err(SlackClientError::HttpError(e)) if matches!(e.status_code.as_u16(), 404 | 410) => {
                Err(PlatformError::Expired)
            }
            Err(err) => Err(platform_error(err)),
        }
    }

    /// Runs one Web API call in a session with the bot token; logs the method and the outcome
    /// (never the token, the body or Slack's answer).
    async fn call<'s, T, F, Fut>(&'s self, method: &'static str, call: F) -> PlatformResult<T>
    where
        F: FnOnce(SlackClientSession<'s, Connector>) -> Fut,
        Fut: Future<Output = Result<T, SlackClientError>>,
    {
        let result = call(self.api.open_session(&self.token)).await;
        tracing::debug!(slack.method = method, ok = result.is_ok(), "slack call");
        result.map_err(platform_error)
    }
}

/// A `response_url` answer: the message plus how it is shown (slack-morphism's webhook request
/// has no `response_type`).
#[derive(Serialize)]
struct ResponseUrlBody<'a> {
    #[serde(flatten)]
    content: SlackMessageContent,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replace_original: Option<bool>,
}

/// A `conversations.replies` page as [`SlackClient::find_marked`] reads it.
#[derive(Deserialize)]
struct RepliesPage {
    #[serde(default)]
    messages: Vec<RepliedMessage>,
    response_metadata: Option<SlackResponseMetadata>,
}

/// A message of a thread: its `ts` and its metadata, any JSON.
#[derive(Deserialize)]
struct RepliedMessage {
    ts: SlackTs,
    metadata: Option<Value>,
}

fn slack_channel(channel: &str) -> SlackChannelId {
    SlackChannelId(channel.to_owned())
}

fn slack_ts(ts: &str) -> SlackTs {
    SlackTs(ts.to_owned())
}

fn content(message: &SlackMessage) -> SlackMessageContent {
    SlackMessageContent::new().with_text(message.text.clone()).opt_blocks(message.blocks.clone())
}

fn sent(channel: SlackChannelId, ts: SlackTs) -> Sent {
    Sent { message: MessageRef { channel: channel.0, id: ts.0 }, rate_limit: None }
}

/// Maps slack-morphism's error: rate limits keep Slack's `Retry-After`; Slack's error codes map
/// to their meaning; bodies are never kept.
fn platform_error(err: SlackClientError) -> PlatformError {
    match err {
        SlackClientError::RateLimitError(e) => {
            PlatformError::RateLimited { retry_after: e.retry_after.unwrap_or(connector::DEFAULT_RETRY), global: false }
        }
        SlackClientError::ApiError(e) => code_error(&e.code),
        SlackClientError::HttpError(e) => http::status_error(e.status_code),
        SlackClientError::SystemError(e) => PlatformError::transient(e.message.as_deref().unwrap_or("request failed")),
        SlackClientError::ProtocolError(_) => PlatformError::transient("unexpected response"),
        _ => PlatformError::transient("request failed"),
    }
}

fn code_error(code: &str) -> PlatformError {
    match code {
        "msg_too_long" | "markdown_text_too_long" => PlatformError::TooLong,
        "not_authed"
        | "invalid_auth"
        | "token_revoked"
        | "token_expired"
        | "account_inactive"
        | "no_permission"
        | "missing_scope"
        | "not_allowed_token_type" => PlatformError::Auth,
        "message_not_found" | "channel_not_found" | "thread_not_found" => PlatformError::NotFound,
        "expired_url" | "used_url" => PlatformError::Expired,
        "internal_error" | "fatal_error" | "request_timeout" | "service_unavailable" => PlatformError::transient(code),
        code => PlatformError::invalid(code),
    }
}

#[cfg(test)]
mod tests;
