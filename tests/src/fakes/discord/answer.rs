//! Answers with `X-RateLimit-*` headers, and the fixed-window rate limits behind them.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use super::validate::Failure;
use crate::fakes::rate::{Window, WindowState, ceil_secs};

/// One answer: status, body, and the bucket state for the `X-RateLimit-*` headers.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Value,
    bucket: Option<(&'static str, WindowState)>,
    global: bool,
}

impl Answer {
    pub(super) fn fail((status, body): Failure) -> Self {
        Self { status, body, bucket: None, global: false }
    }

    pub(super) fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        if let Some((route, w)) = self.bucket {
            let reset = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + w.reset_after;
            set("x-ratelimit-limit", w.limit.to_string());
            set("x-ratelimit-remaining", w.remaining.to_string());
            set("x-ratelimit-reset", format!("{:.3}", reset.as_secs_f64()));
            set("x-ratelimit-reset-after", format!("{:.3}", w.reset_after.as_secs_f64()));
            set("x-ratelimit-bucket", format!("{:016x}", fnv(route)));
            if self.status == 429 {
                set("retry-after", ceil_secs(w.reset_after).to_string());
                set("x-ratelimit-scope", if self.global { "global" } else { "user" }.to_owned());
                if self.global {
                    set("x-ratelimit-global", "true".to_owned());
                }
            }
        }
        response
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Counts the request in the global window (bot routes) and the route's window.
pub(super) fn limit(
    shared: &Shared,
    route: &'static str,
    key: String,
    window: Window,
    bot: bool,
    now: Instant,
) -> Answer {
    let mut state = shared.lock();
    if bot {
        let global = state.windows.take("global".to_owned(), shared.rates.global, now);
        if global.limited {
            let body = json!({"message": "You are being rate limited.", "retry_after": secs3(global.reset_after), "global": true});
            return Answer { status: 429, body, bucket: Some(("global", global)), global: true };
        }
    }
    let w = state.windows.take(format!("{route}:{key}"), window, now);
    let (status, body) = if w.limited {
        (429, json!({"message": "You are being rate limited.", "retry_after": secs3(w.reset_after), "global": false}))
    } else {
        (200, Value::Null)
    };
    Answer { status, body, bucket: Some((route, w)), global: false }
}

fn secs3(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).ceil() / 1000.0
}
