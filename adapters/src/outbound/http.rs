//! HTTP plumbing shared by the clients: sending JSON, reading responses, scrubbing errors.

use std::time::Duration;

use http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use super::PlatformError;

/// The most response body bytes a client reads.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A platform response: status, headers and the body as JSON (`Null` when it is not JSON).
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) json: Value,
}

/// Sends `request` with `body` as JSON and reads the response.
///
/// # Errors
///
/// [`PlatformError::Transient`] for network failures and timeouts, without the URL.
pub(crate) async fn send_json(request: reqwest::RequestBuilder, body: &Value) -> Result<Response, PlatformError> {
    let bytes = serde_json::to_vec(body).map_err(|_| PlatformError::invalid("unserialisable body"))?;
    let request = request.header(header::CONTENT_TYPE, "application/json; charset=utf-8").body(bytes);
    send(request).await
}

/// Sends `request` as it is (a `GET` with its arguments in the query) and reads the response.
///
/// # Errors
///
/// [`PlatformError::Transient`] for network failures and timeouts, without the URL.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<Response, PlatformError> {
    let response = request.send().await.map_err(scrub)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(scrub)?;
    let json = if body.len() > MAX_RESPONSE_BYTES {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    Ok(Response { status, headers, json })
}

/// A transport error without its URL (which may hold a token), as a transient failure.
pub(crate) fn scrub(err: reqwest::Error) -> PlatformError {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let err = err.without_url();
    tracing::debug!(error = %err, "platform request failed");
    PlatformError::transient(kind)
}

/// `Retry-After` as delta-seconds (integer or decimal).
pub(crate) fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    seconds(headers.get(header::RETRY_AFTER)?.to_str().ok()?)
}

/// A non-negative, finite number of seconds.
pub(crate) fn seconds(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// A header value as text.
pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

/// The error for a non-2xx status that the platform did not explain.
pub(crate) fn status_error(status: StatusCode) -> PlatformError {
    match status.as_u16() {
        401 | 403 => PlatformError::Auth,
        404 => PlatformError::NotFound,
        s if s >= 500 => PlatformError::transient(&format!("HTTP {s}")),
        s => PlatformError::invalid(&format!("HTTP {s}")),
    }
}

/// `url` with a trailing slash, so method names join onto it.
pub(crate) fn with_trailing_slash(mut url: reqwest::Url) -> reqwest::Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}
