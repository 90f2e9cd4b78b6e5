//! HMAC-SHA256 and digest comparisons, all constant-time where a secret is involved.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::VerifyError;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
///
/// # Errors
///
/// [`VerifyError::InvalidKey`] for an empty key (fail closed on missing configuration).
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 32], VerifyError> {
    Ok(mac(key, parts)?.finalize().into_bytes().into())
}

/// Checks `tag` against the HMAC-SHA256 of `parts` under `key` in constant time.
///
/// # Errors
///
/// [`VerifyError::InvalidKey`] for an empty key, [`VerifyError::BadSignature`] on mismatch.
pub(crate) fn verify_hmac_sha256(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> Result<(), VerifyError> {
    mac(key, parts)?.verify_slice(tag).map_err(|_| VerifyError::BadSignature)
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Result<HmacSha256, VerifyError> {
    if key.is_empty() {
        return Err(VerifyError::InvalidKey);
    }
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| VerifyError::InvalidKey)?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac)
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Compares two secrets without leaking where they differ or (beyond hashing time) how long
/// they are: both are hashed and the digests compared in constant time.
pub(crate) fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    sha256(a).ct_eq(&sha256(b)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let tag = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]).unwrap();
        assert_eq!(hex::encode(tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_eq!(verify_hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"], &tag), Ok(()));
        assert_eq!(
            verify_hmac_sha256(b"Jefe", &[b"what do ya want for nothing!"], &tag),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify_hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"], &tag[..31]),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn empty_key_fails_closed() {
        assert_eq!(hmac_sha256(b"", &[b"x"]), Err(VerifyError::InvalidKey));
        assert_eq!(verify_hmac_sha256(b"", &[b"x"], &[0; 32]), Err(VerifyError::InvalidKey));
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
        assert!(!secrets_equal(b"", b"a"));
    }
}
