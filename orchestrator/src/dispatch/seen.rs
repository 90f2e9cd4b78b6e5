//! When a node was last heard from: the lease loop and heartbeats write `nodes.last_seen_at`, at most every
//! [`SEEN_EVERY`] per node on each replica, so a node that polls is shown online and one that stops is shown
//! offline within [`crate::nodes::ONLINE_WITHIN`] — with one small write every few seconds per node, never one
//! per claim.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::Dispatcher;

/// The most often `last_seen_at` is written for one node by one replica.
pub const SEEN_EVERY: Duration = Duration::from_secs(3);

impl Dispatcher {
    /// Records that `node` was heard from now, unless this replica recorded it less than [`SEEN_EVERY`] ago. A
    /// failed write is logged and otherwise ignored: it must never cost a node its lease.
    pub(super) async fn mark_seen(&self, node: Uuid) {
        let due = match self.seen.lock() {
            Ok(mut seen) => {
                let now = Instant::now();
                match seen.get(&node) {
                    Some(at) if now.duration_since(*at) < SEEN_EVERY => false,
                    _ => {
                        if seen.len() > 4096 {
                            seen.retain(|_, at| now.duration_since(*at) < SEEN_EVERY);
                        }
                        seen.insert(node, now);
                        true
                    }
                }
            }
            Err(_) => false,
        };
        if !due {
            return;
        }
        if let Err(e) = sqlx::query("UPDATE nodes SET last_seen_at = now() WHERE id = $1 AND last_seen_at < now()")
            .bind(node)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(node.id = %node, error = %e, "could not record when the node was last seen");
        }
    }
}
