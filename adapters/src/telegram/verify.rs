//! Telegram webhook authentication: the secret token set with `setWebhook` comes back in every
//! delivery's `X-Telegram-Bot-Api-Secret-Token` header.

use http::HeaderMap;

use crate::VerifyError;
use crate::common::{crypto, headers};

/// The secret token header (matched case-insensitively).
pub const SECRET_TOKEN_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Whether `token` is a valid `setWebhook` secret token: 1 to 256 characters of `A-Z`, `a-z`,
/// `0-9`, `_` and `-`.
#[must_use]
pub fn is_valid_secret_token(token: &str) -> bool {
    (1..=256).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Verifies a Telegram webhook delivery against the bot's configured secret token.
///
/// The comparison hashes both values and compares the digests in constant time, so neither the
/// position of the first difference nor the secret's length shows in the timing. Telegram signs
/// nothing else (no timestamp, no body signature): replays are handled by deduplicating
/// `update_id`.
///
/// # Errors
///
/// [`VerifyError::InvalidKey`] when `expected_secret` is not a valid token (fail closed on bad
/// configuration), [`VerifyError::MissingHeader`], [`VerifyError::BadHeader`] when the header is
/// repeated or not a well-formed token, [`VerifyError::BadToken`] on mismatch.
pub fn verify(headers: &HeaderMap, expected_secret: &str) -> Result<(), VerifyError> {
    if !is_valid_secret_token(expected_secret) {
        return Err(VerifyError::InvalidKey);
    }
    let presented = headers::required(headers, SECRET_TOKEN_HEADER)?;
    if !is_valid_secret_token(presented) {
        return Err(VerifyError::BadHeader(SECRET_TOKEN_HEADER));
    }
    if crypto::secrets_equal(presented.as_bytes(), expected_secret.as_bytes()) {
        Ok(())
    } else {
        Err(VerifyError::BadToken)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const SECRET: &str = "s3cr3t_T0ken-for-cynode";

    fn with(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("X-Telegram-Bot-Api-Secret-Token", HeaderValue::from_str(token).unwrap());
        h
    }

    #[test]
    fn matching_token_verifies() {
        assert_eq!(verify(&with(SECRET), SECRET), Ok(()));
        let max = "a".repeat(256);
        assert_eq!(verify(&with(&max), &max), Ok(()));
    }

    #[test]
    fn wrong_tokens_fail() {
        assert_eq!(verify(&with("s3cr3t_T0ken-for-cynodE"), SECRET), Err(VerifyError::BadToken));
        assert_eq!(verify(&with("s3cr3t_T0ken-for-cynod"), SECRET), Err(VerifyError::BadToken));
        assert_eq!(verify(&with(&format!("{SECRET}x")), SECRET), Err(VerifyError::BadToken));
        assert_eq!(verify(&with("x"), SECRET), Err(VerifyError::BadToken));
        assert_eq!(verify(&with("bad token!"), SECRET), Err(VerifyError::BadHeader(SECRET_TOKEN_HEADER)));
        assert_eq!(verify(&with(&"a".repeat(257)), SECRET), Err(VerifyError::BadHeader(SECRET_TOKEN_HEADER)));
        assert_eq!(verify(&HeaderMap::new(), SECRET), Err(VerifyError::MissingHeader(SECRET_TOKEN_HEADER)));
        let mut twice = with(SECRET);
        twice.append(SECRET_TOKEN_HEADER, HeaderValue::from_static(SECRET));
        assert_eq!(verify(&twice, SECRET), Err(VerifyError::BadHeader(SECRET_TOKEN_HEADER)));
    }

    #[test]
    fn bad_configuration_fails_closed() {
        assert_eq!(verify(&with("x"), ""), Err(VerifyError::InvalidKey));
        assert_eq!(verify(&with("a"), "has space"), Err(VerifyError::InvalidKey));
        assert_eq!(verify(&with("a"), &"a".repeat(257)), Err(VerifyError::InvalidKey));
    }
}
