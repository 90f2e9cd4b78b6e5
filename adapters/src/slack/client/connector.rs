//! The HTTP side of slack-morphism's client, kept ours: the workspace's reqwest client (rustls,
//! its timeouts), the configured base URL (a fake's in tests), and no retries or throttling of
//! its own. slack-morphism's hyper connector sleeps and retries on 429 behind the caller's back;
//! here a 429 (or a `ratelimited` error) comes straight back as
//! [`SlackClientError::RateLimitError`] with Slack's `Retry-After`, so the cluster-wide budgets
//! in the orchestrator stay the only pacing.
//!
//! CyNode uses JSON `POST`s and, for reads (`conversations.replies`), `GET`s with the arguments in the query; the
//! other transports answer with a system error.

use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use reqwest::Url;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use slack_morphism::errors::{
    SlackClientApiError, SlackClientError, SlackClientHttpError, SlackClientProtocolError, SlackClientSystemError,
    SlackRateLimitError,
};
use slack_morphism::multipart_form::FileMultipartData;
use slack_morphism::prelude::{
    ClientResult, SlackClientApiCallContext, SlackClientHttpConnector, SlackClientId, SlackClientSecret,
    ValueStruct as _,
};

use crate::outbound::PlatformError;
use crate::outbound::http::{self, Response};

/// The wait assumed when Slack reports a rate limit without `Retry-After`.
pub(super) const DEFAULT_RETRY: Duration = Duration::from_secs(1);

/// slack-morphism's connector over the workspace's reqwest client.
#[derive(Clone, Debug)]
pub(super) struct Connector {
    http: reqwest::Client,
    base_url: Url,
}

impl Connector {
    /// Calls methods under `base_url` (`…/api/`).
    pub(super) fn new(http: reqwest::Client, base_url: Url) -> Self {
        Self { http, base_url: http::with_trailing_slash(base_url) }
    }

    /// POSTs `body` as JSON to `url`, with the bearer token when there is one (never to a
    /// `response_url`), and decodes the answer.
    pub(super) async fn post<RS: DeserializeOwned>(
        &self,
        url: Url,
        body: &(impl Serialize + ?Sized),
        token: Option<&str>,
    ) -> ClientResult<RS> {
        let body = serde_json::to_value(body).map_err(protocol)?;
        let mut request = self.http.post(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = http::send_json(request, &body).await.map_err(|err| match err {
            PlatformError::Transient(kind) => system(&kind),
            _ => system("request failed"),
        })?;
        decode(response, token.is_none())
    }

    /// GETs `url` (the arguments in its query) with the bearer token and decodes the answer.
    pub(super) async fn get<RS: DeserializeOwned>(&self, url: Url, token: Option<&str>) -> ClientResult<RS> {
        let mut request = self.http.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = http::send(request).await.map_err(|err| match err {
            PlatformError::Transient(kind) => system(&kind),
            _ => system("request failed"),
        })?;
        decode(response, false)
    }
}

/// A decoded answer: `ok: true` (or, for a `response_url`, any 2xx that does not say `ok: false`)
/// becomes `RS`; everything else a [`SlackClientError`] without the body.
pub(super) fn decode<RS: DeserializeOwned>(response: Response, webhook: bool) -> ClientResult<RS> {
    check(&response, webhook)?;
    let json = match response.json {
        Value::Object(_) => response.json,
        _ => Value::Object(serde_json::Map::new()),
    };
    serde_json::from_value(json).map_err(protocol)
}

/// The error of a failed answer: HTTP 429 or error `ratelimited`/`rate_limited` with
/// `Retry-After`; Slack's error code; else the HTTP status.
pub(super) fn check(response: &Response, webhook: bool) -> ClientResult<()> {
    let code = response.json["error"].as_str();
    if response.status.as_u16() == 429 || matches!(code, Some("ratelimited" | "rate_limited")) {
        return Err(SlackClientError::RateLimitError(SlackRateLimitError {
            retry_after: Some(http::retry_after_header(&response.headers).unwrap_or(DEFAULT_RETRY)),
            code: code.map(str::to_owned),
            warnings: None,
            http_response_body: None,
        }));
    }
    let ok = response.json["ok"].as_bool().unwrap_or(webhook);
    match code {
        _ if response.status.is_success() && ok => Ok(()),
        Some(code) => Err(SlackClientError::ApiError(SlackClientApiError {
            code: code.to_owned(),
            errors: None,
            warnings: None,
            http_response_body: None,
        })),
        None => Err(SlackClientError::HttpError(SlackClientHttpError {
            status_code: response.status,
            http_response_body: None,
        })),
    }
}

fn protocol(json_error: serde_json::Error) -> SlackClientError {
    SlackClientError::ProtocolError(SlackClientProtocolError { json_error, json_body: None })
}

fn system(message: &str) -> SlackClientError {
    SlackClientError::SystemError(SlackClientSystemError { message: Some(message.to_owned()), cause: None })
}

fn unsupported<'a, RS: Send + 'a>() -> BoxFuture<'a, ClientResult<RS>> {
    std::future::ready(Err(system("not supported by CyNode's Slack connector"))).boxed()
}

impl SlackClientHttpConnector for Connector {
    fn http_get_uri<'a, RS>(
        &'a self,
        full_uri: Url,
        context: SlackClientApiCallContext<'a>,
    ) -> BoxFuture<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a,
    {
        let token = context.token.map(|t| t.token_value.value().as_str());
        self.get(full_uri, token).boxed()
    }

    fn http_get_with_client_secret<'a, RS>(
        &'a self,
        _: Url,
        _: &'a SlackClientId,
        _: &'a SlackClientSecret,
    ) -> BoxFuture<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a,
    {
        unsupported()
    }

    fn http_post_uri<'a, RQ, RS>(
        &'a self,
        full_uri: Url,
        request_body: &'a RQ,
        context: SlackClientApiCallContext<'a>,
    ) -> BoxFuture<'a, ClientResult<RS>>
    where
        RQ: Serialize + Send + Sync,
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a,
    {
        let token = context.token.map(|t| t.token_value.value().as_str());
        self.post(full_uri, request_body, token).boxed()
    }

    fn http_post_uri_multipart_form<'a, 'p, RS, PT, TS>(
        &'a self,
        _: Url,
        _: Option<FileMultipartData<'p>>,
        _: &'p PT,
        _: SlackClientApiCallContext<'a>,
    ) -> BoxFuture<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a,
        PT: IntoIterator<Item = (&'p str, Option<TS>)> + Clone,
        TS: AsRef<str> + 'p + Send,
    {
        unsupported()
    }

    fn http_post_uri_binary<'a, 'p, RS>(
        &'a self,
        _: Url,
        _: String,
        _: &'a [u8],
        _: SlackClientApiCallContext<'a>,
    ) -> BoxFuture<'a, ClientResult<RS>>
    where
        RS: for<'de> serde::de::Deserialize<'de> + Send + 'a,
    {
        unsupported()
    }

    fn create_method_uri_path(&self, method_relative_uri: &str) -> ClientResult<Url> {
        Ok(self.base_url.join(method_relative_uri)?)
    }
}
