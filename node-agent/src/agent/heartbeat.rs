//! The heartbeat task: every heartbeat interval (and right after a job starts) it names every held lease
//! to the orchestrator, which extends them and answers with the jobs to cancel and the leases this node
//! no longer holds. Failures are retried on the next beat: a node cut off from the orchestrator keeps its
//! jobs running, and learns what it lost when it gets through again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::held::{Held, StopReason};
use crate::client::OrchestratorClient;

/// Beats until `stop` is cancelled.
pub(crate) async fn heartbeat_loop(
    client: Arc<OrchestratorClient>,
    held: Arc<Held>,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = held.kicked() => {}
            () = stop.cancelled() => return,
        }
        let leases = held.snapshot();
        if leases.is_empty() {
            continue;
        }
        let sent: HashMap<_, _> = leases.iter().map(|l| (l.job_id, l.attempt)).collect();
        let answer = tokio::select! {
            r = client.heartbeat(&leases) => r,
            () = stop.cancelled() => return,
        };
        match answer {
            Ok(r) => {
                if failures > 0 {
                    tracing::info!(failures, "heartbeats are getting through again");
                    failures = 0;
                }
                // Apply the answer only to the attempts it was about (a job may have been re-leased since).
                let control = |id| sent.get(&id).and_then(|attempt| held.control(id, *attempt));
                for id in r.cancel {
                    if let Some(c) = control(id) {
                        tracing::info!(job.id = %id, "cancellation requested; stopping the job");
                        c.cancel(StopReason::CancelRequested);
                    }
                }
                for id in r.lost {
                    if let Some(c) = control(id) {
                        tracing::warn!(job.id = %id, "the orchestrator says this node no longer holds the lease; \
                            stopping the job and writing nothing more about it");
                        c.lose();
                    }
                }
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(10) {
                    tracing::warn!(error = %e, failures, leases = leases.len(),
                        "heartbeat failed; jobs keep running and the next beat retries");
                }
            }
        }
    }
}
