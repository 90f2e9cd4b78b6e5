//! The life of one lease on this node: hold it (so it is heartbeated), run the job while its output is
//! uploaded, then report the outcome until the orchestrator acknowledges it — unless the lease was lost,
//! in which case nothing more is written.

use std::sync::Arc;

use cynode_protocol::{FINISH_WITH_OUTPUT_VERSION, FinishRequest, FinishWithOutput, Lease, LeaseRef};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

use super::held::{Held, JobControl, StopReason};
use super::runner::JobRunner;
use super::upload::{UploadEnd, upload};
use crate::client::{Backoff, ClientError, OrchestratorClient};
use crate::config::AgentTiming;

/// What every job task shares.
#[derive(Debug)]
pub(crate) struct JobContext {
    /// The orchestrator.
    pub client: Arc<OrchestratorClient>,
    /// Leases held (the heartbeat task reads them).
    pub held: Arc<Held>,
    /// The executors.
    pub runner: JobRunner,
    /// Timing knobs.
    pub timing: AgentTiming,
    /// Cancelled when the agent stops: jobs starting after that are cancelled at once.
    pub stopping: CancellationToken,
}

/// Stops holding the lease when the job task ends, also by panic or abort.
struct Release<'a>(&'a Held, LeaseRef);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.remove(&self.1);
    }
}

/// Runs `lease` to the end. `_slot` is the concurrency slot it occupies, freed when this returns.
pub(crate) async fn run_lease(ctx: Arc<JobContext>, lease: Lease, _slot: Option<OwnedSemaphorePermit>) {
    let lref = LeaseRef { job_id: lease.job_id, attempt: lease.attempt, lease_token: lease.lease_token };
    let control = ctx.held.insert(lref);
    let _release = Release(&ctx.held, lref);
    if ctx.stopping.is_cancelled() {
        control.cancel(StopReason::Shutdown);
    }
    tracing::info!(job.id = %lease.job_id, job.attempt = lease.attempt, executor = lease.spec.executor().as_str(),
        "job started");

    let (tx, mut rx) = mpsc::channel(64);
    let (utx, urx) = mpsc::unbounded_channel();
    // Drain the executor at its pace, whatever the orchestrator's; output is bounded by the job's cap.
    let forward = async move {
        while let Some(chunk) = rx.recv().await {
            let _ = utx.send(chunk);
        }
    };
    let run = ctx.runner.run(&lease, &control, tx);
    // Protocol 2: the output still pending when the job ends rides in the finish request.
    let carry = ctx.client.session().await.is_some_and(|s| s.protocol_version >= FINISH_WITH_OUTPUT_VERSION);
    let uploaded = upload(&ctx.client, lref, &control, urx, &ctx.timing, carry);
    let (outcome, (), uploaded) = tokio::join!(run, forward, uploaded);

    match uploaded {
        UploadEnd::Done { tail } if !control.is_lost() => {
            let req = FinishWithOutput { finish: FinishRequest { lease: lref, outcome }, output: tail };
            finish(&ctx, &control, req).await;
        }
        _ => tracing::warn!(job.id = %lease.job_id, job.attempt = lease.attempt,
            "lease lost while the job ran; it was stopped and its result dropped"),
    }
}

/// Reports `outcome` until acknowledged, the lease is lost, or the orchestrator refuses it for good.
/// Every retry sends the identical request, so a retry of a recorded finish is acknowledged again.
async fn finish(ctx: &JobContext, control: &JobControl, req: FinishWithOutput) {
    let lease = req.finish.lease;
    let mut backoff = Backoff::new(ctx.timing.retry_base, ctx.timing.retry_cap);
    loop {
        let result = tokio::select! {
            r = ctx.client.finish(&req) => r,
            () = control.lost() => Err(ClientError::Stale {
                code: "lost".into(),
                message: "a heartbeat reported the lease lost".into(),
            }),
        };
        match result {
            Ok(ack) => {
                tracing::info!(job.id = %lease.job_id, job.attempt = lease.attempt, state = ack.state,
                    status = ?req.finish.outcome.status, exit_code = req.finish.outcome.exit_code,
                    duration_ms = req.finish.outcome.duration_ms, carried_chunks = req.output.len(),
                    duplicate = ack.duplicate, "job finished");
                return;
            }
            Err(ClientError::Stale { code, .. }) => {
                tracing::warn!(job.id = %lease.job_id, job.attempt = lease.attempt, code,
                    "the lease was gone before the result was recorded; result dropped");
                return;
            }
            Err(e @ (ClientError::Transient(_) | ClientError::Unauthorized { .. })) => {
                let delay = backoff.next_delay();
                if backoff.worth_logging() {
                    tracing::warn!(job.id = %lease.job_id, error = %e, failures = backoff.failures(),
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "reporting the job's result failed; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {},
                    () = control.lost() => {},
                }
            }
            Err(e) => {
                tracing::error!(job.id = %lease.job_id, job.attempt = lease.attempt, error = %e,
                    "the orchestrator refused the job's result; giving up on it");
                return;
            }
        }
    }
}
