//! The node-facing operations: claim (long poll), heartbeat, output. Finish is in [`super::finish`].

use std::time::Duration;

use cynode_protocol::{Capabilities, HeartbeatResponse, JobSpec, Lease, LeaseRef, OutputAck, OutputBatch, OutputChunk};
use uuid::Uuid;

use super::{DispatchError, Dispatcher};

/// Largest chunk a node may upload, in bytes.
pub const MAX_CHUNK_BYTES: usize = 256 * 1024;
/// Most chunks per upload.
pub const MAX_CHUNKS_PER_BATCH: usize = 256;
/// Most jobs per claim.
pub const MAX_JOBS_PER_CLAIM: u32 = 32;

/// The claim: `claim_jobs` (migration `20261204000100_claim_function.sql`) leases up to `p_max` queued jobs
/// that fit the node, in priority and age order, in one statement. It lives in the database so that its plan
/// is an ordered index scan of each of the node's executor kinds' queues whatever the statistics say (see the
/// migration). Its row locks last until the commit, so it must stay the only statement of its transaction.
const CLAIM: &str = "SELECT job_id, job_attempt, job_lease_token, job_spec
                     FROM claim_jobs($1, $2, $3, $4, $5, $6, $7, $8, $9)";

impl Dispatcher {
    /// Waits up to `wait` (capped by the settings) for up to `max_jobs` jobs this node can run, and leases them.
    ///
    /// # Errors
    /// [`DispatchError::UnknownNode`] when the node's key was revoked; store failures.
    pub async fn lease(&self, node: Uuid, max_jobs: u32, wait: Duration) -> Result<Vec<Lease>, DispatchError> {
        let caps = self.node_caps(node).await?;
        let max_jobs = max_jobs.clamp(1, MAX_JOBS_PER_CLAIM);
        let deadline = tokio::time::Instant::now() + wait.min(self.settings.max_wait);
        loop {
            // Register interest before looking, so an announcement between the claim and the wait is not lost.
            let notified = self.waker.local().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.mark_seen(node).await;
            let leases = self.claim(node, &caps, max_jobs).await?;
            if !leases.is_empty() {
                return Ok(leases);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let nap = (deadline - now).min(self.settings.poll_fallback);
            tokio::select! {
                () = &mut notified => {},
                () = tokio::time::sleep(nap) => {},
            }
        }
    }

    /// One claim statement; returns what it leased. With [`super::DispatchSettings::async_claims`] it commits
    /// without waiting for its WAL flush (see there).
    async fn claim(&self, node: Uuid, caps: &Capabilities, max_jobs: u32) -> Result<Vec<Lease>, DispatchError> {
        let executors: Vec<&str> = caps.executors.iter().map(|e| e.as_str()).collect();
        let gpu_mem = caps.gpus.iter().map(|g| g.memory_mb).max().unwrap_or(0);
        let labels = serde_json::to_value(&caps.labels).unwrap_or_default();
        let claim = sqlx::query_as::<_, (Uuid, i32, Uuid, serde_json::Value)>(CLAIM)
            .bind(node)
            .bind(i32::try_from(max_jobs).unwrap_or(1))
            .bind(millis(self.settings.lease_ttl))
            .bind(executors)
            .bind(&caps.templates)
            .bind(&caps.models)
            .bind(i64::try_from(gpu_mem).unwrap_or(i64::MAX))
            .bind(labels)
            .bind(millis(self.settings.prefer_window));
        let rows = if self.settings.async_claims {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
            let rows = claim.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows
        } else {
            claim.fetch_all(&self.pool).await?
        };
        let ttl = u64::try_from(millis(self.settings.lease_ttl)).unwrap_or(0);
        let mut leases = Vec::with_capacity(rows.len());
        for (job_id, attempt, lease_token, spec) in rows {
            match serde_json::from_value::<JobSpec>(spec) {
                Ok(spec) => leases.push(Lease { job_id, attempt, lease_token, lease_ttl_ms: ttl, spec }),
                Err(e) => {
                    // A spec this build cannot read: fail the job rather than hand out garbage.
                    tracing::error!(job.id = %job_id, error = %e, "unreadable job spec; failing the job");
                    self.fail_unreadable(job_id, attempt, lease_token).await?;
                }
            }
        }
        for l in &leases {
            tracing::debug!(job.id = %l.job_id, node.id = %node, attempt = l.attempt, "job leased");
        }
        self.events.announce(leases.iter().map(|l| l.job_id));
        Ok(leases)
    }

    async fn fail_unreadable(&self, job: Uuid, attempt: i32, token: Uuid) -> Result<(), DispatchError> {
        let outcome = serde_json::json!({"status": "error", "duration_ms": 0, "message": "unreadable job spec"});
        sqlx::query(
            "UPDATE jobs SET state = 'failed', result = $4, finished_at = now()
             WHERE id = $1 AND attempt = $2 AND lease_token = $3",
        )
        .bind(job)
        .bind(attempt)
        .bind(token)
        .bind(outcome)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Extends every named lease the node still holds; reports cancellations and leases it lost.
    ///
    /// # Errors
    /// Store failures.
    pub async fn heartbeat(&self, node: Uuid, leases: &[LeaseRef]) -> Result<HeartbeatResponse, DispatchError> {
        if leases.len() > 1024 {
            return Err(DispatchError::Invalid("at most 1024 leases per heartbeat".into()));
        }
        self.mark_seen(node).await;
        let ids: Vec<Uuid> = leases.iter().map(|l| l.job_id).collect();
        let attempts: Vec<i32> = leases.iter().map(|l| l.attempt).collect();
        let tokens: Vec<Uuid> = leases.iter().map(|l| l.lease_token).collect();
        let rows: Vec<(Uuid, bool, bool)> = sqlx::query_as(
            // The rows are locked in id order first, as the finish writers lock theirs, so a heartbeat and a
            // batch of finishes for the same node's jobs cannot deadlock.
            "WITH held AS (
                 SELECT j.id, j.state = 'leased' AS was_leased FROM jobs j
                 JOIN unnest($1::uuid[], $2::int[], $3::uuid[]) AS r(job_id, attempt, token)
                   ON j.id = r.job_id AND j.attempt = r.attempt AND j.lease_token = r.token
                 WHERE j.node_id = $4 AND j.state IN ('leased', 'running')
                 ORDER BY j.id
                 FOR UPDATE OF j
             )
             UPDATE jobs j
             SET lease_expires_at = now() + $5 * interval '1 millisecond',
                 state = CASE WHEN j.state = 'leased' THEN 'running' ELSE j.state END
             FROM held
             WHERE j.id = held.id
             RETURNING j.id, j.cancel_requested, held.was_leased",
        )
        .bind(&ids)
        .bind(&attempts)
        .bind(&tokens)
        .bind(node)
        .bind(millis(self.settings.lease_ttl))
        .fetch_all(&self.pool)
        .await?;
        // A job that was only leased is running now: an event for its task's stream.
        self.events.announce(rows.iter().filter(|r| r.2).map(|r| r.0));
        let mut resp = HeartbeatResponse::default();
        for (id, cancel, _) in &rows {
            resp.extended.push(*id);
            if *cancel {
                resp.cancel.push(*id);
            }
        }
        let missing: Vec<&LeaseRef> = leases.iter().filter(|l| !rows.iter().any(|(r, _, _)| *r == l.job_id)).collect();
        if !missing.is_empty() {
            // A lease that this node already finished is not lost: its finish (whose response may still be on
            // the way) was recorded under this very lease. Saying "lost" would make the agent log its
            // recorded result as dropped.
            let finished: Vec<Uuid> = sqlx::query_scalar(
                "SELECT j.id FROM jobs j
                 JOIN unnest($1::uuid[], $2::int[], $3::uuid[]) AS r(job_id, attempt, token)
                   ON j.id = r.job_id AND j.attempt = r.attempt AND j.lease_token = r.token
                 WHERE j.node_id = $4 AND j.state NOT IN ('queued', 'leased', 'running', 'awaiting_approval')",
            )
            .bind(missing.iter().map(|l| l.job_id).collect::<Vec<_>>())
            .bind(missing.iter().map(|l| l.attempt).collect::<Vec<_>>())
            .bind(missing.iter().map(|l| l.lease_token).collect::<Vec<_>>())
            .bind(node)
            .fetch_all(&self.pool)
            .await?;
            resp.lost = missing.iter().map(|l| l.job_id).filter(|id| !finished.contains(id)).collect();
        }
        Ok(resp)
    }

    /// Stores output chunks of a held lease; chunks already stored are counted as duplicates.
    ///
    /// # Errors
    /// [`DispatchError::StaleLease`] when the lease is not current; [`DispatchError::Invalid`] for oversized
    /// batches.
    pub async fn output(&self, node: Uuid, batch: &OutputBatch) -> Result<OutputAck, DispatchError> {
        check_chunks(&batch.chunks)?;
        let l = batch.lease;
        let streams: Vec<&str> = batch.chunks.iter().map(|c| c.stream.as_str()).collect();
        let seqs: Vec<i64> = batch.chunks.iter().map(|c| i64::try_from(c.seq).unwrap_or(i64::MAX)).collect();
        let data: Vec<&[u8]> = batch.chunks.iter().map(|c| c.data.as_bytes()).collect();
        // One statement: check and touch the lease, store the chunks only if it is current.
        let (cancel, stored): (Option<bool>, i64) = sqlx::query_as(
            "WITH lease AS (
                 UPDATE jobs SET state = CASE WHEN state = 'leased' THEN 'running' ELSE state END
                 WHERE id = $1 AND attempt = $2 AND lease_token = $3 AND node_id = $4
                   AND state IN ('leased', 'running')
                 RETURNING cancel_requested
             ), ins AS (
                 INSERT INTO job_output_chunks (job_id, attempt, stream, seq, data)
                 SELECT $1, $2, c.s, c.q, c.d FROM lease, unnest($5::text[], $6::bigint[], $7::bytea[]) AS c(s, q, d)
                 ON CONFLICT DO NOTHING
                 RETURNING 1
             )
             SELECT (SELECT cancel_requested FROM lease), (SELECT count(*) FROM ins)",
        )
        .bind(l.job_id)
        .bind(l.attempt)
        .bind(l.lease_token)
        .bind(node)
        .bind(&streams)
        .bind(&seqs)
        .bind(&data)
        .fetch_one(&self.pool)
        .await?;
        let Some(cancel) = cancel else { return Err(DispatchError::StaleLease) };
        self.events.announce([l.job_id]);
        let stored = u32::try_from(stored).unwrap_or(u32::MAX);
        let total = u32::try_from(batch.chunks.len()).unwrap_or(u32::MAX);
        Ok(OutputAck { stored, duplicates: total.saturating_sub(stored), cancel })
    }
}

/// Refuses an upload (or a finish's carried output) over the limits, with the limit in the message.
pub(super) fn check_chunks(chunks: &[OutputChunk]) -> Result<(), DispatchError> {
    if chunks.len() > MAX_CHUNKS_PER_BATCH {
        return Err(DispatchError::Invalid(format!("at most {MAX_CHUNKS_PER_BATCH} chunks per upload")));
    }
    if chunks.iter().any(|c| c.data.len() > MAX_CHUNK_BYTES) {
        return Err(DispatchError::Invalid(format!("a chunk may hold at most {MAX_CHUNK_BYTES} bytes")));
    }
    Ok(())
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
