//! Removing a sandbox after its job, also when the run future is dropped or the engine is briefly
//! unreachable (restarting, socket proxy cut): then removal is retried in the background until the engine
//! answers again, for up to [`REMOVE_RETRY_FOR`].

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::engine::{Engine, remove_forced};
use super::error::{ExecError, is_not_found};

/// How long removal is retried while the engine cannot be reached.
pub const REMOVE_RETRY_FOR: Duration = Duration::from_secs(300);

/// Background work on a container (renaming a warm one) that must be called off, or have finished, before
/// the container is removed: the engine may resurrect a removed container in its listings when a rename
/// completes after the removal.
pub(super) struct Pending {
    /// Calls the work off if it has not begun.
    pub(super) call_off: CancellationToken,
    /// The work.
    pub(super) task: JoinHandle<()>,
}

impl Pending {
    async fn settle(self) {
        self.call_off.cancel();
        let _ = self.task.await;
    }
}

/// Removes the container when dropped unless [`RemoveGuard::remove_now`] already did, so a dropped `run`
/// future leaves nothing behind.
pub(super) struct RemoveGuard {
    engine: Engine,
    pub(super) id: String,
    armed: bool,
    pending: Option<Pending>,
}

impl RemoveGuard {
    pub(super) fn new(engine: Engine, id: String) -> Self {
        Self { engine, id, armed: true, pending: None }
    }

    /// Makes removal wait for (or call off) `pending` first.
    pub(super) fn after(&mut self, pending: Option<Pending>) {
        self.pending = pending;
    }

    /// Removes the container now (retrying in the background if the engine is unreachable).
    pub(super) async fn remove_now(&mut self) {
        self.armed = false;
        if let Some(pending) = self.pending.take() {
            pending.settle().await;
        }
        remove_or_retry(self.engine.clone(), std::mem::take(&mut self.id)).await;
    }
}

impl Drop for RemoveGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (engine, id, pending) = (self.engine.clone(), std::mem::take(&mut self.id), self.pending.take());
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Some(pending) = pending {
                        pending.settle().await;
                    }
                    remove_or_retry(engine, id).await;
                });
            }
            Err(_) => tracing::warn!(
                container.id = %id,
                "sandbox container left behind (no runtime to remove it); the next start cleans it up"
            ),
        }
    }
}

/// Force-removes `id` (a container id or name); when the engine cannot be reached, keeps trying in a
/// background task.
pub(super) async fn remove_or_retry(engine: Engine, id: String) {
    let err = match remove_forced(&engine, &id).await {
        Ok(()) => return,
        Err(e) if is_not_found(&e) => return,
        Err(e) => engine.err("remove the sandbox", e),
    };
    if !matches!(err, ExecError::EngineUnavailable { .. }) {
        tracing::warn!(container.id = %id, error = %err, "sandbox container left behind; the next start cleans it up");
        return;
    }
    tracing::warn!(container.id = %id, error = %err, "cannot remove the sandbox yet; retrying until the engine answers");
    tokio::spawn(async move {
        let give_up = Instant::now() + REMOVE_RETRY_FOR;
        let mut delay = Duration::from_millis(250);
        while Instant::now() < give_up {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            match remove_forced(&engine, &id).await {
                Ok(()) => {
                    tracing::info!(container.id = %id, "sandbox removed after the engine came back");
                    return;
                }
                Err(e) if is_not_found(&e) => return,
                Err(_) => {}
            }
        }
        tracing::warn!(container.id = %id, "sandbox container left behind; the next start cleans it up");
    });
}
