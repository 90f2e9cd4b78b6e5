//! The lease loop: while slots are free, long-poll the orchestrator for that many jobs and run each in
//! its own task. Transient failures are retried with backoff (running jobs are unaffected); a refusal
//! that retrying cannot fix ends the loop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::job::{JobContext, run_lease};
use crate::client::{Backoff, ClientError};

/// Resolves once `true` is sent or the sender is dropped.
pub(crate) async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Leases and starts jobs until `shutdown`; returns an error only for a refusal retrying cannot fix.
pub(crate) async fn lease_loop(
    ctx: &Arc<JobContext>,
    max_jobs: u32,
    wait: Duration,
    shutdown: &mut watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> Result<(), ClientError> {
    let slots = Arc::new(Semaphore::new(usize::try_from(max_jobs).unwrap_or(1)));
    let mut backoff = Backoff::new(ctx.timing.retry_base, ctx.timing.retry_cap);
    loop {
        reap(tasks);
        let mut permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
            () = stop_requested(shutdown) => return Ok(()),
        };
        let free = u32::try_from(slots.available_permits()).unwrap_or(0);
        if free > 0
            && let Ok(more) = slots.clone().try_acquire_many_owned(free)
        {
            permit.merge(more);
        }
        let want = u32::try_from(permit.num_permits()).unwrap_or(1);
        // Dropping an in-flight poll at shutdown is safe: a job leased meanwhile is re-queued when its
        // lease expires.
        let result = tokio::select! {
            r = ctx.client.lease(want, wait) => r,
            () = stop_requested(shutdown) => return Ok(()),
        };
        match result {
            Ok(leases) => {
                if backoff.failures() > 0 {
                    tracing::info!(failures = backoff.failures(), "the orchestrator is reachable again");
                }
                backoff.reset();
                for lease in leases {
                    tasks.spawn(run_lease(ctx.clone(), lease, permit.split(1)));
                }
            }
            Err(e) if e.is_transient() => {
                drop(permit);
                let delay = backoff.next_delay();
                if backoff.worth_logging() {
                    tracing::warn!(error = %e, failures = backoff.failures(),
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "cannot lease jobs; retrying (running jobs continue)");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop_requested(shutdown) => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Collects finished job tasks, reporting any that panicked.
fn reap(tasks: &mut JoinSet<()>) {
    while let Some(done) = tasks.try_join_next() {
        if let Err(e) = done
            && e.is_panic()
        {
            tracing::error!(error = %e, "a job task panicked; its lease is released");
        }
    }
}
