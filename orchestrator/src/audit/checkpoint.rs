//! Signed checkpoints of the audit chain head. A checkpoint is an Ed25519 signature over (sequence number, hash
//! of the entry at that number, time), made with a key that lives in the gateway's configuration and never in
//! the database. Whoever can write the database can rewrite the chain and recompute every hash after the change,
//! but cannot re-sign the checkpoints that covered the old entries, so [`super::verify`] catches the rewrite.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

/// Domain separation: what a checkpoint signature covers starts with this.
const CONTEXT: &[u8] = b"cynode.audit.checkpoint.v1";

/// Why a configured key cannot be used (the message never contains the key).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not base64.
    #[error("the audit signing key is not base64 (make one with `cynode audit keygen`)")]
    NotBase64,
    /// Wrong length.
    #[error("the audit key must be 32 bytes, base64 (make one with `cynode audit keygen`)")]
    Length,
    /// A public key that is not a valid Ed25519 point.
    #[error("the audit public key is not a valid Ed25519 key")]
    Invalid,
}

/// The Ed25519 key that signs checkpoints. Its `Debug` output shows the public key only.
#[derive(Clone)]
pub struct CheckpointKey {
    key: SigningKey,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKey").field("public", &public_key_base64(&self.key.verifying_key())).finish()
    }
}

impl CheckpointKey {
    /// A key from its 32-byte seed, base64 (`security.audit_signing_key`).
    ///
    /// # Errors
    /// [`KeyError`] when it is not base64 or not 32 bytes.
    pub fn from_base64(seed: &SecretString) -> Result<Self, KeyError> {
        let bytes = B64.decode(seed.expose_secret().trim()).map_err(|_| KeyError::NotBase64)?;
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyError::Length)?;
        Ok(Self { key: SigningKey::from_bytes(&seed) })
    }

    /// A fresh random key, base64 (what `cynode audit keygen` prints).
    #[must_use]
    pub fn generate() -> SecretString {
        SecretString::from(B64.encode(rand::random::<[u8; 32]>()))
    }

    /// The public half, which verifies checkpoints.
    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    fn sign(&self, seq: i64, hash: &[u8], at: &DateTime<Utc>) -> Signature {
        self.key.sign(&message(seq, hash, at))
    }
}

/// A public key as base64 (what `security.audit_public_key` and `cynode audit verify --public-key` take).
#[must_use]
pub fn public_key_base64(key: &VerifyingKey) -> String {
    B64.encode(key.as_bytes())
}

/// Parses a base64 public key.
///
/// # Errors
/// [`KeyError`] when it is not base64, not 32 bytes or not a valid point.
pub fn parse_public_key(s: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = B64.decode(s.trim()).map_err(|_| KeyError::NotBase64)?;
    let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| KeyError::Length)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Invalid)
}

/// What a checkpoint signature covers.
pub(crate) fn message(seq: i64, hash: &[u8], at: &DateTime<Utc>) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 8 + hash.len() + 8);
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&at.timestamp_micros().to_be_bytes());
    m
}

/// Signs the current chain head unless it is checkpointed already; returns the sequence number signed. Several
/// replicas may race: the first insert of a sequence number wins, the others change nothing. The checkpoint is
/// also logged (sequence number, hash, signature — nothing secret), so log storage outside the database holds
/// copies.
///
/// # Errors
/// Store failures.
pub async fn checkpoint(pool: &PgPool, key: &CheckpointKey) -> Result<Option<i64>, sqlx::Error> {
    // Sequence numbers are taken under a lock held to commit, so every entry below a visible head is visible too.
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(pool).await?;
    let Some((seq, hash)) = head else { return Ok(None) };
    let done: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM audit_checkpoints WHERE seq = $1)")
        .bind(seq)
        .fetch_one(pool)
        .await?;
    if done {
        return Ok(None);
    }
    // Microsecond precision, as PostgreSQL stores it, so the signed time reads back identical.
    let at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_default();
    let signature = key.sign(seq, &hash, &at);
    let inserted = sqlx::query(
        "INSERT INTO audit_checkpoints (seq, hash, at, public_key, signature) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (seq) DO NOTHING",
    )
    .bind(seq)
    .bind(&hash)
    .bind(at)
    .bind(key.verifying_key().as_bytes().as_slice())
    .bind(signature.to_bytes().as_slice())
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(None);
    }
    tracing::info!(
        audit.seq = seq,
        audit.hash = %hex::encode(&hash),
        audit.signature = %B64.encode(signature.to_bytes()),
        "audit checkpoint signed"
    );
    Ok(Some(seq))
}

/// Signs a checkpoint of the chain head every `interval` until `shutdown` fires.
pub fn spawn_checkpoints(
    pool: PgPool,
    key: CheckpointKey,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = checkpoint(&pool, &key).await {
                        tracing::warn!(error = %e, "audit checkpoint failed; retrying at the next interval");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_keys_are_named_without_echoing_them() {
        let seed = CheckpointKey::generate();
        let key = CheckpointKey::from_base64(&seed).expect("key");
        let public = public_key_base64(&key.verifying_key());
        assert_eq!(parse_public_key(&public).expect("public"), key.verifying_key());
        assert!(!format!("{key:?}").contains(seed.expose_secret()));
        let err = CheckpointKey::from_base64(&SecretString::from("c2hvcnQ=")).expect_err("short");
        assert!(matches!(err, KeyError::Length));
        assert!(!err.to_string().contains("c2hvcnQ"));
        assert!(matches!(CheckpointKey::from_base64(&SecretString::from("*")), Err(KeyError::NotBase64)));
    }
}
