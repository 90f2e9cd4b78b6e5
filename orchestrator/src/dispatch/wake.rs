//! Prompt wake-ups: a local `Notify` for nodes long-polling this replica, and PostgreSQL `NOTIFY` (sent after
//! commit, outside busy transactions, coalesced) for the other replicas. Nodes also re-check on a timer, so a
//! lost notification delays work by at most the fallback interval.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, watch};

/// The notification channel.
pub const CHANNEL: &str = "cynode_jobs";

/// Wakes long-polling nodes.
#[derive(Debug)]
pub struct Waker {
    local: Arc<Notify>,
    pending: watch::Sender<u64>,
    pool: PgPool,
}

impl Waker {
    pub(super) fn new(pool: PgPool) -> Self {
        Self { local: Arc::new(Notify::new()), pending: watch::Sender::new(0), pool }
    }

    /// Wakes local waiters now and schedules one `NOTIFY` for other replicas (many announcements in a burst
    /// become one notification).
    pub fn announce(&self) {
        self.local.notify_waiters();
        self.pending.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The local notifier, for waiters.
    pub fn local(&self) -> &Notify {
        &self.local
    }

    pub(super) fn spawn(&self, shutdown: watch::Receiver<bool>) {
        let mut rx = self.pending.subscribe();
        let pool = self.pool.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return },
                    _ = stop.changed() => return,
                }
                if let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&pool).await {
                    tracing::warn!(error = %e, "could not send the job notification; nodes will poll");
                }
            }
        });
        let local = self.local.clone();
        let pool = self.pool.clone();
        let mut stop = shutdown;
        tokio::spawn(async move {
            loop {
                match listen(&pool, &local, &mut stop).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "job notification listener failed; reconnecting");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {},
                            _ = stop.changed() => return,
                        }
                    }
                }
            }
        });
    }
}

async fn listen(pool: &PgPool, local: &Notify, stop: &mut watch::Receiver<bool>) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    loop {
        tokio::select! {
            n = listener.recv() => {
                n?;
                local.notify_waiters();
            }
            _ = stop.changed() => return Ok(()),
        }
    }
}
