//! Writes attempt outcomes from one task: successes in batches (one statement and one commit for many),
//! everything else one at a time. However many requests are in flight, the deliverer holds at most two database
//! connections (this task and the claim loop), so it cannot starve the rest of the gateway's pool.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::DelivererSettings;
use super::record::{self, Claimed};
use super::send::Outcome;
use crate::outbox::OutboxWaker;

/// Most outcomes written per batch.
const MAX_BATCH: usize = 256;
/// Pauses between tries of a failed batch write; after the last, the claims expire and are retried.
const BACKOFF: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(250)];

/// One finished attempt, with the concurrency permit it holds until its outcome is written.
pub(super) struct Done {
    pub claimed: Claimed,
    pub outcome: Outcome,
    pub duration_ms: u64,
    #[expect(dead_code, reason = "held, never read: dropping it frees the concurrency slot")]
    pub permit: OwnedSemaphorePermit,
}

/// Runs until every sender is gone.
pub(super) async fn run(pool: PgPool, settings: DelivererSettings, waker: OutboxWaker, mut rx: mpsc::Receiver<Done>) {
    let mut buf = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut buf, MAX_BATCH).await > 0 {
        let (ok, other): (Vec<Done>, Vec<Done>) =
            buf.drain(..).partition(|d| matches!(d.outcome, Outcome::Delivered { .. }));
        if !ok.is_empty() {
            write_delivered(&pool, &ok).await;
        }
        for d in &other {
            write_one(&pool, &settings, d).await;
        }
        let retry_soon = !other.is_empty();
        // Dropping them releases the permits.
        drop((ok, other));
        if retry_soon {
            // A retry may now be due sooner than the claim loop's current nap.
            waker.announce();
        }
    }
}

async fn write_delivered(pool: &PgPool, batch: &[Done]) {
    let mut tries = BACKOFF.iter();
    loop {
        match record::delivered_batch(pool, batch).await {
            Ok(()) => return,
            Err(e) => match tries.next() {
                Some(pause) => tokio::time::sleep(*pause).await,
                None => {
                    // The claims expire and the deliveries are sent again: at-least-once.
                    tracing::warn!(error = %e, deliveries = batch.len(), "recording delivered webhooks failed");
                    return;
                }
            },
        }
    }
}

/// Writes one outcome; used for failures and when the recorder is gone.
pub(super) async fn write_one(pool: &PgPool, settings: &DelivererSettings, d: &Done) {
    if let Err(e) = record::outcome(pool, settings, &d.claimed, &d.outcome, d.duration_ms).await {
        tracing::warn!(delivery.id = %d.claimed.id, error = %e, "recording a webhook delivery outcome failed");
    }
}
