//! Slack request signing: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` under the app's
//! signing secret, with a five-minute replay window.

use http::HeaderMap;

use crate::VerifyError;
use crate::common::{crypto, headers};

/// The signature header (matched case-insensitively).
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// The signed timestamp header, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// The replay window: a request is accepted when `|now − timestamp| <= 300` seconds.
pub const REPLAY_WINDOW_SECS: u32 = 300;

const VERSION_PREFIX: &str = "v0=";

/// Verifies a Slack request (Events API, slash command or interaction) on its raw body.
///
/// `signing_secret` is the app's signing secret (shared by every workspace the app is installed
/// in). `now_unix` is the current time; the check is inclusive at [`REPLAY_WINDOW_SECS`] in both
/// directions. The signature is compared in constant time.
///
/// # Errors
///
/// [`VerifyError::MissingHeader`] / [`VerifyError::BadHeader`] for absent or malformed headers
/// (non-numeric timestamp, missing `v0=`, bad hex, wrong length), [`VerifyError::StaleTimestamp`]
/// / [`VerifyError::FutureTimestamp`] outside the window, [`VerifyError::BadSignature`] on
/// mismatch, [`VerifyError::InvalidKey`] for an empty secret.
pub fn verify(headers: &HeaderMap, body: &[u8], signing_secret: &[u8], now_unix: i64) -> Result<(), VerifyError> {
    let timestamp = headers::required(headers, TIMESTAMP_HEADER)?;
    let signature = headers::required(headers, SIGNATURE_HEADER)?;
    let ts = headers::unix_seconds(timestamp, TIMESTAMP_HEADER)?;
    headers::check_window(ts, now_unix, REPLAY_WINDOW_SECS)?;
    let hex_tag = signature.strip_prefix(VERSION_PREFIX).ok_or(VerifyError::BadHeader(SIGNATURE_HEADER))?;
    let mut tag = [0u8; 32];
    hex::decode_to_slice(hex_tag, &mut tag).map_err(|_| VerifyError::BadHeader(SIGNATURE_HEADER))?;
    crypto::verify_hmac_sha256(signing_secret, &[b"v0:", timestamp.as_bytes(), b":", body], &tag)
}

/// Computes the `X-Slack-Signature` value for a body, as Slack does. For tests and fake Slack
/// servers; production only verifies.
///
/// # Errors
///
/// [`VerifyError::InvalidKey`] for an empty secret.
pub fn sign(signing_secret: &[u8], timestamp: i64, body: &[u8]) -> Result<String, VerifyError> {
    let ts = timestamp.to_string();
    let tag = crypto::hmac_sha256(signing_secret, &[b"v0:", ts.as_bytes(), b":", body])?;
    Ok(format!("{VERSION_PREFIX}{}", hex::encode(tag)))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    // The official vector from Slack's signing documentation (PLATFORMS.md).
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TS: i64 = 1_531_420_618;
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn headers(ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("X-Slack-Request-Timestamp", HeaderValue::from_str(ts).unwrap());
        h.insert("X-Slack-Signature", HeaderValue::from_str(sig).unwrap());
        h
    }

    fn official() -> HeaderMap {
        headers(&TS.to_string(), SIG)
    }

    #[test]
    fn official_vector_verifies() {
        assert_eq!(verify(&official(), BODY, SECRET, TS), Ok(()));
        assert_eq!(sign(SECRET, TS, BODY).unwrap(), SIG);
    }

    #[test]
    fn window_is_300_seconds_inclusive_both_ways() {
        assert_eq!(verify(&official(), BODY, SECRET, TS + 300), Ok(()));
        assert_eq!(verify(&official(), BODY, SECRET, TS - 300), Ok(()));
        assert_eq!(verify(&official(), BODY, SECRET, TS + 301), Err(VerifyError::StaleTimestamp));
        assert_eq!(verify(&official(), BODY, SECRET, TS - 301), Err(VerifyError::FutureTimestamp));
    }

    #[test]
    fn forged_or_mismatched_signatures_fail() {
        let forged = headers(&TS.to_string(), &format!("v0={}", "0".repeat(64)));
        assert_eq!(verify(&forged, BODY, SECRET, TS), Err(VerifyError::BadSignature));
        // A valid signature for another body.
        let other = sign(SECRET, TS, b"text=other").unwrap();
        let h = headers(&TS.to_string(), &other);
        assert_eq!(verify(&h, BODY, SECRET, TS), Err(VerifyError::BadSignature));
        // One flipped byte in the body.
        let mut tampered = BODY.to_vec();
        tampered[0] ^= 1;
        assert_eq!(verify(&official(), &tampered, SECRET, TS), Err(VerifyError::BadSignature));
        // The wrong secret.
        assert_eq!(verify(&official(), BODY, b"another", TS), Err(VerifyError::BadSignature));
        // The signature replayed with a fresh timestamp.
        let replayed = headers(&(TS + 1000).to_string(), SIG);
        assert_eq!(verify(&replayed, BODY, SECRET, TS + 1000), Err(VerifyError::BadSignature));
        // Uppercase hex decodes to the same tag, so it is the same signature.
        let upper = headers(&TS.to_string(), &format!("v0={}", SIG[3..].to_uppercase()));
        assert_eq!(verify(&upper, BODY, SECRET, TS), Ok(()));
    }

    #[test]
    fn malformed_headers_fail() {
        let ts = TS.to_string();
        let cases = [
            (headers("15314206l8", SIG), TIMESTAMP_HEADER),
            (headers("-1531420618", SIG), TIMESTAMP_HEADER),
            (headers(&ts, &SIG[3..]), SIGNATURE_HEADER),
            (headers(&ts, &format!("v1={}", &SIG[3..])), SIGNATURE_HEADER),
            (headers(&ts, &SIG[..SIG.len() - 2]), SIGNATURE_HEADER),
            (headers(&ts, &format!("{SIG}00")), SIGNATURE_HEADER),
            (headers(&ts, &format!("v0={}", "zz".repeat(32))), SIGNATURE_HEADER),
        ];
        for (h, name) in cases {
            assert_eq!(verify(&h, BODY, SECRET, TS), Err(VerifyError::BadHeader(name)));
        }
        let mut twice = official();
        twice.append(SIGNATURE_HEADER, HeaderValue::from_static(SIG));
        assert_eq!(verify(&twice, BODY, SECRET, TS), Err(VerifyError::BadHeader(SIGNATURE_HEADER)));
    }

    #[test]
    fn missing_headers_and_empty_secret_fail() {
        let mut h = official();
        h.remove(SIGNATURE_HEADER);
        assert_eq!(verify(&h, BODY, SECRET, TS), Err(VerifyError::MissingHeader(SIGNATURE_HEADER)));
        let mut h = official();
        h.remove(TIMESTAMP_HEADER);
        assert_eq!(verify(&h, BODY, SECRET, TS), Err(VerifyError::MissingHeader(TIMESTAMP_HEADER)));
        assert_eq!(verify(&official(), BODY, b"", TS), Err(VerifyError::InvalidKey));
        assert_eq!(sign(b"", TS, BODY), Err(VerifyError::InvalidKey));
    }

    #[test]
    fn errors_never_show_secret_or_body() {
        let mut tampered = BODY.to_vec();
        tampered[0] ^= 1;
        let err = verify(&official(), &tampered, SECRET, TS).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("8f742231") && !shown.contains("xyzz0") && !shown.contains("a2114d"));
    }
}
