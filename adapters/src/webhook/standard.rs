//! Standard Webhooks (<https://www.standardwebhooks.com>): HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, base64, sent as a space-separated list of
//! `v1,<signature>` so keys can rotate. Used for inbound endpoints and, through [`sign`], for
//! CyNode's own outbound subscriptions.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::VerifyError;
use crate::common::{crypto, headers};

/// The message id header (`svix-id` is accepted as an alias).
pub const ID_HEADER: &str = "webhook-id";
/// The signed timestamp header, Unix seconds (`svix-timestamp` is accepted as an alias).
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The signature list header (`svix-signature` is accepted as an alias).
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// The replay window: ±5 minutes, inclusive.
pub const TOLERANCE_SECS: u32 = 300;

const SECRET_PREFIX: &str = "whsec_";
const SECRET_LEN: std::ops::RangeInclusive<usize> = 24..=64;
/// More signatures than this in one header is treated as malformed (bounds the work).
const MAX_SIGNATURES: usize = 16;

/// A Standard Webhooks secret: 24 to 64 random bytes, written `whsec_<base64>`.
#[derive(Clone, PartialEq, Eq)]
pub struct StandardSecret(Vec<u8>);

impl StandardSecret {
    /// Parses `whsec_<base64>` (the prefix may be omitted, as the reference libraries allow).
    ///
    /// # Errors
    ///
    /// [`VerifyError::InvalidKey`] when the base64 is malformed or the key is not 24–64 bytes.
    pub fn parse(text: &str) -> Result<Self, VerifyError> {
        let text = text.trim();
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let bytes = STANDARD.decode(encoded).map_err(|_| VerifyError::InvalidKey)?;
        Self::from_bytes(bytes)
    }

    /// Wraps raw key bytes, e.g. freshly generated ones.
    ///
    /// # Errors
    ///
    /// [`VerifyError::InvalidKey`] when the key is not 24–64 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, VerifyError> {
        if SECRET_LEN.contains(&bytes.len()) { Ok(Self(bytes)) } else { Err(VerifyError::InvalidKey) }
    }

    /// The `whsec_<base64>` form, to show once to the owner of a subscription. Never log it.
    #[must_use]
    pub fn expose_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }
}

impl fmt::Debug for StandardSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StandardSecret(<redacted>)")
    }
}

/// Signs a message: returns the `webhook-signature` header value `v1,<base64>`.
///
/// `timestamp` is Unix seconds and must be sent, as the same decimal string, in
/// `webhook-timestamp`; `msg_id` goes in `webhook-id`.
#[must_use]
pub fn sign(secret: &StandardSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(tag(secret, msg_id, &timestamp.to_string(), body)))
}

fn tag(secret: &StandardSecret, msg_id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    // A StandardSecret is never empty, so the only error of hmac_sha256 cannot happen; fall back
    // to an all-zero tag that no valid signature equals rather than panicking.
    crypto::hmac_sha256(&secret.0, &[msg_id.as_bytes(), b".", timestamp.as_bytes(), b".", body]).unwrap_or([0; 32])
}

/// Verifies a Standard Webhooks request against any of `secrets` (several during a rotation).
///
/// Accepts the request when any `v1` signature in the header matches any secret; other
/// versions are skipped. Falls back to the `svix-*` headers when `webhook-id` is absent.
///
/// # Errors
///
/// [`VerifyError::InvalidKey`] for an empty secret list, missing or malformed headers (no
/// well-formed `v1` entry at all, more than 16 entries), [`VerifyError::StaleTimestamp`] /
/// [`VerifyError::FutureTimestamp`] outside ±[`TOLERANCE_SECS`], [`VerifyError::BadSignature`]
/// when nothing matches.
pub fn verify(headers: &HeaderMap, body: &[u8], secrets: &[StandardSecret], now_unix: i64) -> Result<(), VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::InvalidKey);
    }
    let names = if headers.contains_key(ID_HEADER) || !headers.contains_key("svix-id") {
        [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER]
    } else {
        ["svix-id", "svix-timestamp", "svix-signature"]
    };
    let [id_name, ts_name, sig_name] = names;
    let msg_id = headers::required(headers, id_name)?;
    let timestamp = headers::required(headers, ts_name)?;
    let signatures = headers::required(headers, sig_name)?;
    let ts = headers::unix_seconds(timestamp, ts_name)?;
    headers::check_window(ts, now_unix, TOLERANCE_SECS)?;

    let mut candidates: Vec<[u8; 32]> = Vec::new();
    for (i, entry) in signatures.split_ascii_whitespace().enumerate() {
        if i == MAX_SIGNATURES {
            return Err(VerifyError::BadHeader(sig_name));
        }
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        if let Some(sig) = STANDARD.decode(encoded).ok().and_then(|s| <[u8; 32]>::try_from(s).ok()) {
            candidates.push(sig);
        }
    }
    if candidates.is_empty() {
        return Err(VerifyError::BadHeader(sig_name));
    }
    for secret in secrets {
        let expected = tag(secret, msg_id, timestamp, body);
        if candidates.iter().any(|c| bool::from(c.ct_eq(&expected))) {
            return Ok(());
        }
    }
    Err(VerifyError::BadSignature)
}

#[cfg(test)]
mod tests;
