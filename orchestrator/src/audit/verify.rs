//! Verifying the audit chain and its signed checkpoints, and exporting entries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use futures_util::TryStreamExt as _;
use serde::Serialize;
use sqlx::PgPool;

use super::checkpoint::message;
use super::entry_hash;

/// The first problem found, named by the sequence number where the chain stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// The entry at `seq` does not hash to what is stored, or does not link to its predecessor (an entry was
    /// altered, or its predecessor was).
    Link {
        /// Sequence number of the broken entry.
        seq: i64,
    },
    /// The entry at `seq` is missing (deleted), the chain jumps to `found`.
    Missing {
        /// The missing sequence number.
        seq: i64,
        /// The next sequence number present, if any.
        found: Option<i64>,
    },
    /// A signed checkpoint at `seq` does not match the chain: the chain was rewritten at or before `seq` (after
    /// the previous good checkpoint), or its tail was cut off, or the checkpoint itself is forged.
    Checkpoint {
        /// Sequence number the checkpoint covers.
        seq: i64,
        /// What does not match.
        reason: String,
    },
}

impl Broken {
    /// The sequence number named.
    #[must_use]
    pub const fn seq(&self) -> i64 {
        match self {
            Self::Link { seq } | Self::Missing { seq, .. } | Self::Checkpoint { seq, .. } => *seq,
        }
    }
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Link { seq } => write!(f, "entry {seq} was altered (its hash or link to entry {} is wrong)", seq - 1),
            Self::Missing { seq, found: Some(next) } => write!(f, "entry {seq} is missing (the chain jumps to {next})"),
            Self::Missing { seq, found: None } => write!(f, "entry {seq} is missing"),
            Self::Checkpoint { seq, reason } => write!(f, "signed checkpoint at entry {seq}: {reason}"),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries read.
    pub entries: u64,
    /// The last sequence number.
    pub head: Option<i64>,
    /// Checkpoints whose signature and hash were checked.
    pub checkpoints_checked: u64,
    /// The newest checked checkpoint's sequence number.
    pub last_checkpoint: Option<i64>,
    /// Checkpoints present but not checked (no trusted key was given).
    pub checkpoints_unchecked: u64,
    /// The first problem, if any.
    pub broken: Option<Broken>,
}

struct Checkpoint {
    hash: Vec<u8>,
    at: DateTime<Utc>,
    public_key: Vec<u8>,
    signature: Vec<u8>,
}

/// Walks the chain in order (streaming, so its size does not matter) and, with a trusted public key, every
/// signed checkpoint: a checkpoint must be signed by that key and name the hash the chain has at its sequence
/// number. Stops at the first problem.
///
/// # Errors
/// Store failures.
pub async fn verify(pool: &PgPool, key: Option<&VerifyingKey>) -> Result<VerifyReport, sqlx::Error> {
    type CpRow = (i64, Vec<u8>, DateTime<Utc>, Vec<u8>, Vec<u8>);
    let cps: Vec<CpRow> =
        sqlx::query_as("SELECT seq, hash, at, public_key, signature FROM audit_checkpoints ORDER BY seq")
            .fetch_all(pool)
            .await?;
    let mut report = VerifyReport::default();
    let mut checkpoints = BTreeMap::new();
    for (seq, hash, at, public_key, signature) in cps {
        if key.is_none() {
            report.checkpoints_unchecked += 1;
        } else {
            checkpoints.insert(seq, Checkpoint { hash, at, public_key, signature });
        }
    }
    type Row = (i64, DateTime<Utc>, String, String, String, serde_json::Value, Vec<u8>, Vec<u8>);
    let mut rows = sqlx::query_as::<_, Row>(
        "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq",
    )
    .fetch(pool);
    let mut prev = vec![0u8; 32];
    let mut expected = 1;
    while let Some((seq, at, actor, action, subject, detail, prev_hash, hash)) = rows.try_next().await? {
        if seq != expected {
            report.broken = Some(Broken::Missing { seq: expected, found: Some(seq) });
            return Ok(report);
        }
        if prev_hash != prev || entry_hash(&prev, seq, &at, &actor, &action, &subject, &detail) != hash {
            report.broken = Some(Broken::Link { seq });
            return Ok(report);
        }
        if let (Some(cp), Some(key)) = (checkpoints.remove(&seq), key) {
            if let Err(reason) = check(&cp, seq, &hash, key) {
                report.broken = Some(Broken::Checkpoint { seq, reason });
                return Ok(report);
            }
            report.checkpoints_checked += 1;
            report.last_checkpoint = Some(seq);
        }
        report.entries += 1;
        report.head = Some(seq);
        prev = hash;
        expected = seq + 1;
    }
    // A checkpoint beyond the head: the tail of the chain was cut off.
    if let Some((&seq, _)) = checkpoints.iter().next() {
        let head = report.head.unwrap_or(0);
        report.broken = Some(Broken::Checkpoint {
            seq,
            reason: format!(
                "the chain ends at entry {head}, but a checkpoint covers entry {seq} (entries were removed)"
            ),
        });
    }
    Ok(report)
}

fn check(cp: &Checkpoint, seq: i64, hash: &[u8], key: &VerifyingKey) -> Result<(), String> {
    if cp.public_key != key.as_bytes() {
        return Err("it is signed by another key than the trusted one".into());
    }
    let sig = Signature::from_slice(&cp.signature).map_err(|_| "its signature is malformed".to_string())?;
    key.verify_strict(&message(seq, &cp.hash, &cp.at), &sig)
        .map_err(|_| "its signature does not verify (the checkpoint was altered or forged)".to_string())?;
    if cp.hash != hash {
        return Err(format!(
            "the chain's hash at entry {seq} is not the signed one: the chain was rewritten at or before entry {seq}"
        ));
    }
    Ok(())
}

/// One audit entry as exported (`cynode audit export`: one JSON object per line).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Entry {
    /// Sequence number.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (platform user id, token name, `cli`, `bootstrap`, …).
    pub actor: String,
    /// What, e.g. `approval.resolved`.
    pub action: String,
    /// On what.
    pub subject: String,
    /// Details.
    pub detail: serde_json::Value,
    /// Hash of the previous entry, hex.
    pub prev_hash: String,
    /// This entry's hash, hex.
    pub hash: String,
}

/// Entries from `since` (inclusive) up to `until` (exclusive), in order, passed to `each` one at a time.
///
/// # Errors
/// Store failures, or what `each` returns.
pub async fn export<E: From<sqlx::Error>>(
    pool: &PgPool,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    mut each: impl FnMut(Entry) -> Result<(), E>,
) -> Result<u64, E> {
    let mut rows = sqlx::query_as::<_, Entry>(
        "SELECT seq, at, actor, action, subject, detail, encode(prev_hash, 'hex') AS prev_hash,
                encode(hash, 'hex') AS hash
         FROM audit_log WHERE at >= $1 AND ($2::timestamptz IS NULL OR at < $2) ORDER BY seq",
    )
    .bind(since)
    .bind(until)
    .fetch(pool);
    let mut n = 0;
    while let Some(e) = rows.try_next().await? {
        each(e)?;
        n += 1;
    }
    Ok(n)
}
