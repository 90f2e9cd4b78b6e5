use std::time::Duration;

use serde_json::json;

use super::{error, rate_limit};
use crate::PlatformError;
use crate::outbound::tests::response;

#[test]
fn rate_limits_prefer_the_float_body_value() {
    let body = json!({"message": "You are being rate limited.", "retry_after": 0.65, "global": false});
    let r = response(429, &[("retry-after", "1")], body);
    assert_eq!(error(&r, true), PlatformError::RateLimited { retry_after: Duration::from_millis(650), global: false });
    let header_only = response(429, &[("retry-after", "2"), ("x-ratelimit-global", "true")], json!(null));
    assert_eq!(
        error(&header_only, true),
        PlatformError::RateLimited { retry_after: Duration::from_secs(2), global: true }
    );
}

#[test]
fn headers_expose_the_bucket() {
    let r = response(
        200,
        &[
            ("x-ratelimit-limit", "5"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-after", "1.250"),
            ("x-ratelimit-bucket", "abcd1234"),
            ("x-ratelimit-scope", "user"),
        ],
        json!({}),
    );
    let limit = rate_limit(&r).unwrap();
    assert_eq!((limit.limit, limit.remaining, limit.bucket.as_deref()), (Some(5), Some(0), Some("abcd1234")));
    assert_eq!(limit.wait_before_next(), Duration::from_millis(1_250));
    assert_eq!(rate_limit(&response(200, &[], json!({}))), None);
}

#[test]
fn discord_error_codes_map() {
    let e = |status, body| error(&response(status, &[], body), false);
    assert_eq!(e(401, json!({"message": "Invalid Webhook Token", "code": 50_027})), PlatformError::Expired);
    assert_eq!(e(404, json!({"message": "Unknown Webhook", "code": 10_015})), PlatformError::Expired);
    assert_eq!(e(404, json!({"message": "Unknown Message", "code": 10_008})), PlatformError::NotFound);
    assert_eq!(e(401, json!({"message": "401: Unauthorized", "code": 0})), PlatformError::Auth);
    let too_long = json!({"code": 50_035, "message": "Invalid Form Body",
                          "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "…"}]}}});
    assert_eq!(e(400, too_long), PlatformError::TooLong);
    assert_eq!(
        e(400, json!({"code": 50_006, "message": "Cannot send an empty message"})),
        PlatformError::InvalidRequest("50006 Cannot send an empty message".into())
    );
    assert!(e(502, json!(null)).is_retryable());
}
