//! The two error types of the ingress path. Neither ever holds body bytes or secret material, so
//! both are safe to log; `reason()` gives a stable label for metrics.

/// Why a request failed verification. The gateway answers every variant with a bare 401.
///
/// Header names in the messages are the static names this crate looks up, never values taken
/// from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but malformed: repeated, not ASCII, a non-numeric timestamp, a wrong
    /// prefix, bad hex or base64, or a wrong length.
    #[error("malformed header {0}")]
    BadHeader(&'static str),
    /// The signed timestamp is older than the replay window allows.
    #[error("timestamp is too old")]
    StaleTimestamp,
    /// The signed timestamp is further in the future than the replay window allows.
    #[error("timestamp is too far in the future")]
    FutureTimestamp,
    /// The signature does not match the body (forged, for another body, or another key).
    #[error("signature does not match")]
    BadSignature,
    /// The shared secret token does not match (Telegram).
    #[error("secret token does not match")]
    BadToken,
    /// The configured key or secret is unusable (empty, malformed, wrong length). This is a
    /// configuration error on our side; the request is rejected all the same.
    #[error("configured verification key is invalid")]
    InvalidKey,
}

impl VerifyError {
    /// A short, stable, machine-friendly label for metrics.
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::MissingHeader(_) => "missing_header",
            Self::BadHeader(_) => "bad_header",
            Self::StaleTimestamp => "stale_timestamp",
            Self::FutureTimestamp => "future_timestamp",
            Self::BadSignature => "bad_signature",
            Self::BadToken => "bad_token",
            Self::InvalidKey => "invalid_key",
        }
    }
}

/// Why a verified body could not be parsed. The gateway answers 400.
///
/// Messages name positions and field paths from this crate's own models, never values from the
/// body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not valid UTF-8 where text is required.
    #[error("body is not valid UTF-8")]
    NotUtf8,
    /// The JSON nests objects and arrays deeper than the limit.
    #[error("JSON nests deeper than {limit} levels")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The JSON is malformed or does not have the expected shape.
    #[error("invalid JSON body ({category}) at line {line} column {column}")]
    Json {
        /// `syntax`, `truncated` (unexpected end of input), `shape` (valid JSON of the wrong
        /// type or structure) or `io`.
        category: &'static str,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The `application/x-www-form-urlencoded` body is malformed.
    #[error("invalid form body: {0}")]
    Form(&'static str),
    /// The body's content type is not one this endpoint accepts.
    #[error("unsupported content type")]
    UnsupportedContentType,
    /// A required field is absent (or null).
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A field is present but has an unusable value (wrong type, empty, out of range).
    #[error("invalid value for field `{0}`")]
    InvalidField(&'static str),
}

impl ParseError {
    /// A short, stable, machine-friendly label for metrics.
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::NotUtf8 => "not_utf8",
            Self::TooDeep { .. } => "too_deep",
            Self::Json { .. } => "invalid_json",
            Self::Form(_) => "invalid_form",
            Self::UnsupportedContentType => "unsupported_content_type",
            Self::MissingField(_) => "missing_field",
            Self::InvalidField(_) => "invalid_field",
        }
    }

    /// Converts a `serde_json` error without keeping its message, which may quote body text.
    pub(crate) fn from_json(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let category = match err.classify() {
            Category::Io => "io",
            Category::Syntax => "syntax",
            Category::Data => "shape",
            Category::Eof => "truncated",
        };
        Self::Json { category, line: err.line(), column: err.column() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_do_not_echo_body_text() {
        let Err(err) = serde_json::from_str::<u64>(r#""super secret body text""#) else {
            panic!("expected a type error");
        };
        // serde_json itself quotes the value; ours must not.
        assert!(err.to_string().contains("super secret"));
        let ours = ParseError::from_json(&err);
        assert!(!ours.to_string().contains("secret"), "{ours}");
        assert_eq!(ours.reason(), "invalid_json");
        assert!(ours.to_string().contains("shape"));
    }

    #[test]
    fn reasons_are_snake_case_labels() {
        let all = [
            VerifyError::MissingHeader("x").reason(),
            VerifyError::BadHeader("x").reason(),
            VerifyError::StaleTimestamp.reason(),
            VerifyError::FutureTimestamp.reason(),
            VerifyError::BadSignature.reason(),
            VerifyError::BadToken.reason(),
            VerifyError::InvalidKey.reason(),
            ParseError::NotUtf8.reason(),
            ParseError::TooDeep { limit: 1 }.reason(),
            ParseError::Form("x").reason(),
            ParseError::UnsupportedContentType.reason(),
            ParseError::MissingField("x").reason(),
            ParseError::InvalidField("x").reason(),
        ];
        for r in all {
            assert!(r.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{r}");
        }
    }
}
