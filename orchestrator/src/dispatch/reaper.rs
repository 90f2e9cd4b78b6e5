//! The reaper: re-queues jobs whose lease expired (a node died or was cut off), with backoff computed in SQL
//! and a bounded number of attempts; declares jobs timed out when their node never reported back; expires
//! approvals nobody answered; fails work that no online node could take in time ([`super::unschedulable`]).

use std::sync::Arc;

use tokio::sync::watch;

use super::lease::millis;
use super::{DispatchError, Dispatcher};

/// What one reaper pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReapReport {
    /// Jobs put back in the queue.
    pub requeued: u64,
    /// Jobs failed because they ran out of attempts.
    pub exhausted: u64,
    /// Jobs declared timed out by the orchestrator.
    pub timed_out: u64,
    /// Approvals expired (their jobs cancelled).
    pub approvals_expired: u64,
    /// Jobs failed because no online node could take them within `dispatch.unschedulable_after_s`.
    pub unschedulable: u64,
}

const REQUEUE: &str = "
WITH expired AS (
    SELECT id FROM jobs
    WHERE state IN ('leased', 'running') AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT 500
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j
SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'failed' ELSE 'queued' END,
    run_after = now() + CASE WHEN j.attempt <= 1 THEN interval '0'
                             ELSE least($1 * power(2, j.attempt - 2), 60000) * interval '1 millisecond' END,
    result = CASE WHEN j.attempt >= j.max_attempts
                  THEN jsonb_build_object('status', 'error', 'duration_ms', 0, 'message',
                       format('the node running it was lost %s times; giving up', j.attempt))
                  ELSE j.result END,
    finished_at = CASE WHEN j.attempt >= j.max_attempts THEN now() ELSE NULL END,
    lease_token = NULL, lease_expires_at = NULL, node_id = NULL
FROM expired
WHERE j.id = expired.id
RETURNING j.id, j.state, j.task_id";

const TIMEOUT: &str = "
WITH late AS (
    SELECT id FROM jobs
    WHERE state IN ('leased', 'running')
      AND leased_at + (timeout_s * 1000 + $1) * interval '1 millisecond' < now()
    LIMIT 500
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs j
SET state = 'timed_out', finished_at = now(), lease_token = NULL, lease_expires_at = NULL,
    result = jsonb_build_object('status', 'timed_out', 'duration_ms', (j.timeout_s * 1000)::bigint, 'message',
             format('no result %s s after the %s s limit; the orchestrator stopped waiting', $1 / 1000, j.timeout_s))
FROM late
WHERE j.id = late.id
RETURNING j.id, j.task_id";

const EXPIRE_APPROVALS: &str = "
WITH gone AS (
    UPDATE approvals SET state = 'expired', decided_at = now()
    WHERE state = 'pending' AND expires_at < now()
    RETURNING job_id
)
UPDATE jobs j
SET state = 'cancelled', finished_at = now(),
    result = jsonb_build_object('status', 'cancelled', 'duration_ms', 0, 'message', 'approval expired')
FROM gone
WHERE j.id = gone.job_id AND j.state = 'awaiting_approval'
RETURNING j.id, j.task_id";

impl Dispatcher {
    /// One reaper pass.
    ///
    /// # Errors
    /// Store failures.
    pub async fn reap(&self) -> Result<ReapReport, DispatchError> {
        let mut report = ReapReport::default();
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(uuid::Uuid, String, uuid::Uuid)> =
            sqlx::query_as(REQUEUE).bind(millis(self.settings.retry_base)).fetch_all(&mut *tx).await?;
        for (id, state, task) in &rows {
            if state == "queued" {
                report.requeued += 1;
                tracing::warn!(job.id = %id, "lease expired; job re-queued");
            } else {
                report.exhausted += 1;
                tracing::warn!(job.id = %id, "lease expired on the last attempt; job failed");
                crate::tasks::settle(&mut tx, *task).await?;
            }
        }
        let late: Vec<(uuid::Uuid, uuid::Uuid)> =
            sqlx::query_as(TIMEOUT).bind(millis(self.settings.timeout_grace)).fetch_all(&mut *tx).await?;
        for (id, task) in &late {
            tracing::warn!(job.id = %id, "job timed out without a result from its node");
            crate::tasks::settle(&mut tx, *task).await?;
        }
        report.timed_out = late.len() as u64;
        let expired: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(EXPIRE_APPROVALS).fetch_all(&mut *tx).await?;
        for (_, task) in &expired {
            crate::tasks::settle(&mut tx, *task).await?;
        }
        report.approvals_expired = expired.len() as u64;
        tx.commit().await?;
        let touched = rows.iter().map(|r| r.0).chain(late.iter().map(|r| r.0)).chain(expired.iter().map(|r| r.0));
        self.events.announce(touched);
        report.unschedulable = self.fail_unschedulable().await?;
        if report.requeued > 0 {
            self.announce();
        }
        Ok(report)
    }

    pub(super) async fn reap_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.settings.reap_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if let Err(e) = self.reap().await {
                tracing::warn!(error = %e, "reaper pass failed; retrying");
            }
        }
    }
}
