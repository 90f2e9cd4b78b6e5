//! Header access that fails closed: a signature header must appear exactly once, as visible
//! ASCII, and not be empty.

use http::HeaderMap;
use http::header::AsHeaderName;

use crate::VerifyError;

/// The single value of a header the verifier needs.
///
/// # Errors
///
/// [`VerifyError::MissingHeader`] when absent; [`VerifyError::BadHeader`] when repeated, not
/// visible ASCII, or empty.
pub(crate) fn required<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    optional(headers, name)?.ok_or(VerifyError::MissingHeader(name))
}

/// Like [`required`], but an absent header is `Ok(None)`.
pub(crate) fn optional<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, VerifyError> {
    optional_by(headers, name, name)
}

/// Like [`optional`] for a header whose name is only known at run time; errors name it by
/// `label`.
pub(crate) fn optional_by<'a, K: AsHeaderName>(
    headers: &'a HeaderMap,
    key: K,
    label: &'static str,
) -> Result<Option<&'a str>, VerifyError> {
    let mut values = headers.get_all(key).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::BadHeader(label));
    }
    let value = first.to_str().map_err(|_| VerifyError::BadHeader(label))?.trim_matches([' ', '\t']);
    if value.is_empty() {
        return Err(VerifyError::BadHeader(label));
    }
    Ok(Some(value))
}

/// A header value for informational use while parsing (event names, delivery ids): `None`
/// when absent, repeated, not ASCII, empty or longer than `max_len`.
pub(crate) fn informational<'a>(headers: &'a HeaderMap, name: &'static str, max_len: usize) -> Option<&'a str> {
    match optional(headers, name) {
        Ok(Some(v)) if v.len() <= max_len => Some(v),
        _ => None,
    }
}

/// Whether a `Content-Type` value names the given media type (ignoring parameters and case).
pub(crate) fn is_media_type(content_type: &str, media_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(media_type))
}

/// Parses a Unix timestamp in seconds: 1 to 18 ASCII digits, nothing else (no sign, no spaces,
/// no fraction).
///
/// # Errors
///
/// [`VerifyError::BadHeader`] naming `header` otherwise.
pub(crate) fn unix_seconds(value: &str, header: &'static str) -> Result<i64, VerifyError> {
    if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::BadHeader(header));
    }
    value.parse().map_err(|_| VerifyError::BadHeader(header))
}

/// Checks that `ts` lies within `window_secs` of `now`, both directions inclusive.
///
/// # Errors
///
/// [`VerifyError::StaleTimestamp`] or [`VerifyError::FutureTimestamp`].
pub(crate) fn check_window(ts: i64, now: i64, window_secs: u32) -> Result<(), VerifyError> {
    let skew = i128::from(now) - i128::from(ts);
    let window = i128::from(window_secs);
    if skew > window {
        Err(VerifyError::StaleTimestamp)
    } else if -skew > window {
        Err(VerifyError::FutureTimestamp)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn required_header_rules() {
        let mut h = HeaderMap::new();
        assert_eq!(required(&h, "x-a"), Err(VerifyError::MissingHeader("x-a")));
        h.insert("x-a", HeaderValue::from_static(" v "));
        assert_eq!(required(&h, "X-A"), Ok("v"));
        h.append("x-a", HeaderValue::from_static("w"));
        assert_eq!(required(&h, "x-a"), Err(VerifyError::BadHeader("x-a")));
        h.insert("x-b", HeaderValue::from_static(""));
        assert_eq!(required(&h, "x-b"), Err(VerifyError::BadHeader("x-b")));
        h.insert("x-c", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        assert_eq!(required(&h, "x-c"), Err(VerifyError::BadHeader("x-c")));
        assert_eq!(informational(&h, "x-c", 10), None);
        h.insert("x-d", HeaderValue::from_static("0123456789a"));
        assert_eq!(informational(&h, "x-d", 10), None);
        assert_eq!(informational(&h, "x-d", 11), Some("0123456789a"));
    }

    #[test]
    fn timestamps_are_plain_digits() {
        assert_eq!(unix_seconds("1531420618", "t"), Ok(1_531_420_618));
        assert_eq!(unix_seconds("0", "t"), Ok(0));
        for bad in ["", "+1", "-1", " 1", "1.5", "1e9", "abc", "9999999999999999999", "١٢"] {
            assert_eq!(unix_seconds(bad, "t"), Err(VerifyError::BadHeader("t")), "{bad:?}");
        }
    }

    #[test]
    fn window_is_inclusive_both_ways_and_cannot_overflow() {
        assert_eq!(check_window(1000, 1300, 300), Ok(()));
        assert_eq!(check_window(1000, 1301, 300), Err(VerifyError::StaleTimestamp));
        assert_eq!(check_window(1300, 1000, 300), Ok(()));
        assert_eq!(check_window(1301, 1000, 300), Err(VerifyError::FutureTimestamp));
        assert_eq!(check_window(0, i64::MIN, 300), Err(VerifyError::FutureTimestamp));
        assert_eq!(check_window(i64::MAX, i64::MIN, 300), Err(VerifyError::FutureTimestamp));
        assert_eq!(check_window(i64::MIN, i64::MAX, u32::MAX), Err(VerifyError::StaleTimestamp));
    }

    #[test]
    fn media_types_ignore_parameters_and_case() {
        assert!(is_media_type("application/json", "application/json"));
        assert!(is_media_type("Application/JSON; charset=utf-8", "application/json"));
        assert!(!is_media_type("application/jsonx", "application/json"));
        assert!(!is_media_type("", "application/json"));
    }
}
