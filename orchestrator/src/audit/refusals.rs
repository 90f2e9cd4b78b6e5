//! Refused ingress in the audit log without putting the chain on the refusal path: refusals are counted in memory
//! per (source, reason) and written as one `ingress.refused` entry per key and flush interval (count, first and
//! last time). A flood of forged requests costs a counter increment each, not a chain append.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The most distinct (source, reason) keys held between flushes; more are counted under reason `other`.
const MAX_KEYS: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Window {
    count: u64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

/// Refusals counted since the last flush.
#[derive(Debug, Default)]
pub struct Refusals {
    counts: Mutex<BTreeMap<(String, String), Window>>,
}

impl Refusals {
    /// Counts one refused request from `source` (a platform name, `api`) for `reason` (a fixed reason code, never
    /// request content).
    pub fn note(&self, source: &str, reason: &str) {
        let now = Utc::now();
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut key = (source.to_string(), reason.to_string());
        if counts.len() >= MAX_KEYS && !counts.contains_key(&key) {
            key.1 = "other".into();
        }
        let w = counts.entry(key).or_insert(Window { count: 0, first: now, last: now });
        w.count += 1;
        w.last = now;
    }

    /// Writes what was counted as audit entries, one per key, in one transaction; returns how many. Counts taken
    /// out are put back when the write fails, so nothing is lost.
    ///
    /// # Errors
    /// Store failures.
    pub async fn flush(&self, pool: &PgPool) -> Result<usize, sqlx::Error> {
        let taken = std::mem::take(&mut *self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if taken.is_empty() {
            return Ok(0);
        }
        let written = async {
            let mut tx = pool.begin().await?;
            for ((source, reason), w) in &taken {
                let detail = serde_json::json!({
                    "reason": reason, "count": w.count, "first": w.first, "last": w.last,
                });
                super::append(&mut tx, "ingress", "ingress.refused", source, &detail).await?;
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = written {
            let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (key, w) in taken {
                let c = counts.entry(key).or_insert(Window { count: 0, first: w.first, last: w.last });
                c.count += w.count;
                c.first = c.first.min(w.first);
                c.last = c.last.max(w.last);
            }
            return Err(e);
        }
        Ok(taken.len())
    }

    /// Flushes every `every` until `shutdown` fires, then once more.
    pub fn spawn_flusher(
        self: Arc<Self>,
        pool: PgPool,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let stop = tokio::select! {
                    _ = tick.tick() => false,
                    _ = shutdown.changed() => true,
                };
                if let Err(e) = self.flush(&pool).await {
                    tracing::warn!(error = %e, "refused requests not written to the audit log yet; retrying");
                }
                if stop {
                    return;
                }
            }
        })
    }
}
