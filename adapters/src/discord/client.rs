//! A Discord HTTP API client: interaction responses through the interaction's webhook (for 15
//! minutes), and channel messages with the bot token (always).

use std::fmt;
use std::time::Duration;

use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::DiscordMessage;
use crate::ReplyHandle;
use crate::outbound::http::{self, Response};
use crate::outbound::{MessageRef, PlatformError, PlatformResult, RateLimit, Sent};

/// Discord error code: unknown message.
const UNKNOWN_MESSAGE: u64 = 10_008;
/// Discord error code: unknown webhook (also an expired interaction token).
const UNKNOWN_WEBHOOK: u64 = 10_015;
/// Discord error code: invalid webhook token.
const INVALID_WEBHOOK_TOKEN: u64 = 50_027;
/// Discord error code: invalid form body.
const INVALID_FORM_BODY: u64 = 50_035;

/// A Discord client for one application (one bot token).
#[derive(Clone, Debug)]
pub struct DiscordClient {
    http: reqwest::Client,
    base_url: Url,
    bot_token: SecretString,
}

/// An interaction's webhook credentials (valid 15 minutes). `Debug` hides the token.
#[derive(Clone, Copy)]
pub struct InteractionToken<'a> {
    /// The application id.
    pub application_id: &'a str,
    /// The interaction token.
    pub token: &'a str,
}

impl<'a> InteractionToken<'a> {
    /// The credentials in a Discord [`ReplyHandle`], if it is one.
    #[must_use]
    pub fn from_handle(handle: &'a ReplyHandle) -> Option<Self> {
        match handle {
            ReplyHandle::Discord { application_id, token } => Some(Self { application_id, token }),
            _ => None,
        }
    }
}

impl fmt::Debug for InteractionToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InteractionToken")
            .field("application_id", &self.application_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl DiscordClient {
    /// Discord's API base URL (v10).
    pub const DEFAULT_BASE_URL: &str = "https://discord.com/api/v10/";

    /// A client calling `base_url` (e.g. [`Self::DEFAULT_BASE_URL`], or a fake's URL in tests)
    /// with the bot token (sent as `Authorization: Bot …` on channel routes only).
    #[must_use]
    pub fn new(http: reqwest::Client, base_url: Url, bot_token: SecretString) -> Self {
        Self { http, base_url: crate::outbound::http::with_trailing_slash(base_url), bot_token }
    }

    /// Edits the interaction's original (deferred) response:
    /// `PATCH /webhooks/{application_id}/{token}/messages/@original`.
    ///
    /// # Errors
    ///
    /// `Expired` once the token is dead (use [`Self::create_message`]), else [`PlatformError`].
    pub async fn edit_original(
        &self,
        interaction: InteractionToken<'_>,
        message: &DiscordMessage,
    ) -> PlatformResult<Sent> {
        let path = ["webhooks", interaction.application_id, interaction.token, "messages", "@original"];
        self.call(Method::PATCH, &path, false, message).await
    }

    /// Posts a follow-up message: `POST /webhooks/{application_id}/{token}?wait=true`. Use
    /// [`DiscordMessage::ephemeral`] for a message only the invoking user sees.
    ///
    /// # Errors
    ///
    /// `Expired` once the token is dead, else [`PlatformError`].
    pub async fn follow_up(&self, interaction: InteractionToken<'_>, message: &DiscordMessage) -> PlatformResult<Sent> {
        let path = ["webhooks", interaction.application_id, interaction.token];
        self.call(Method::POST, &path, false, message).await
    }

    /// Edits a follow-up message: `PATCH /webhooks/{application_id}/{token}/messages/{id}`.
    ///
    /// # Errors
    ///
    /// `Expired` once the token is dead, else [`PlatformError`].
    pub async fn edit_follow_up(
        &self,
        interaction: InteractionToken<'_>,
        message_id: &str,
        message: &DiscordMessage,
    ) -> PlatformResult<Sent> {
        let path = ["webhooks", interaction.application_id, interaction.token, "messages", message_id];
        self.call(Method::PATCH, &path, false, message).await
    }

    /// Posts in a channel (or thread) with the bot token: `POST /channels/{id}/messages`.
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn create_message(&self, channel_id: &str, message: &DiscordMessage) -> PlatformResult<Sent> {
        self.call(Method::POST, &["channels", channel_id, "messages"], true, message).await
    }

    /// Edits a bot message: `PATCH /channels/{id}/messages/{message_id}`.
    ///
    /// # Errors
    ///
    /// [`PlatformError`].
    pub async fn edit_message(
        &self,
        channel_id: &str,
        message_id: &str,
        message: &DiscordMessage,
    ) -> PlatformResult<Sent> {
        let path = ["channels", channel_id, "messages", message_id];
        self.call(Method::PATCH, &path, true, message).await
    }

    async fn call(&self, method: Method, path: &[&str], bot: bool, message: &DiscordMessage) -> PlatformResult<Sent> {
        let mut url = self.base_url.clone();
        url.path_segments_mut().map_err(|_| PlatformError::invalid("bad base URL"))?.pop_if_empty().extend(path);
        if !bot && method == Method::POST {
            url.query_pairs_mut().append_pair("wait", "true");
        }
        let route = if bot { "channel" } else { "webhook" };
        let mut request = self.http.request(method.clone(), url);
        if bot {
            request = request.header("Authorization", format!("Bot {}", self.bot_token.expose_secret()));
        }
        let body = serde_json::to_value(message).map_err(|_| PlatformError::invalid("unserialisable message"))?;
        let response = http::send_json(request, &body).await?;
        tracing::debug!(discord.route = route, http.method = %method, http.status = response.status.as_u16(), "discord call");
        let rate_limit = rate_limit(&response);
        if !response.status.is_success() {
            return Err(error(&response, bot));
        }
        let id = response.json["id"].as_str().ok_or_else(|| PlatformError::transient("response without message id"))?;
        let channel = response.json["channel_id"].as_str().or(if bot { path.get(1).copied() } else { None });
        Ok(Sent {
            message: MessageRef { channel: channel.unwrap_or_default().to_owned(), id: id.to_owned() },
            rate_limit,
        })
    }
}

/// The `X-RateLimit-*` headers, when present.
fn rate_limit(response: &Response) -> Option<RateLimit> {
    let h = |name| http::header_str(&response.headers, name);
    let limit = RateLimit {
        limit: h("x-ratelimit-limit").and_then(|v| v.parse().ok()),
        remaining: h("x-ratelimit-remaining").and_then(|v| v.parse().ok()),
        reset_after: h("x-ratelimit-reset-after").and_then(http::seconds),
        bucket: h("x-ratelimit-bucket").map(str::to_owned),
        scope: h("x-ratelimit-scope").map(str::to_owned),
    };
    (limit != RateLimit::default()).then_some(limit)
}

/// Maps a failed response; 429 waits come from the body's float `retry_after`, else the
/// `Retry-After` header.
fn error(response: &Response, bot: bool) -> PlatformError {
    let body = &response.json;
    let code = body["code"].as_u64();
    match response.status.as_u16() {
        429 => {
            let retry_after = body["retry_after"]
                .as_f64()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .or_else(|| http::retry_after_header(&response.headers))
                .unwrap_or(Duration::from_secs(1));
            let global = body["global"].as_bool().unwrap_or(false)
                || http::header_str(&response.headers, "x-ratelimit-global") == Some("true");
            PlatformError::RateLimited { retry_after, global }
        }
        401 | 404 if !bot && matches!(code, Some(UNKNOWN_WEBHOOK | INVALID_WEBHOOK_TOKEN)) => PlatformError::Expired,
        404 if code == Some(UNKNOWN_MESSAGE) => PlatformError::NotFound,
        400 if code == Some(INVALID_FORM_BODY) && too_long(body) => PlatformError::TooLong,
        400 => match code {
            Some(code) => PlatformError::invalid(&format!("{code} {}", body["message"].as_str().unwrap_or_default())),
            None => http::status_error(response.status),
        },
        _ => http::status_error(response.status),
    }
}

/// Whether a 50035 error is about the content's length.
fn too_long(body: &Value) -> bool {
    body.pointer("/errors/content/_errors")
        .and_then(Value::as_array)
        .is_some_and(|errors| errors.iter().any(|e| e["code"] == json!("BASE_TYPE_MAX_LENGTH")))
}

#[cfg(test)]
mod tests;
