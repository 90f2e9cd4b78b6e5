//! The append-only, hash-chained audit log. Each entry's hash covers the previous hash and the entry, so
//! removing or altering a row breaks the chain; a trigger refuses UPDATE and DELETE. Actions append their entry
//! in their own transaction to an unchained staging table ([`append`]); a chainer links committed entries into
//! the chain in batches ([`chain_pending`]), so the chain's lock is never held across a caller's commit. Signed checkpoints of the
//! chain head ([`checkpoint`]) catch a chain rewritten consistently by someone who can bypass the trigger, and
//! [`verify`] walks chain and checkpoints together.

pub mod checkpoint;
pub mod refusals;
pub mod verify;

pub use checkpoint::{CheckpointKey, KeyError};
pub use refusals::Refusals;
pub use verify::{Broken, Entry, VerifyReport, export, verify};

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

/// Appends one entry inside the caller's transaction: it commits or rolls back with the action it records. The
/// entry waits in `audit_pending` (no lock, so callers' commits stay concurrent) until the chainer
/// ([`chain_pending`], run by every replica through [`spawn_chainer`]) links it into the chain, normally within
/// [`CHAIN_EVERY`]. The view `audit_trail` shows chained and waiting entries together.
///
/// # Errors
/// Any database error.
pub async fn append(
    conn: &mut PgConnection,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit_pending (actor, action, subject, detail) VALUES ($1, $2, $3, $4)")
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(detail)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// How often a replica's chainer looks for committed entries to link (sooner after a full batch).
pub const CHAIN_EVERY: Duration = Duration::from_millis(100);
/// Entries linked per chainer transaction at most.
pub const CHAIN_BATCH: i64 = 2_000;

type Waiting = (i64, DateTime<Utc>, String, String, String, serde_json::Value);

/// Links up to `limit` committed waiting entries into the chain, in the order they were appended, in one
/// transaction under the chain's advisory lock: `Ok(0)` when nothing waits or another chainer holds the lock
/// (it links them). Every entry is chained exactly once: it leaves `audit_pending` in the transaction that
/// inserts it into `audit_log`.
///
/// # Errors
/// Any database error (nothing is chained then; the next call tries again).
pub async fn chain_pending(pool: &PgPool, limit: i64) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('cynode.audit_log'))")
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(0);
    }
    let mut waiting: Vec<Waiting> = sqlx::query_as(
        "DELETE FROM audit_pending WHERE id IN (SELECT id FROM audit_pending ORDER BY id LIMIT $1)
         RETURNING id, at, actor, action, subject, detail",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if waiting.is_empty() {
        return Ok(0);
    }
    waiting.sort_unstable_by_key(|w| w.0);
    let last: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await?;
    let (mut seq, mut prev) = last.unwrap_or((0, vec![0u8; 32]));
    let n = waiting.len();
    let mut rows = Rows::with_capacity(n);
    for (_, at, actor, action, subject, detail) in waiting {
        seq += 1;
        let hash = entry_hash(&prev, seq, &at, &actor, &action, &subject, &detail);
        rows.seq.push(seq);
        rows.at.push(at);
        rows.actor.push(actor);
        rows.action.push(action);
        rows.subject.push(subject);
        rows.detail.push(detail);
        rows.prev.push(std::mem::replace(&mut prev, hash.clone()));
        rows.hash.push(hash);
    }
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash)
         SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::jsonb[],
                              $7::bytea[], $8::bytea[])",
    )
    .bind(&rows.seq)
    .bind(&rows.at)
    .bind(&rows.actor)
    .bind(&rows.action)
    .bind(&rows.subject)
    .bind(&rows.detail)
    .bind(&rows.prev)
    .bind(&rows.hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(n)
}

/// The columns of a batch of chained entries.
#[derive(Default)]
struct Rows {
    seq: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    actor: Vec<String>,
    action: Vec<String>,
    subject: Vec<String>,
    detail: Vec<serde_json::Value>,
    prev: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

impl Rows {
    fn with_capacity(n: usize) -> Self {
        Self {
            seq: Vec::with_capacity(n),
            at: Vec::with_capacity(n),
            actor: Vec::with_capacity(n),
            action: Vec::with_capacity(n),
            subject: Vec::with_capacity(n),
            detail: Vec::with_capacity(n),
            prev: Vec::with_capacity(n),
            hash: Vec::with_capacity(n),
        }
    }
}

/// Links every entry committed so far (the CLI's `audit verify|export|checkpoint` and tests call it before
/// reading the chain). Waits for a chainer that holds the lock to finish.
///
/// # Errors
/// Any database error.
pub async fn flush(pool: &PgPool) -> Result<(), sqlx::Error> {
    loop {
        if chain_pending(pool, CHAIN_BATCH).await? > 0 {
            continue;
        }
        let waiting: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM audit_pending)").fetch_one(pool).await?;
        if !waiting {
            return Ok(());
        }
        // Another chainer holds the lock (or an entry was committed since): look again shortly.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the chainer until `shutdown` fires: every [`CHAIN_EVERY`], at once again after a full batch. Every replica
/// runs one; the advisory lock lets one link at a time.
pub fn spawn_chainer(pool: PgPool, mut shutdown: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let pause = match chain_pending(&pool, CHAIN_BATCH).await {
                Ok(n) if i64::try_from(n).unwrap_or(0) >= CHAIN_BATCH => Duration::ZERO,
                Ok(_) => CHAIN_EVERY,
                Err(e) => {
                    tracing::warn!(error = %e, "linking audit entries into the chain failed; retrying");
                    CHAIN_EVERY * 10
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {
                    // What is committed by now is linked before the replica goes (best effort).
                    let _ = chain_pending(&pool, CHAIN_BATCH).await;
                    return;
                }
            }
        }
    })
}

/// The hash of one entry: SHA-256 over the previous hash, the sequence number, the time (microseconds) and the
/// length-prefixed actor, action and subject, then the detail's JSON. Public so that verifiers outside CyNode
/// (and tamper tests) can recompute it.
#[must_use]
pub fn entry_hash(
    prev: &[u8],
    seq: i64,
    at: &DateTime<Utc>,
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

/// Links what is waiting ([`flush`]), then walks the whole chain (no checkpoints) and returns the sequence number
/// of the first broken link, if any.
///
/// # Errors
/// Any database error.
pub async fn verify_chain(pool: &PgPool) -> Result<Option<i64>, sqlx::Error> {
    flush(pool).await?;
    Ok(verify(pool, None).await?.broken.map(|b| b.seq()))
}
