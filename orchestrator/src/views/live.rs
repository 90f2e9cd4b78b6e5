//! Push for task event streams: after committing a change that writes task events (a claim, a node's first
//! heartbeat, output, a finish, a re-queue), the writer announces the ids it touched (jobs, tasks) here, and the
//! event streams of this process that follow one of them read the log at once instead of at their next poll.
//!
//! It is a wake-up only, never the data: a stream reads `task_events` after every wake-up exactly as after a
//! poll, so order, gaplessness and resumption stay the log's. Writers on other replicas do not reach it; streams
//! keep polling as the fallback that needs nothing shared between replicas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;
use uuid::Uuid;

/// Who follows which ids. Cheap when nobody does (one lock, an empty map).
#[derive(Debug, Default)]
pub struct EventHub {
    followers: Mutex<HashMap<Uuid, Vec<Weak<Notify>>>>,
}

impl EventHub {
    /// A new hub.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Wakes the followers of any of `ids` (call after the commit).
    pub fn announce(&self, ids: impl IntoIterator<Item = Uuid>) {
        let Ok(followers) = self.followers.lock() else { return };
        if followers.is_empty() {
            return;
        }
        for id in ids {
            for f in followers.get(&id).into_iter().flatten() {
                if let Some(n) = f.upgrade() {
                    // A stored permit: a follower busy reading still reads again once it is done.
                    n.notify_one();
                }
            }
        }
    }

    /// A follower with nothing followed yet.
    pub fn follower(self: &Arc<Self>) -> Follower {
        Follower { hub: self.clone(), notify: Arc::new(Notify::new()), ids: Vec::new() }
    }
}

/// Follows some ids until dropped.
#[derive(Debug)]
pub struct Follower {
    hub: Arc<EventHub>,
    notify: Arc<Notify>,
    ids: Vec<Uuid>,
}

impl Follower {
    /// Also wakes on announcements of `id` (no-op when already followed).
    pub fn follow(&mut self, id: Uuid) {
        if self.ids.contains(&id) {
            return;
        }
        self.ids.push(id);
        if let Ok(mut f) = self.hub.followers.lock() {
            f.entry(id).or_default().push(Arc::downgrade(&self.notify));
        }
    }

    /// Waits for an announcement of a followed id (one that came since the last wait counts).
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let Ok(mut f) = self.hub.followers.lock() else { return };
        for id in &self.ids {
            if let Some(list) = f.get_mut(id) {
                list.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.notify)));
                if list.is_empty() {
                    f.remove(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_follower_wakes_for_its_ids_only_and_leaves_nothing_behind() {
        let hub = EventHub::new();
        let (task, job, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut f = hub.follower();
        f.follow(task);
        f.follow(job);
        f.follow(job);
        hub.announce([other]);
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), f.wait()).await.is_err());
        // Announced before the wait: not lost.
        hub.announce([job]);
        f.wait().await;
        drop(f);
        assert!(hub.followers.lock().expect("lock").is_empty());
    }
}
