use std::time::Duration;

use serde_json::json;

use super::connector::check;
use super::platform_error;
use crate::PlatformError;
use crate::outbound::tests::response;

/// The error a Web API answer maps to.
fn error(response: &crate::outbound::http::Response) -> PlatformError {
    platform_error(check(response, false).expect_err("a failed answer"))
}

#[test]
fn both_rate_limit_spellings_use_retry_after() {
    let http_429 = response(429, &[("retry-after", "7")], json!({"ok": false, "error": "ratelimited"}));
    assert_eq!(error(&http_429), PlatformError::RateLimited { retry_after: Duration::from_secs(7), global: false });
    let method_error = response(200, &[("retry-after", "2")], json!({"ok": false, "error": "rate_limited"}));
    assert_eq!(error(&method_error), PlatformError::RateLimited { retry_after: Duration::from_secs(2), global: false });
    let no_header = response(429, &[], serde_json::Value::Null);
    assert_eq!(error(&no_header).retry_after(), Some(Duration::from_secs(1)));
}

#[test]
fn slack_error_codes_map() {
    let code = |c: &str| error(&response(200, &[], json!({"ok": false, "error": c})));
    assert_eq!(code("msg_too_long"), PlatformError::TooLong);
    assert_eq!(code("invalid_auth"), PlatformError::Auth);
    assert_eq!(code("token_revoked"), PlatformError::Auth);
    assert_eq!(code("message_not_found"), PlatformError::NotFound);
    assert_eq!(code("invalid_blocks"), PlatformError::InvalidRequest("invalid_blocks".into()));
    assert!(code("internal_error").is_retryable());
    assert!(error(&response(503, &[], serde_json::Value::Null)).is_retryable());
}

#[test]
fn only_ok_true_is_success_except_on_response_urls() {
    assert!(check(&response(200, &[], json!({"ok": true})), false).is_ok());
    assert!(check(&response(200, &[], serde_json::Value::Null), false).is_err(), "a Web API answer must say ok");
    assert!(check(&response(200, &[], serde_json::Value::Null), true).is_ok(), "response_url answers `ok` as text");
    assert!(check(&response(200, &[], json!({"ok": false})), true).is_err());
    assert!(check(&response(404, &[], serde_json::Value::Null), true).is_err());
}
