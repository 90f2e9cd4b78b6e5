//! The reaper's sweep of work nobody can do: a job that no online node could take when it was queued
//! (`jobs.unschedulable`, written by the command that queued it) and that is still queued after
//! [`super::DispatchSettings::unschedulable_after`] is checked again; if still no online node could take it, it
//! fails with the reason, so nothing waits forever in silence. If one could by now, the mark is cleared and the
//! job waits like any other.

use cynode_protocol::{ExecutorKind, Requirements};
use uuid::Uuid;

use super::feasible;
use super::lease::millis;
use super::{DispatchError, Dispatcher};

/// Jobs looked at per pass.
const SWEEP: i64 = 100;

impl Dispatcher {
    /// Fails the jobs that stayed unschedulable past their time; returns how many.
    pub(super) async fn fail_unschedulable(&self) -> Result<u64, DispatchError> {
        let after = millis(self.settings.unschedulable_after);
        let mut tx = self.pool.begin().await?;
        // Locked so that a claim racing the sweep either takes the job first (it is then skipped here) or waits
        // and finds it failed.
        let due: Vec<(Uuid, Uuid, String, serde_json::Value, String)> = sqlx::query_as(
            "SELECT id, task_id, executor, requirements, unschedulable FROM jobs
             WHERE state = 'queued' AND unschedulable IS NOT NULL
               AND created_at < now() - $1 * interval '1 millisecond'
             ORDER BY created_at LIMIT $2
             FOR UPDATE SKIP LOCKED",
        )
        .bind(after)
        .bind(SWEEP)
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let caps = feasible::online_capabilities(&self.pool).await?;
        let mut failed = Vec::new();
        for (job, task, executor, requirements, noted) in due {
            let req = serde_json::from_value::<Requirements>(requirements).unwrap_or_default();
            let verdict = match ExecutorKind::parse(&executor) {
                Some(e) => feasible::evaluate(&caps, e, &req).map_err(|why| why.message()),
                None => Err(noted),
            };
            match verdict {
                Ok(()) => {
                    sqlx::query("UPDATE jobs SET unschedulable = NULL WHERE id = $1")
                        .bind(job)
                        .execute(&mut *tx)
                        .await?;
                }
                Err(why) => {
                    let secs = self.settings.unschedulable_after.as_secs();
                    let message = format!("{} (no online node could take it for {secs} s)", why.trim_end_matches('.'));
                    sqlx::query(
                        "UPDATE jobs SET state = 'failed', finished_at = now(), unschedulable = $2,
                         result = jsonb_build_object('status', 'unschedulable', 'duration_ms', 0, 'message', $3::text)
                         WHERE id = $1",
                    )
                    .bind(job)
                    .bind(&why)
                    .bind(&message)
                    .execute(&mut *tx)
                    .await?;
                    crate::tasks::settle(&mut tx, task).await?;
                    tracing::warn!(job.id = %job, reason = %why, "no online node could take the job in time; failed it");
                    failed.push(job);
                }
            }
        }
        tx.commit().await?;
        self.events.announce(failed.iter().copied());
        Ok(failed.len() as u64)
    }
}
