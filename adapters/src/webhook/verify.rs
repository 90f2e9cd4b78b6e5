//! Verification schemes for generic inbound webhooks, selectable per endpoint.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use http::{HeaderMap, HeaderName};

use super::standard::{self, StandardSecret};
use crate::VerifyError;
use crate::common::{crypto, headers};

/// GitHub's signature header: `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The label used in errors for a [`HmacScheme`]'s configured header.
pub const CONFIGURED_HEADER_LABEL: &str = "configured signature header";

/// Standard base64, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An HMAC shared secret. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    ///
    /// # Errors
    ///
    /// [`VerifyError::InvalidKey`] when empty.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, VerifyError> {
        let bytes = bytes.into();
        if bytes.is_empty() { Err(VerifyError::InvalidKey) } else { Ok(Self(bytes)) }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How a plain HMAC header encodes the 32-byte tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Hexadecimal (either case).
    Hex,
    /// Standard base64 (padding optional).
    Base64,
}

/// A plain HMAC-SHA256 signature of the raw body in a configurable header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HmacScheme {
    /// The header carrying the signature.
    pub header: HeaderName,
    /// How the tag is encoded.
    pub encoding: Encoding,
    /// A literal prefix before the encoded tag (e.g. `sha256=`), if the sender adds one.
    pub prefix: Option<String>,
    /// Accepted secrets (more than one during a rotation).
    pub secrets: Vec<Secret>,
}

/// How an inbound webhook endpoint authenticates its deliveries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`. GitHub signs no timestamp, so replays are
    /// stopped only by delivery deduplication.
    GitHub {
        /// Accepted secrets (more than one during a rotation).
        secrets: Vec<Secret>,
    },
    /// Standard Webhooks, with a ±5 minute window.
    Standard {
        /// Accepted secrets (more than one during a rotation).
        secrets: Vec<StandardSecret>,
    },
    /// A plain HMAC-SHA256 header (no timestamp; deduplication stops replays).
    Hmac(HmacScheme),
}

impl Scheme {
    /// Whether the signature covers the delivery id. Standard Webhooks signs `webhook-id`; GitHub's
    /// `X-GitHub-Delivery` and any id header under [`Scheme::Hmac`] are not signed, so a captured body
    /// replayed with a fresh id verifies: deliveries of those schemes get a body-hash replay window in
    /// deduplication as well (see [`super::replay_key`]).
    #[must_use]
    pub fn signs_delivery_id(&self) -> bool {
        matches!(self, Self::Standard { .. })
    }
}

/// Verifies an inbound webhook with the endpoint's scheme.
///
/// # Errors
///
/// [`VerifyError::InvalidKey`] when no secret is configured, [`VerifyError::MissingHeader`] /
/// [`VerifyError::BadHeader`] for absent or malformed signature headers (bad prefix, hex or
/// base64, wrong length), timestamp errors for [`Scheme::Standard`], and
/// [`VerifyError::BadSignature`] when no secret matches.
pub fn verify(scheme: &Scheme, headers: &HeaderMap, body: &[u8], now_unix: i64) -> Result<(), VerifyError> {
    match scheme {
        Scheme::GitHub { secrets } => {
            let value = headers::required(headers, GITHUB_SIGNATURE_HEADER)?;
            let tag = value
                .strip_prefix("sha256=")
                .and_then(decode_hex)
                .ok_or(VerifyError::BadHeader(GITHUB_SIGNATURE_HEADER))?;
            verify_any(secrets, body, &tag)
        }
        Scheme::Standard { secrets } => standard::verify(headers, body, secrets, now_unix),
        Scheme::Hmac(hmac) => {
            let value = headers::optional_by(headers, &hmac.header, CONFIGURED_HEADER_LABEL)?
                .ok_or(VerifyError::MissingHeader(CONFIGURED_HEADER_LABEL))?;
            let encoded = match &hmac.prefix {
                Some(prefix) => value.strip_prefix(prefix.as_str()),
                None => Some(value),
            };
            let tag = encoded
                .and_then(|e| match hmac.encoding {
                    Encoding::Hex => decode_hex(e),
                    Encoding::Base64 => BASE64.decode(e).ok()?.try_into().ok(),
                })
                .ok_or(VerifyError::BadHeader(CONFIGURED_HEADER_LABEL))?;
            verify_any(&hmac.secrets, body, &tag)
        }
    }
}

/// The `X-Hub-Signature-256` value GitHub would send for `body`. For tests and fakes.
#[must_use]
pub fn github_signature(secret: &Secret, body: &[u8]) -> String {
    // A Secret is never empty, so hmac_sha256 cannot fail; an all-zero tag never verifies.
    let tag = crypto::hmac_sha256(&secret.0, &[body]).unwrap_or([0; 32]);
    format!("sha256={}", hex::encode(tag))
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let mut tag = [0u8; 32];
    hex::decode_to_slice(text, &mut tag).ok().map(|()| tag)
}

fn verify_any(secrets: &[Secret], body: &[u8], tag: &[u8; 32]) -> Result<(), VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::InvalidKey);
    }
    let matched = secrets.iter().any(|secret| crypto::verify_hmac_sha256(&secret.0, &[body], tag).is_ok());
    if matched { Ok(()) } else { Err(VerifyError::BadSignature) }
}
