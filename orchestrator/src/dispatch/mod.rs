//! Dispatch: jobs are leased to nodes that pull them, leases are extended by heartbeats and fenced by a
//! token, output and results are accepted only from the current lease, and a reaper re-queues what dead nodes
//! held.
//!
//! Invariants (each pinned by a test that races real claims):
//! - a job is leased to at most one node at a time: a claim is one `UPDATE … FROM (SELECT … FOR UPDATE SKIP
//!   LOCKED)` statement;
//! - every write from a node names `(job, attempt, lease_token)`; re-queueing clears the token, so a node that
//!   comes back from a partition cannot write over a newer attempt;
//! - output chunks are idempotent by `(job, attempt, stream, seq)`; finish is idempotent, and a retry with a
//!   different outcome is refused;
//! - finishes are group-committed ([`finish`]): many in one transaction, each fenced by its own lease, so a
//!   stale one in a batch changes nothing and does not affect the others.

pub mod feasible;
mod finish;
mod lease;
mod reaper;
mod seen;
mod unschedulable;
mod wake;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cynode_protocol::Capabilities;
use sqlx::PgPool;
use uuid::Uuid;

use lease::check_chunks;
pub use reaper::ReapReport;
pub use seen::SEEN_EVERY;
pub use wake::Waker;

/// Timing of leases and polling. Defaults re-queue a dead node's job within about 5 s.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// How often nodes heartbeat their leases.
    pub heartbeat_interval: Duration,
    /// A lease not heartbeated for this long expires.
    pub lease_ttl: Duration,
    /// Longest long-poll a node may ask for.
    pub max_wait: Duration,
    /// Re-check for work this often even without a notification (fallback for lost notifications).
    pub poll_fallback: Duration,
    /// How often the reaper looks for expired leases.
    pub reap_interval: Duration,
    /// Backoff before the second attempt; doubles per attempt, capped at 60 s. The first re-queue is immediate.
    pub retry_base: Duration,
    /// How long a job preferring a node (co-location) waits for it before any node may take it.
    pub prefer_window: Duration,
    /// Extra seconds past a job's own timeout before the orchestrator declares it timed out.
    pub timeout_grace: Duration,
    /// Lifetime of node tokens.
    pub token_ttl: Duration,
    /// The most finishes settled in one transaction (group commit).
    pub finish_batch: usize,
    /// Finish writer tasks (each holds at most one connection; one gathers a batch while another commits).
    pub finish_writers: usize,
    /// Claims commit without waiting for their WAL flush (`synchronous_commit = off` for the claim only),
    /// taking one disk flush off the enqueue→lease path. Fencing stays intact: a claim lost in a database
    /// crash is a lease whose token no longer exists, so the node's writes are refused and the job is queued
    /// again, and any durable commit after it (a finish, an output upload) flushes it first. But the job's
    /// `leased` entry in `task_events` may be seen by a reader before a crash loses it, which breaks the event
    /// log's resume guarantee in that window (≤ about 0.6 s before a database crash). Off by default.
    pub async_claims: bool,
    /// A job that no online node could take when it was queued ([`feasible`]) and that is still queued and still
    /// unschedulable this long after is failed with the reason (`dispatch.unschedulable_after_s`). Zero refuses
    /// such work at once instead of queueing it.
    pub unschedulable_after: Duration,
    /// How often an open task event stream (SSE) re-reads the log when no writer in its process announced a
    /// change ([`crate::views::live`]): the fallback for changes written through another replica.
    pub event_poll_fallback: Duration,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            lease_ttl: Duration::from_secs(4),
            max_wait: Duration::from_secs(25),
            poll_fallback: Duration::from_secs(1),
            reap_interval: Duration::from_millis(500),
            retry_base: Duration::from_secs(2),
            prefer_window: Duration::from_secs(2),
            timeout_grace: Duration::from_secs(30),
            token_ttl: Duration::from_secs(15 * 60),
            finish_batch: 128,
            finish_writers: 2,
            async_claims: false,
            unschedulable_after: Duration::from_secs(300),
            event_poll_fallback: Duration::from_millis(200),
        }
    }
}

/// Why a node's request was refused. Each maps to a 4xx with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The lease named is not the job's current lease (older attempt, re-queued, finished, other node).
    #[error("lease is no longer held (the job was re-queued, finished or timed out); stop work on it")]
    StaleLease,
    /// A finish retry whose outcome differs from the recorded one.
    #[error("a different outcome was already recorded for this attempt")]
    ConflictingFinish,
    /// No such job.
    #[error("no such job")]
    UnknownJob,
    /// The node or its key is gone.
    #[error("node is not registered (or its key was revoked); register again")]
    UnknownNode,
    /// A malformed request.
    #[error("{0}")]
    Invalid(String),
    /// Store failure.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl DispatchError {
    /// Stable code for responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::StaleLease => "stale_lease",
            Self::ConflictingFinish => "conflicting_finish",
            Self::UnknownJob => "unknown_job",
            Self::UnknownNode => "unknown_node",
            Self::Invalid(_) => "invalid_request",
            Self::Db(_) => "internal",
        }
    }
}

/// Hands jobs to nodes. One per process; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Dispatcher {
    pool: PgPool,
    settings: DispatchSettings,
    waker: Waker,
    caps: Mutex<HashMap<Uuid, (Instant, Arc<Capabilities>)>>,
    /// When this replica last wrote each node's `last_seen_at` ([`seen`]).
    seen: Mutex<HashMap<Uuid, Instant>>,
    outbox: std::sync::OnceLock<crate::outbox::OutboxWaker>,
    /// Started on the first finish (inside the runtime).
    finisher: std::sync::OnceLock<finish::Finisher>,
    /// Jobs whose finish this process recorded, for waiters on this replica (agent turns).
    finished: tokio::sync::broadcast::Sender<Uuid>,
    /// Wakes this process's task event streams after writes that add task events.
    events: Arc<crate::views::live::EventHub>,
}

const CAPS_TTL: Duration = Duration::from_secs(5);

impl Dispatcher {
    /// A dispatcher over `pool`.
    pub fn new(pool: PgPool, settings: DispatchSettings) -> Arc<Self> {
        let waker = Waker::new(pool.clone());
        Arc::new(Self {
            pool,
            settings,
            waker,
            caps: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
            outbox: std::sync::OnceLock::new(),
            finisher: std::sync::OnceLock::new(),
            finished: tokio::sync::broadcast::channel(1024).0,
            events: crate::views::live::EventHub::new(),
        })
    }

    /// Ids of the jobs whose finish this process records from now on (a lagging receiver misses some: waiters
    /// keep a polling fallback, which also covers finishes recorded by other replicas).
    pub fn finished(&self) -> tokio::sync::broadcast::Receiver<Uuid> {
        self.finished.subscribe()
    }

    /// The settings.
    pub fn settings(&self) -> &DispatchSettings {
        &self.settings
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The push side of task event streams ([`crate::views::live`]): writers announce what they changed.
    pub fn events(&self) -> &Arc<crate::views::live::EventHub> {
        &self.events
    }

    /// Tells waiting nodes (here and on other replicas) that work may be runnable. Call after committing.
    pub fn announce(&self) {
        self.waker.announce();
    }

    /// Starts the background loops: notification listener, notifier, reaper. They stop when `shutdown` fires.
    pub fn spawn_background(self: &Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        self.waker.spawn(shutdown.clone());
        let me = self.clone();
        tokio::spawn(async move { me.reap_loop(shutdown).await });
    }

    async fn node_caps(&self, node: Uuid) -> Result<Arc<Capabilities>, DispatchError> {
        if let Some((at, caps)) = self.caps.lock().map_err(|_| DispatchError::UnknownNode)?.get(&node)
            && at.elapsed() < CAPS_TTL
        {
            return Ok(caps.clone());
        }
        let caps = crate::nodes::capabilities(&self.pool, node).await?.ok_or(DispatchError::UnknownNode)?;
        let caps = Arc::new(caps);
        if let Ok(mut cache) = self.caps.lock() {
            cache.retain(|_, (at, _)| at.elapsed() < CAPS_TTL);
            cache.insert(node, (Instant::now(), caps.clone()));
        }
        Ok(caps)
    }

    /// Lets this dispatcher (and the commands that share it) wake the webhook deliverer after emitting events.
    pub fn set_outbox_waker(&self, waker: crate::outbox::OutboxWaker) {
        let _ = self.outbox.set(waker);
    }

    /// Wakes the local webhook deliverer (after a transaction that emitted events committed).
    pub fn announce_outbox(&self) {
        if let Some(w) = self.outbox.get() {
            w.announce();
        }
    }

    /// Forgets cached capabilities (after a re-registration).
    pub fn forget_node(&self, node: Uuid) {
        if let Ok(mut cache) = self.caps.lock() {
            cache.remove(&node);
        }
    }
}
