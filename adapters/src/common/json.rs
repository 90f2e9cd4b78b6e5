//! JSON decoding with a nesting limit checked on the raw bytes first.

use serde::de::DeserializeOwned;

use crate::{MAX_JSON_DEPTH, ParseError};

/// Deserialises `body` after checking its nesting depth against [`MAX_JSON_DEPTH`].
///
/// # Errors
///
/// [`ParseError::TooDeep`] or [`ParseError::Json`] (which never quotes body text).
pub(crate) fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    check_depth(body, MAX_JSON_DEPTH)?;
    serde_json::from_slice(body).map_err(|e| ParseError::from_json(&e))
}

/// Rejects input whose arrays and objects nest deeper than `limit`.
///
/// A linear scan that tracks string literals and escapes, so brackets inside strings do not
/// count. It does not validate the JSON; the parser that runs afterwards does.
///
/// # Errors
///
/// [`ParseError::TooDeep`].
pub(crate) fn check_depth(body: &[u8], limit: usize) -> Result<(), ParseError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return Err(ParseError::TooDeep { limit });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_limit_is_exact() {
        assert!(from_slice::<serde_json::Value>(nested(64).as_bytes()).is_ok());
        assert_eq!(from_slice::<serde_json::Value>(nested(65).as_bytes()), Err(ParseError::TooDeep { limit: 64 }));
    }

    #[test]
    fn very_deep_input_is_rejected_without_recursion() {
        let body = "{\"a\":".repeat(1_000_000);
        assert_eq!(from_slice::<serde_json::Value>(body.as_bytes()), Err(ParseError::TooDeep { limit: 64 }));
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let body = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(100), "{".repeat(100));
        assert!(from_slice::<serde_json::Value>(body.as_bytes()).is_ok());
    }

    #[test]
    fn truncated_json_is_reported_as_truncated() {
        let err = from_slice::<serde_json::Value>(br#"{"type":"event_callback","#).unwrap_err();
        assert!(matches!(err, ParseError::Json { category: "truncated", .. }), "{err:?}");
        let err = from_slice::<serde_json::Value>(b"{\"a\" 1}").unwrap_err();
        assert!(matches!(err, ParseError::Json { category: "syntax", .. }), "{err:?}");
        let err = from_slice::<serde_json::Value>(b"{} trailing").unwrap_err();
        assert!(matches!(err, ParseError::Json { category: "syntax", .. }), "{err:?}");
    }
}
