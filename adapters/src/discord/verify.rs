//! Discord interaction signatures: Ed25519 over `timestamp + raw body` with the application's
//! public key, plus CyNode's own freshness window.

use std::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use http::HeaderMap;

use crate::VerifyError;
use crate::common::headers;

/// The signature header: 64 bytes as hex.
pub const SIGNATURE_HEADER: &str = "x-signature-ed25519";
/// The signed timestamp header, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-signature-timestamp";
/// The default freshness window in seconds.
///
/// Discord documents no window; this one is CyNode's policy and matches Slack's and Standard
/// Webhooks' five minutes. Discord answers need a response within 3 s anyway, so a generous
/// window costs nothing while still refusing replays of old captured requests.
pub const DEFAULT_WINDOW_SECS: u32 = 300;

/// An application's Ed25519 public key, from the "Public Key" field of the developer portal.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses the 64-hex-digit public key.
    ///
    /// # Errors
    ///
    /// [`VerifyError::InvalidKey`] when it is not 32 bytes of hex or not a curve point.
    pub fn from_hex(hex_key: &str) -> Result<Self, VerifyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key.trim(), &mut bytes).map_err(|_| VerifyError::InvalidKey)?;
        VerifyingKey::from_bytes(&bytes).map(Self).map_err(|_| VerifyError::InvalidKey)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0.as_bytes()))
    }
}

/// Verifies a Discord interaction request on its raw body.
///
/// Discord deliberately sends requests with bad signatures to check the endpoint; every one of
/// them must fail here. Verification is strict Ed25519 (`verify_strict`: no weak keys, no
/// malleable signatures). The signed timestamp must lie within `window_secs` of `now_unix`
/// (inclusive, both directions); pass [`DEFAULT_WINDOW_SECS`] unless configured otherwise.
///
/// # Errors
///
/// [`VerifyError::MissingHeader`] / [`VerifyError::BadHeader`] for absent or malformed headers,
/// [`VerifyError::StaleTimestamp`] / [`VerifyError::FutureTimestamp`] outside the window,
/// [`VerifyError::BadSignature`] when the signature does not verify.
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    public_key: &PublicKey,
    now_unix: i64,
    window_secs: u32,
) -> Result<(), VerifyError> {
    let signature = headers::required(headers, SIGNATURE_HEADER)?;
    let timestamp = headers::required(headers, TIMESTAMP_HEADER)?;
    let mut sig = [0u8; 64];
    hex::decode_to_slice(signature, &mut sig).map_err(|_| VerifyError::BadHeader(SIGNATURE_HEADER))?;
    let ts = headers::unix_seconds(timestamp, TIMESTAMP_HEADER)?;
    headers::check_window(ts, now_unix, window_secs)?;
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.extend_from_slice(body);
    public_key.0.verify_strict(&message, &Signature::from_bytes(&sig)).map_err(|_| VerifyError::BadSignature)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};
    use http::HeaderValue;

    use super::*;

    // RFC 8032 §7.1 TEST 1 key, signing `timestamp + body` (PLATFORMS.md).
    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const TS: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"type":1}"#;
    const SIG: &str = "1695961a47c91a1ec033b819b7e87e3dbc583dd0cee6d1fd0216f58ac87b6228ae531ddbf91fb7bc28d7edf7f08604da16f54624f38a6bc0614e4dc13cd47f0f";

    fn key() -> PublicKey {
        PublicKey::from_hex(PUBLIC).unwrap()
    }

    fn headers(sig: &str, ts: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("X-Signature-Ed25519", HeaderValue::from_str(sig).unwrap());
        h.insert("X-Signature-Timestamp", HeaderValue::from_str(ts).unwrap());
        h
    }

    fn official() -> HeaderMap {
        headers(SIG, &TS.to_string())
    }

    fn check(h: &HeaderMap, body: &[u8], now: i64) -> Result<(), VerifyError> {
        verify(h, body, &key(), now, DEFAULT_WINDOW_SECS)
    }

    #[test]
    fn rfc8032_vector_verifies() {
        assert_eq!(check(&official(), BODY, TS), Ok(()));
        // The seed really produces this signature (so the vector and our reading of it agree).
        let signing = SigningKey::from_bytes(&hex::decode(SEED).unwrap().try_into().unwrap());
        let sig = signing.sign(b"1700000000{\"type\":1}");
        assert_eq!(hex::encode(sig.to_bytes()), SIG);
    }

    #[test]
    fn tampered_body_wrong_key_and_forgeries_fail() {
        assert_eq!(check(&official(), br#"{"type":2}"#, TS), Err(VerifyError::BadSignature));
        assert_eq!(check(&official(), br#"{"type":1} "#, TS), Err(VerifyError::BadSignature));
        let other = SigningKey::from_bytes(&[7u8; 32]);
        let wrong_key = PublicKey::from_hex(&hex::encode(other.verifying_key().as_bytes())).unwrap();
        assert_eq!(verify(&official(), BODY, &wrong_key, TS, 300), Err(VerifyError::BadSignature));
        let zeros = headers(&"0".repeat(128), &TS.to_string());
        assert_eq!(check(&zeros, BODY, TS), Err(VerifyError::BadSignature));
        // The signature covers the timestamp: moving it breaks the signature.
        let moved = headers(SIG, &(TS + 1).to_string());
        assert_eq!(check(&moved, BODY, TS), Err(VerifyError::BadSignature));
        // A signature by another key over the same message.
        let forged = hex::encode(other.sign(b"1700000000{\"type\":1}").to_bytes());
        assert_eq!(check(&headers(&forged, "1700000000"), BODY, TS), Err(VerifyError::BadSignature));
    }

    #[test]
    fn freshness_window_is_inclusive() {
        assert_eq!(check(&official(), BODY, TS + 300), Ok(()));
        assert_eq!(check(&official(), BODY, TS - 300), Ok(()));
        assert_eq!(check(&official(), BODY, TS + 301), Err(VerifyError::StaleTimestamp));
        assert_eq!(check(&official(), BODY, TS - 301), Err(VerifyError::FutureTimestamp));
        assert_eq!(verify(&official(), BODY, &key(), TS + 3600, 3600), Ok(()));
    }

    #[test]
    fn malformed_and_missing_headers_fail() {
        let ts = TS.to_string();
        for (h, name) in [
            (headers(&SIG[..126], &ts), SIGNATURE_HEADER),
            (headers(&format!("{SIG}00"), &ts), SIGNATURE_HEADER),
            (headers(&"g".repeat(128), &ts), SIGNATURE_HEADER),
            (headers(SIG, "17OOOOOOOO"), TIMESTAMP_HEADER),
            (headers(SIG, "1700000000.5"), TIMESTAMP_HEADER),
        ] {
            assert_eq!(check(&h, BODY, TS), Err(VerifyError::BadHeader(name)));
        }
        let mut h = official();
        h.remove(SIGNATURE_HEADER);
        assert_eq!(check(&h, BODY, TS), Err(VerifyError::MissingHeader(SIGNATURE_HEADER)));
        let mut h = official();
        h.remove(TIMESTAMP_HEADER);
        assert_eq!(check(&h, BODY, TS), Err(VerifyError::MissingHeader(TIMESTAMP_HEADER)));
    }

    #[test]
    fn small_order_key_forgery_is_rejected() {
        // With the identity point as the public key, R = identity and s = 0 satisfy the lax
        // verification equation for every message; strict verification refuses weak keys.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = PublicKey::from_hex(&hex::encode(identity)).unwrap();
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let h = headers(&hex::encode(sig), &TS.to_string());
        assert_eq!(verify(&h, b"anything", &weak, TS, 300), Err(VerifyError::BadSignature));
    }

    #[test]
    fn bad_public_keys_are_rejected() {
        for bad in ["", "zz", &PUBLIC[..62], &format!("{PUBLIC}00")] {
            assert_eq!(PublicKey::from_hex(bad), Err(VerifyError::InvalidKey), "{bad:?}");
        }
        assert_eq!(format!("{:?}", key()), format!("PublicKey({PUBLIC})"));
    }
}
