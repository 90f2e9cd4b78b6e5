//! Finishing leases. A finish (with the job's trailing output, protocol 2) is handed to a small pool of writer
//! tasks that **group-commit**: each takes whatever finishes are pending (up to
//! [`DispatchSettings::finish_batch`](super::DispatchSettings::finish_batch)) and settles them in one
//! transaction — one fsync for many jobs. Each caller then learns its own result.
//!
//! What a batch does, in one transaction (see [`batch`]):
//! 0. locks the tasks of its jobs, so finishes of one task's jobs in concurrent transactions (other writers,
//!    other replicas) settle the task in turn and the last one sees every result;
//! 1. stores the carried output chunks of the finishes whose lease is current (the job rows are locked first,
//!    so no reaper can re-queue them before the commit); idempotent by `(job, attempt, stream, seq)`;
//! 2. records each result whose `(job, attempt, lease_token, node)` is current, and settles the tasks of those
//!    jobs from the states of all their jobs (two jobs of one task in one batch are settled together);
//! 3. writes the `job.finished` / `task.finished` webhook events of exactly those changes to the outbox.
//!
//! A finish whose lease is not current changes nothing, whatever else is in its batch; its caller then reads
//! the job to tell a retry of a recorded finish (same outcome: acknowledged again; different: refused) from a
//! stale lease or an unknown job.

mod batch;

use std::sync::Arc;

use cynode_protocol::{FinishAck, FinishRequest, FinishWithOutput, LeaseRef, Outcome, OutputChunk};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{DispatchError, Dispatcher, check_chunks};

/// One finish waiting for a writer.
struct Pending {
    node: Uuid,
    lease: LeaseRef,
    state: &'static str,
    result: serde_json::Value,
    output: Vec<OutputChunk>,
    done: oneshot::Sender<Result<Settled, sqlx::Error>>,
}

/// What a batch did for one finish.
#[derive(Debug)]
enum Settled {
    /// The result was recorded now; `emitted` says whether webhook deliveries were written.
    Recorded { state: String, emitted: bool },
    /// The lease was not current: nothing was written for this finish.
    NotCurrent,
}

/// The queue into the writers. The writers stop when it is dropped (with the dispatcher).
#[derive(Debug)]
pub(super) struct Finisher {
    queue: mpsc::Sender<Pending>,
}

impl Finisher {
    /// Starts `writers` writer tasks that take up to `max_batch` finishes at a time.
    fn start(pool: PgPool, writers: usize, max_batch: usize) -> Self {
        let (queue, rx) = mpsc::channel(8192);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..writers.max(1) {
            tokio::spawn(batch::run(pool.clone(), max_batch.max(1), rx.clone()));
        }
        Self { queue }
    }
}

impl Dispatcher {
    /// Records the outcome of a held lease. A retry with the same outcome succeeds again; a different one is
    /// refused.
    ///
    /// # Errors
    /// [`DispatchError::StaleLease`], [`DispatchError::ConflictingFinish`], [`DispatchError::UnknownJob`].
    pub async fn finish(&self, node: Uuid, req: &FinishRequest) -> Result<FinishAck, DispatchError> {
        self.finish_with_output(node, FinishWithOutput { finish: req.clone(), output: Vec::new() }).await
    }

    /// [`Dispatcher::finish`] that also stores the job's trailing output chunks (protocol 2), in the same
    /// transaction as the result. The chunks are stored only when the result is recorded now; a retry of a
    /// recorded finish stores nothing again.
    ///
    /// # Errors
    /// As [`Dispatcher::finish`]; [`DispatchError::Invalid`] for too many or oversized chunks.
    pub async fn finish_with_output(&self, node: Uuid, req: FinishWithOutput) -> Result<FinishAck, DispatchError> {
        check_chunks(&req.output)?;
        let FinishWithOutput { finish: FinishRequest { lease, outcome }, output } = req;
        let result = serde_json::to_value(&outcome).unwrap_or_default();
        let (done, answer) = oneshot::channel();
        let pending = Pending { node, lease, state: outcome.status.job_state(), result, output, done };
        let finisher = self.finisher.get_or_init(|| {
            Finisher::start(self.pool.clone(), self.settings.finish_writers, self.settings.finish_batch)
        });
        finisher.queue.send(pending).await.map_err(|_| DispatchError::Db(sqlx::Error::WorkerCrashed))?;
        match answer.await.map_err(|_| DispatchError::Db(sqlx::Error::WorkerCrashed))?? {
            Settled::Recorded { state, emitted } => {
                self.events.announce([lease.job_id]);
                if emitted {
                    self.announce_outbox();
                }
                let _ = self.finished.send(lease.job_id);
                tracing::info!(job.id = %lease.job_id, node.id = %node, state = %state,
                    duration_ms = outcome.duration_ms, "job finished");
                Ok(FinishAck { state, duplicate: false })
            }
            Settled::NotCurrent => self.not_current(node, lease, &outcome).await,
        }
    }

    /// Why a finish changed nothing: a retry of a recorded finish, a stale lease, or no such job.
    async fn not_current(&self, node: Uuid, l: LeaseRef, outcome: &Outcome) -> Result<FinishAck, DispatchError> {
        type Row = (String, i32, Option<Uuid>, Option<Uuid>, Option<serde_json::Value>);
        let row: Option<Row> =
            sqlx::query_as("SELECT state, attempt, lease_token, node_id, result FROM jobs WHERE id = $1")
                .bind(l.job_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some((state, attempt, token, holder, result)) = row else {
            return Err(DispatchError::UnknownJob);
        };
        if attempt != l.attempt || token != Some(l.lease_token) || holder != Some(node) {
            return Err(DispatchError::StaleLease);
        }
        let same = result.and_then(|r| serde_json::from_value::<Outcome>(r).ok()).is_some_and(|o| &o == outcome);
        if same { Ok(FinishAck { state, duplicate: true }) } else { Err(DispatchError::ConflictingFinish) }
    }
}
