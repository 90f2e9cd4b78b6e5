//! Helpers shared by the platform modules: header access, replay windows, HMAC, strict JSON and
//! form decoding.

pub(crate) mod crypto;
pub(crate) mod form;
pub(crate) mod headers;
pub(crate) mod json;

use crate::ParseError;

/// A required, non-empty string field.
///
/// # Errors
///
/// [`ParseError::MissingField`] when absent, [`ParseError::InvalidField`] when empty.
pub(crate) fn non_empty(value: Option<String>, field: &'static str) -> Result<String, ParseError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        Some(_) => Err(ParseError::InvalidField(field)),
        None => Err(ParseError::MissingField(field)),
    }
}
