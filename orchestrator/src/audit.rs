//! The append-only, hash-chained audit log. Each entry's hash covers the previous hash and the entry, so
//! removing or altering a row breaks the chain; a trigger refuses UPDATE and DELETE. Signed checkpoints of the
//! chain head ([`checkpoint`]) catch a chain rewritten consistently by someone who can bypass the trigger, and
//! [`verify`] walks chain and checkpoints together.

pub mod checkpoint;
pub mod refusals;
pub mod verify;

pub use checkpoint::{CheckpointKey, KeyError};
pub use refusals::Refusals;
pub use verify::{Broken, Entry, VerifyReport, export, verify};

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

/// Appends one entry inside the caller's transaction (serialised by an advisory lock so the chain stays
/// linear).
///
/// # Errors
/// Any database error.
pub async fn append(
    conn: &mut PgConnection,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cynode.audit_log'))").execute(&mut *conn).await?;
    let last: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *conn).await?;
    let (seq, prev) = last.map_or((1, vec![0u8; 32]), |(s, h)| (s + 1, h));
    let at = chrono::Utc::now();
    let hash = entry_hash(&prev, seq, &at, actor, action, subject, detail);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(detail)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(seq)
}

/// The hash of one entry: SHA-256 over the previous hash, the sequence number, the time (microseconds) and the
/// length-prefixed actor, action and subject, then the detail's JSON. Public so that verifiers outside CyNode
/// (and tamper tests) can recompute it.
#[must_use]
pub fn entry_hash(
    prev: &[u8],
    seq: i64,
    at: &chrono::DateTime<chrono::Utc>,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at.timestamp_micros().to_be_bytes());
    for part in [actor, action, subject] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(detail.to_string().as_bytes());
    h.finalize().to_vec()
}

/// Walks the whole chain (no checkpoints) and returns the sequence number of the first broken link, if any.
///
/// # Errors
/// Any database error.
pub async fn verify_chain(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    Ok(verify(pool, None).await?.broken.map(|b| b.seq()))
}
