//! Short-lived node tokens: HS256 JWTs made with `hmac`/`sha2` (no RSA code in the build), keyed by a secret
//! derived from the master key so every gateway replica can verify every node.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// What a node token asserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeClaims {
    /// Node id.
    pub sub: Uuid,
    /// The node key it registered with.
    pub key: Uuid,
    /// Negotiated protocol version.
    pub ver: u32,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, wrong algorithm, or bad signature (e.g. signed by another key).
    #[error("the node token is invalid; register again")]
    Invalid,
    /// Past its expiry.
    #[error("the node token has expired; register again")]
    Expired,
}

impl TokenError {
    /// Stable code for responses and metrics.
    pub fn code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid_token",
            Self::Expired => "token_expired",
        }
    }
}

/// Issues and verifies node tokens.
#[derive(Clone)]
pub struct TokenKeys {
    key: Vec<u8>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenKeys {
    /// Derives the signing key from the master key material.
    pub fn derive(master: &[u8]) -> Self {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(master)
            .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new_from_slice(b"cynode").expect("HMAC takes any key length"));
        mac.update(b"cynode node token v1");
        Self { key: mac.finalize().into_bytes().to_vec() }
    }

    fn mac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// Signs claims.
    pub fn issue(&self, claims: &NodeClaims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// Verifies signature (constant time) and expiry against `now` (unix seconds).
    ///
    /// # Errors
    /// [`TokenError`].
    pub fn verify(&self, token: &str, now: i64) -> Result<NodeClaims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Invalid);
        };
        let header = B64.decode(h).map_err(|_| TokenError::Invalid)?;
        let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| TokenError::Invalid)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Invalid);
        }
        let sig = B64.decode(s).map_err(|_| TokenError::Invalid)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| TokenError::Invalid)?;
        let payload = B64.decode(p).map_err(|_| TokenError::Invalid)?;
        let claims: NodeClaims = serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> NodeClaims {
        NodeClaims { sub: Uuid::new_v4(), key: Uuid::new_v4(), ver: 1, iat: 0, exp }
    }

    #[test]
    fn round_trip_and_expiry() {
        let keys = TokenKeys::derive(b"master");
        let c = claims(1000);
        let t = keys.issue(&c);
        assert_eq!(keys.verify(&t, 999), Ok(c));
        assert_eq!(keys.verify(&t, 1000), Err(TokenError::Expired));
    }

    #[test]
    fn other_keys_tampering_and_algorithm_swaps_are_refused() {
        let keys = TokenKeys::derive(b"master");
        let t = keys.issue(&claims(1000));
        assert_eq!(TokenKeys::derive(b"other").verify(&t, 0), Err(TokenError::Invalid));
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        let mut forged = claims(i64::MAX);
        forged.sub = Uuid::nil();
        parts[1] = B64.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(keys.verify(&parts.join("."), 0), Err(TokenError::Invalid));
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), parts[1]);
        assert_eq!(keys.verify(&none, 0), Err(TokenError::Invalid));
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert_eq!(keys.verify(junk, 0), Err(TokenError::Invalid));
        }
    }
}
