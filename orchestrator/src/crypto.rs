//! Secrets at rest: XChaCha20-Poly1305 under a 32-byte master key, bound to the row they belong to.
//!
//! Sealed format: `0x01 || nonce (24 bytes) || ciphertext+tag`. The associated data names the owner (for
//! example `install:slack:T123`) so a ciphertext copied to another row does not decrypt.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;

/// Errors sealing or opening secrets. Messages never contain key or plaintext material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The configured key is not 32 bytes of base64.
    #[error("the master key must be 32 random bytes encoded as base64 (generate one with `cynode keygen`)")]
    BadKey,
    /// The ciphertext is corrupt, belongs to another row, or was sealed under another key.
    #[error("a stored secret could not be decrypted (wrong master key, or the data was altered)")]
    Open,
}

/// Seals and opens secrets with the master key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// Builds a box from a base64 master key.
    ///
    /// # Errors
    /// [`CryptoError::BadKey`] when the key is not 32 bytes of base64.
    pub fn from_base64(key: &SecretString) -> Result<Self, CryptoError> {
        let raw = STANDARD.decode(key.expose_secret().trim()).map_err(|_| CryptoError::BadKey)?;
        if raw.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&raw).map_err(|_| CryptoError::BadKey)?;
        Ok(Self { cipher })
    }

    /// A fresh random master key, base64.
    pub fn generate_key() -> SecretString {
        SecretString::from(STANDARD.encode(rand::random::<[u8; 32]>()))
    }

    /// Encrypts `plaintext` for the owner named by `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from_slice(&nonce_bytes);
        // Encryption with a valid key and in-memory buffers cannot fail.
        let ct = self.cipher.encrypt(nonce, Payload { msg: plaintext, aad: context.as_bytes() }).unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 24 + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts what [`SecretBox::seal`] produced for the same `context`.
    ///
    /// # Errors
    /// [`CryptoError::Open`] on any mismatch.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 1 + 24 + 16 || sealed[0] != VERSION {
            return Err(CryptoError::Open);
        }
        let nonce = XNonce::from_slice(&sealed[1..25]);
        self.cipher
            .decrypt(nonce, Payload { msg: &sealed[25..], aad: context.as_bytes() })
            .map_err(|_| CryptoError::Open)
    }
}

/// SHA-256 of a credential, for storing keys and tokens without storing them.
pub fn hash_credential(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let b = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
        let sealed = b.seal("install:slack:T1", b"xoxb-secret");
        assert!(!sealed.windows(11).any(|w| w == b"xoxb-secret"));
        assert_eq!(b.open("install:slack:T1", &sealed).expect("open"), b"xoxb-secret");
        assert!(b.open("install:slack:T2", &sealed).is_err(), "bound to its owner");
        let other = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
        assert!(other.open("install:slack:T1", &sealed).is_err(), "bound to its key");
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(b.open("install:slack:T1", &tampered).is_err());
    }

    #[test]
    fn bad_keys_are_refused() {
        for k in ["", "not base64!", "c2hvcnQ="] {
            let err = SecretBox::from_base64(&SecretString::from(k)).expect_err("bad key");
            assert!(err.to_string().contains("32 random bytes"));
        }
    }
}
