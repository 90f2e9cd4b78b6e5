use std::time::Duration;

use serde_json::json;

use super::error;
use crate::PlatformError;
use crate::outbound::tests::response;

fn refused(code: u16, description: &str) -> PlatformError {
    error(&response(code, &[], json!({"ok": false, "error_code": code, "description": description})))
}

#[test]
fn the_wait_is_in_the_body() {
    let body = json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 5",
                      "parameters": {"retry_after": 5}});
    assert_eq!(
        error(&response(429, &[], body)),
        PlatformError::RateLimited { retry_after: Duration::from_secs(5), global: false }
    );
}

#[test]
fn descriptions_map() {
    assert_eq!(refused(400, "Bad Request: message is too long"), PlatformError::TooLong);
    assert_eq!(refused(400, "Bad Request: MESSAGE_TOO_LONG"), PlatformError::TooLong);
    assert_eq!(
        refused(
            400,
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same"
        ),
        PlatformError::NotModified
    );
    assert_eq!(refused(400, "Bad Request: message to edit not found"), PlatformError::NotFound);
    assert_eq!(
        refused(400, "Bad Request: query is too old and response timeout expired or query ID is invalid"),
        PlatformError::Expired
    );
    assert_eq!(refused(401, "Unauthorized"), PlatformError::Auth);
    assert_eq!(refused(404, "Not Found"), PlatformError::Auth);
    assert_eq!(
        refused(403, "Forbidden: bot was kicked"),
        PlatformError::InvalidRequest("Forbidden: bot was kicked".into())
    );
    assert!(refused(502, "Bad Gateway").is_retryable());
}
