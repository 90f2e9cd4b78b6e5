//! The leases this node holds, with the controls that stop their jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use cynode_protocol::LeaseRef;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why a job was stopped before it ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Someone asked for the job to be cancelled: finish it as cancelled.
    CancelRequested,
    /// The agent is stopping: finish the job as cancelled.
    Shutdown,
}

/// Stops one job: `stop` makes the executor end it, `lost` says nothing more may be written about it.
#[derive(Debug, Default)]
pub(crate) struct JobControl {
    stop: CancellationToken,
    lost: CancellationToken,
    reason: Mutex<Option<StopReason>>,
}

impl JobControl {
    /// The token the executor watches.
    pub(crate) fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops the job; the first reason given is kept.
    pub(crate) fn cancel(&self, reason: StopReason) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.stop.cancel();
    }

    /// The lease is gone: stop the job and write nothing more about it.
    pub(crate) fn lose(&self) {
        self.lost.cancel();
        self.stop.cancel();
    }

    /// Whether the lease is gone.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Resolves when the lease is gone.
    pub(crate) async fn lost(&self) {
        self.lost.cancelled().await;
    }

    /// Why the job was stopped, if it was.
    pub(crate) fn reason(&self) -> Option<StopReason> {
        self.reason.lock().ok().and_then(|r| *r)
    }
}

/// Every lease held, by job id.
#[derive(Debug, Default)]
pub(crate) struct Held {
    leases: Mutex<HashMap<Uuid, (LeaseRef, Arc<JobControl>)>>,
    kick: Notify,
}

impl Held {
    fn map(&self) -> MutexGuard<'_, HashMap<Uuid, (LeaseRef, Arc<JobControl>)>> {
        // A poisoned lock only means a panic elsewhere; the map itself is always consistent.
        self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts holding `lease` and asks for a heartbeat now. An older attempt of the same job still held
    /// here is lost by definition.
    pub(crate) fn insert(&self, lease: LeaseRef) -> Arc<JobControl> {
        let control = Arc::new(JobControl::default());
        if let Some((_, old)) = self.map().insert(lease.job_id, (lease, control.clone())) {
            old.lose();
        }
        self.kick.notify_one();
        control
    }

    /// Stops holding `lease` (only if it is still the one held for its job).
    pub(crate) fn remove(&self, lease: &LeaseRef) {
        let mut map = self.map();
        if map.get(&lease.job_id).is_some_and(|(l, _)| l == lease) {
            map.remove(&lease.job_id);
        }
    }

    /// The leases to heartbeat (those not known to be lost).
    pub(crate) fn snapshot(&self) -> Vec<LeaseRef> {
        self.map().values().filter(|(_, c)| !c.is_lost()).map(|(l, _)| *l).collect()
    }

    /// The control of `job` if the held lease is `attempt`.
    pub(crate) fn control(&self, job: Uuid, attempt: i32) -> Option<Arc<JobControl>> {
        self.map().get(&job).filter(|(l, _)| l.attempt == attempt).map(|(_, c)| c.clone())
    }

    /// Stops every job for `reason`.
    pub(crate) fn cancel_all(&self, reason: StopReason) {
        for (_, c) in self.map().values() {
            c.cancel(reason);
        }
    }

    /// Number of leases held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// Resolves when a new lease wants an immediate heartbeat.
    pub(crate) async fn kicked(&self) {
        self.kick.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(job: Uuid, attempt: i32) -> LeaseRef {
        LeaseRef { job_id: job, attempt, lease_token: Uuid::new_v4() }
    }

    #[test]
    fn a_newer_attempt_replaces_and_loses_the_older_one() {
        let held = Held::default();
        let job = Uuid::new_v4();
        let (first, second) = (lease(job, 1), lease(job, 2));
        let old = held.insert(first);
        let new = held.insert(second);
        assert!(old.is_lost() && !new.is_lost());
        assert_eq!(held.snapshot(), vec![second]);
        held.remove(&first);
        assert_eq!(held.len(), 1, "removing the old attempt leaves the new one");
        assert!(held.control(job, 1).is_none() && held.control(job, 2).is_some());
    }

    #[test]
    fn the_first_stop_reason_wins_and_lost_leases_are_not_heartbeated() {
        let held = Held::default();
        let l = lease(Uuid::new_v4(), 1);
        let c = held.insert(l);
        held.cancel_all(StopReason::CancelRequested);
        c.cancel(StopReason::Shutdown);
        assert_eq!(c.reason(), Some(StopReason::CancelRequested));
        assert!(c.stop_token().is_cancelled() && !c.is_lost());
        c.lose();
        assert!(held.snapshot().is_empty());
    }
}
