//! The background embedding worker: embeds memories that have no vector of the current model — written while
//! the embedder was down, or embedded with a model that is no longer configured (a model change re-embeds
//! everything this way) — and deletes expired memories (retention). Its state is the rows themselves, so it
//! resumes after any crash; batches are claimed with `FOR UPDATE SKIP LOCKED`, so replicas share the work.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::store::{ensure_model, write_vectors};
use super::{InputKind, Memories};

/// How long an `embed` job's vectors stay in its result: far longer than the embedder waits for them and than a
/// node retries its finish.
pub const EMBED_RESULT_KEEP: std::time::Duration = std::time::Duration::from_secs(600);

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Memories embedded.
    pub embedded: usize,
    /// Expired memories deleted.
    pub expired: u64,
    /// Old `embed` job results whose vectors were removed.
    pub results_cleared: u64,
    /// The embedder's error, when it failed (the batch stays for the next pass).
    pub error: Option<String>,
}

impl Memories {
    /// Embeds one batch of memories that lack a vector of the current model. Returns how many were embedded;
    /// `Err` carries the embedder's error (nothing changed).
    ///
    /// # Errors
    /// Store failures.
    pub async fn embed_pending(&self) -> Result<Result<usize, String>, sqlx::Error> {
        let Some(embedder) = self.embedder() else { return Ok(Ok(0)) };
        let model = embedder.model().to_owned();
        let batch = self.settings().embed_batch.clamp(1, 512);
        let mut tx = self.pool().begin().await?;
        // Never embedded first (a partial index finds them); then memories of another model, which exist only
        // while another model is registered — so an idle pass reads no table.
        let mut rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT id, text FROM memories WHERE embedding IS NULL ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            let others: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM memory_models WHERE model <> $1)")
                .bind(&model)
                .fetch_one(&mut *tx)
                .await?;
            if others {
                rows = sqlx::query_as(
                    "SELECT id, text FROM memories WHERE embedding_model <> $1 ORDER BY created_at LIMIT $2
                     FOR UPDATE SKIP LOCKED",
                )
                .bind(&model)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
                if rows.is_empty() {
                    // Every memory has a vector of the current model: the old models are done with (their
                    // indexes stay, empty, until an operator drops them).
                    sqlx::query(
                        "DELETE FROM memory_models mm WHERE model <> $1
                           AND NOT EXISTS (SELECT 1 FROM memories WHERE embedding_model = mm.model)",
                    )
                    .bind(&model)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(Ok(0));
                }
            }
        }
        if rows.is_empty() {
            return Ok(Ok(0));
        }
        let texts: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
        let vectors = match embedder.embed(&texts, InputKind::Passage).await {
            Ok(v) => v,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let dims = vectors.first().map_or(0, Vec::len);
        if let Err(e) = ensure_model(self.pool(), &model, dims).await? {
            return Ok(Err(e.to_string()));
        }
        let pairs: Vec<(Uuid, Vec<f32>)> = rows.iter().map(|r| r.0).zip(vectors).collect();
        write_vectors(&mut tx, &model, &pairs).await?;
        tx.commit().await?;
        Ok(Ok(pairs.len()))
    }

    /// Deletes expired memories (one audit entry per pass that deleted any).
    ///
    /// # Errors
    /// Store failures.
    pub async fn purge_expired(&self) -> Result<u64, sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "DELETE FROM memories WHERE id IN (SELECT id FROM memories WHERE expires_at <= now()
             LIMIT 1000 FOR UPDATE SKIP LOCKED)",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            let detail = serde_json::json!({ "deleted": n });
            crate::audit::append(&mut tx, "cynode", "memory.expire", "retention", &detail).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Removes the vectors from `embed` job results finished more than [`EMBED_RESULT_KEEP`] ago (they were read
    /// by the embedder that waited for them; the rest of the result stays). At most 1,000 a call.
    ///
    /// # Errors
    /// Store failures.
    pub async fn clear_embed_results(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE jobs SET result = result - 'embeddings'
             WHERE id IN (SELECT id FROM jobs WHERE result ? 'embeddings'
                          AND finished_at < now() - $1 * interval '1 second' LIMIT 1000 FOR UPDATE SKIP LOCKED)",
        )
        .bind(i64::try_from(EMBED_RESULT_KEEP.as_secs()).unwrap_or(600))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// One pass: purge, clear old embed results, then embed batches until none is left or the embedder fails.
    ///
    /// # Errors
    /// Store failures.
    pub async fn pass(&self) -> Result<Pass, sqlx::Error> {
        let mut pass = Pass {
            expired: self.purge_expired().await?,
            results_cleared: self.clear_embed_results().await?,
            ..Pass::default()
        };
        loop {
            match self.embed_pending().await? {
                Ok(0) => break,
                Ok(n) => pass.embedded += n,
                Err(e) => {
                    pass.error = Some(e);
                    break;
                }
            }
        }
        Ok(pass)
    }
}

/// Runs [`Memories::pass`] every `worker_poll` (backing off up to a minute while the embedder fails) until
/// `shutdown` turns true.
pub fn spawn_memory_worker(memories: Memories, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let base = memories.settings().worker_poll;
        let mut wait = base;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
            match memories.pass().await {
                Ok(p) => {
                    if p.embedded > 0 || p.expired > 0 {
                        tracing::info!(embedded = p.embedded, expired = p.expired, "memory worker pass");
                    }
                    wait = match p.error {
                        Some(e) => {
                            tracing::warn!(error = %e, "memory embedding deferred; the embedder failed");
                            (wait * 2).min(Duration::from_secs(60))
                        }
                        None => base,
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "memory worker pass failed");
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
            }
        }
    })
}
