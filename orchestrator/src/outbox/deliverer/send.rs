//! One HTTP attempt: the Standard Webhooks message, its headers, and what the answer means.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use cynode_adapters::webhook::standard::{self, StandardSecret};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::record::Claimed;
use crate::outbound_guard::{OutboundGuard, Refused};

/// How much of a response body is read (so the connection can be reused) and how much is kept.
const READ_LIMIT: usize = 4096;
const KEEP_CHARS: usize = 200;

/// What an attempt came to.
#[derive(Debug)]
pub(super) enum Outcome {
    /// 2xx.
    Delivered { status: u16, response: String },
    /// 410: the receiver wants no more.
    Gone { response: String },
    /// Anything else: retry on the schedule.
    Failed { status: Option<u16>, error: String, response: Option<String>, retry_after: Option<Duration> },
}

impl Outcome {
    /// A failure before anything was sent.
    pub(super) fn internal(error: &str) -> Self {
        Self::Failed { status: None, error: error.to_string(), response: None, retry_after: None }
    }
}

/// The message body: `{"type", "timestamp", "data"}`.
pub(super) fn body(d: &Claimed) -> Vec<u8> {
    let msg = serde_json::json!({
        "type": d.event_type,
        "timestamp": d.event_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": d.payload,
    });
    serde_json::to_vec(&msg).unwrap_or_default()
}

/// Sends `d` signed with every key in `keys`. A receiver at a refused address (see [`OutboundGuard`]: an IP
/// literal here, a resolved name in `http`'s resolver) gets nothing, and nothing of it is kept but the reason.
pub(super) async fn attempt(
    http: &reqwest::Client,
    guard: &OutboundGuard,
    d: &Claimed,
    keys: &[StandardSecret],
    timeout: Duration,
) -> Outcome {
    match url::Url::parse(&d.url) {
        Ok(url) => {
            if let Err(refused) = guard.check_url(&url) {
                return Outcome::internal(&refused.to_string());
            }
        }
        Err(_) => return Outcome::internal("the subscription's URL is not valid"),
    }
    let body = body(d);
    let ts = Utc::now().timestamp();
    let signatures: Vec<String> = keys.iter().map(|k| standard::sign(k, &d.msg_id, ts, &body)).collect();
    let sent = http
        .post(&d.url)
        .header(standard::ID_HEADER, &d.msg_id)
        .header(standard::TIMESTAMP_HEADER, ts.to_string())
        .header(standard::SIGNATURE_HEADER, signatures.join(" "))
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Failed { status: None, error: describe(&e, timeout), response: None, retry_after: None };
        }
    };
    let status = resp.status();
    let retry_after = retry_after(resp.headers(), Utc::now());
    let mut raw = Vec::new();
    while raw.len() < READ_LIMIT {
        match resp.chunk().await {
            Ok(Some(c)) => raw.extend_from_slice(&c),
            _ => break,
        }
    }
    let response = snippet(&raw);
    let code = status.as_u16();
    if status.is_success() {
        return Outcome::Delivered { status: code, response };
    }
    if code == 410 {
        return Outcome::Gone { response };
    }
    let error = if status.is_redirection() {
        format!("HTTP {code}: redirects are not followed; point the subscription at the final URL")
    } else {
        format!("HTTP {code}")
    };
    let retry_after = if matches!(code, 429 | 502 | 503 | 504) { retry_after } else { None };
    Outcome::Failed { status: Some(code), error, response: Some(response), retry_after }
}

/// The first [`KEEP_CHARS`] characters of a body, as text.
fn snippet(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).chars().take(KEEP_CHARS).collect()
}

/// A short, secret-free description of a transport error (no URL, no body).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let mut deepest = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<Refused>() {
            return refused.to_string();
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return format!("connection failed: {}", io.kind());
        }
        deepest = Some(s);
        source = s.source();
    }
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    // The sources are transport errors (hyper, rustls); reqwest's own message would carry the URL.
    let mut text = deepest.map_or_else(|| kind.to_string(), |s| format!("{kind}: {s}"));
    text.truncate(text.char_indices().nth(KEEP_CHARS).map_or(text.len(), |(i, _)| i));
    text
}

/// `Retry-After` as delta-seconds or an HTTP date, relative to `now`.
pub(super) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    (at - now).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, v.parse().expect("header"));
        h
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z").expect("date").with_timezone(&Utc);
        assert_eq!(retry_after(&headers("120"), now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&headers(" 7 "), now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&headers("Wed, 21 Oct 2015 07:30:00 GMT"), now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&headers("Wed, 21 Oct 2015 07:00:00 GMT"), now), None, "in the past");
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn snippets_are_short_text() {
        assert_eq!(snippet("é".repeat(500).as_bytes()).chars().count(), KEEP_CHARS);
        assert_eq!(snippet(b"ok"), "ok");
    }
}
