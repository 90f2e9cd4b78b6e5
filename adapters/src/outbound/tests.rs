use std::time::Duration;

use ::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use super::http::{Response, retry_after_header, seconds};
use super::*;

/// A response as the clients see it, for the error-mapping tests of each client.
pub(crate) fn response(status: u16, headers: &[(&'static str, &str)], json: Value) -> Response {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    Response { status: StatusCode::from_u16(status).unwrap(), headers: map, json }
}

#[test]
fn retry_after_is_parsed_as_seconds() {
    assert_eq!(seconds("3"), Some(Duration::from_secs(3)));
    assert_eq!(seconds(" 0.65 "), Some(Duration::from_millis(650)));
    for bad in ["-1", "NaN", "inf", "Wed, 21 Oct 2015 07:28:00 GMT", ""] {
        assert_eq!(seconds(bad), None, "{bad}");
    }
    let r = response(429, &[("retry-after", "12")], Value::Null);
    assert_eq!(retry_after_header(&r.headers), Some(Duration::from_secs(12)));
}

#[test]
fn errors_are_safe_labels() {
    let e = PlatformError::RateLimited { retry_after: Duration::from_millis(650), global: false };
    assert_eq!(e.to_string(), "rate limited; retry after 650 ms");
    assert_eq!(e.retry_after(), Some(Duration::from_millis(650)));
    assert!(e.is_retryable() && PlatformError::transient("x").is_retryable());
    assert!(!PlatformError::TooLong.is_retryable());
    assert_eq!(PlatformError::invalid("bad\ncode\u{1F389}").to_string(), "invalid request: bad?code?");
    assert_eq!(PlatformError::invalid(&"x".repeat(500)).to_string().len(), "invalid request: ".len() + 120);
    let r = RateLimit { remaining: Some(0), reset_after: Some(Duration::from_secs(2)), ..RateLimit::default() };
    assert_eq!(r.wait_before_next(), Duration::from_secs(2));
    assert_eq!(RateLimit { remaining: Some(1), ..r }.wait_before_next(), Duration::ZERO);
}
