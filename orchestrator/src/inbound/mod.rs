//! The durable record of inbound requests, on the ingress hot path, and their interpretation.
//!
//! [`Recorder::record`] hands a verified [`Inbound`] to a small pool of writer tasks that **group-commit**: each
//! takes whatever is pending (up to [`RecorderSettings::max_batch`], lingering at most
//! [`RecorderSettings::linger`] for more) and writes it with one multi-row statement, one transaction, one
//! fsync: `inbound_events` (`ON CONFLICT (platform, install_id, delivery_id) DO NOTHING`), the conversations
//! (upserted), and a `tasks` row per new event. Each caller then learns its own result: [`Recorded::New`] or
//! [`Recorded::Duplicate`]. A duplicate delivery creates nothing, however many race (the unique key decides).
//!
//! Tasks are recorded in state `received`; the [`interpreter`] (any replica, crash-safe) runs them through
//! [`crate::commands::Commands`] afterwards, so the platform's ack never waits for a command to run.
//!
//! Invariants:
//! - one `inbound_events` row per `(platform, install, delivery id)`, and at most one task per event
//!   (`tasks.inbound_id` is unique), created in the same transaction;
//! - a request with a [`NewInbound::replay_key`] (a webhook whose delivery id is unsigned) is new only when
//!   no request of its install carried the same key within [`RecorderSettings::replay_window`]: the key's
//!   row in `inbound_replay_keys` is inserted or, once older than the window, renewed by the same statement,
//!   so two racing copies cannot both pass;
//! - rows of one batch are written in dedupe-key order, so concurrent writers cannot deadlock on the key;
//! - a batch that fails for a data reason is retried row by row, so one odd request cannot fail others.

mod batch;
pub mod interpreter;
mod plan;

use std::sync::Arc;
use std::time::Duration;

use cynode_adapters::{Inbound, ThreadRef};
use sqlx::{Executor as _, PgPool};
use tokio::sync::{Notify, mpsc, oneshot};
use uuid::Uuid;

pub use interpreter::{InterpreterSettings, spawn_interpreter};

/// A verified request to record.
#[derive(Debug, Clone)]
pub struct NewInbound {
    /// The install it came through.
    pub install_id: Uuid,
    /// The neutral request.
    pub inbound: Inbound,
    /// The platform's redelivery information.
    pub retry: Retry,
    /// The SHA-256 of the raw body when the delivery id is not covered by the signature (GitHub-style
    /// webhooks, see `cynode_adapters::webhook::replay_key`): a second request of the same install with the
    /// same key within [`RecorderSettings::replay_window`] is a [`Recorded::Duplicate`] whatever its delivery
    /// id. `None` for every other request.
    pub replay_key: Option<[u8; 32]>,
}

/// A platform's redelivery headers (Slack `X-Slack-Retry-Num` and `X-Slack-Retry-Reason`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retry {
    /// The attempt number (1 for the first retry).
    pub num: Option<i32>,
    /// Why the platform retried (`http_timeout`, …).
    pub reason: Option<String>,
}

/// What recording did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new delivery: the event and its task were created.
    New {
        /// The `inbound_events` row.
        inbound_id: Uuid,
        /// The task (state `received`, or `answered` when there is nothing to run).
        task_id: Uuid,
    },
    /// This delivery was recorded before; nothing was created.
    Duplicate,
}

/// Why a request could not be recorded. The message carries no request content.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InboundError {
    /// The recorder has stopped (the process is shutting down).
    #[error("the inbound recorder has stopped")]
    Closed,
    /// The store refused or failed the write.
    #[error("recording the request failed: {0}")]
    Store(String),
}

/// Group-commit tuning.
#[derive(Debug, Clone)]
pub struct RecorderSettings {
    /// The most requests written in one transaction.
    pub max_batch: usize,
    /// How long a writer waits for more requests once it has one (zero: take only what is already queued).
    pub linger: Duration,
    /// Writer tasks (each holds at most one connection; one collects while the others commit).
    pub writers: usize,
    /// Requests waiting for a writer before callers wait to enqueue (backpressure).
    pub queue: usize,
    /// How long a body hash ([`NewInbound::replay_key`]) is remembered: the same body again on the same
    /// install within this time is a duplicate (zero: no body-hash deduplication).
    pub replay_window: Duration,
}

impl Default for RecorderSettings {
    /// 64 a batch, 500 µs linger, 2 writers, a queue of 8192, a 24-hour replay window.
    fn default() -> Self {
        Self {
            max_batch: 64,
            linger: Duration::from_micros(500),
            writers: 2,
            queue: 8192,
            replay_window: Duration::from_secs(24 * 3600),
        }
    }
}

struct Pending {
    row: plan::Prepared,
    done: oneshot::Sender<Result<Recorded, InboundError>>,
}

/// Records inbound requests with group commit. Cheap to clone; the writers stop when the last clone is dropped.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("queued", &(self.queue.max_capacity() - self.queue.capacity())).finish()
    }
}

impl Recorder {
    /// Starts the writers. `wake` is notified after a batch that created tasks to interpret.
    ///
    /// The writers get their own connections (one each, opened on first use with `pool`'s options), so recording
    /// never waits behind other work for a pooled connection; their one statement always runs with its generic
    /// plan (nothing in it depends on the values), which saves planning it for every batch.
    pub fn start(pool: &PgPool, settings: RecorderSettings, wake: Arc<Notify>) -> Self {
        let (queue, rx) = mpsc::channel(settings.queue.max(1));
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let writers = settings.writers.max(1);
        let options = pool.connect_options().as_ref().clone().application_name("cynode ingress");
        let pool = crate::store::sibling_options(pool, u32::try_from(writers).unwrap_or(u32::MAX))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET plan_cache_mode = force_generic_plan").await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        for _ in 0..writers {
            let writer = batch::Writer { pool: pool.clone(), settings: settings.clone(), wake: wake.clone() };
            tokio::spawn(writer.run(rx.clone()));
        }
        if !settings.replay_window.is_zero() {
            tokio::spawn(prune_replay_keys_while(pool, settings.replay_window, queue.downgrade()));
        }
        Self { queue }
    }

    /// Records one request durably and says whether it was new. The work is prepared on the caller's task; the
    /// write joins the next batch. Dropping the future does not cancel the write.
    ///
    /// # Errors
    /// [`InboundError`] when the write failed (nothing was recorded for this request) or the recorder stopped.
    pub async fn record(&self, new: NewInbound) -> Result<Recorded, InboundError> {
        let (done, result) = oneshot::channel();
        let pending = Pending { row: plan::Prepared::new(new), done };
        self.queue.send(pending).await.map_err(|_| InboundError::Closed)?;
        result.await.map_err(|_| InboundError::Closed)?
    }
}

/// How often a recorder forgets replay keys older than its window.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Deletes the replay keys ([`NewInbound::replay_key`]) last seen longer than `window` ago — they no longer make
/// anything a duplicate. Returns how many were deleted.
///
/// # Errors
/// Store failures.
pub async fn prune_replay_keys(pool: &PgPool, window: Duration) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM inbound_replay_keys WHERE seen_at < now() - make_interval(secs => $1)")
        .bind(window.as_secs_f64())
        .execute(pool)
        .await?;
    Ok(deleted.rows_affected())
}

/// Prunes every [`PRUNE_EVERY`] until the recorder is gone (any replica may; deleting twice is harmless).
async fn prune_replay_keys_while(pool: PgPool, window: Duration, recorder: mpsc::WeakSender<Pending>) {
    let mut ticks = tokio::time::interval(PRUNE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if recorder.upgrade().is_none() {
            return;
        }
        if let Err(e) = prune_replay_keys(&pool, window).await {
            tracing::debug!(error = %e, "pruning webhook replay keys failed");
        }
    }
}

/// A notice to deliver into a thread without running anything (for example "slow down" for a user over their
/// rate limit): an `answered` task with the text as its reply, in the conversation of `thread`.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    /// The install.
    pub install_id: Uuid,
    /// Where to deliver it.
    pub thread: &'a ThreadRef,
    /// Who it is for.
    pub requester: &'a str,
    /// The text.
    pub text: &'a str,
}

/// Records a [`Notice`] (one statement). Returns the task id.
///
/// # Errors
/// Store failures.
pub async fn record_notice(pool: &PgPool, notice: &Notice<'_>) -> Result<Uuid, sqlx::Error> {
    let task = Uuid::now_v7();
    let thread_ref = serde_json::to_value(ThreadRef { reply_to: None, ..notice.thread.clone() }).unwrap_or_default();
    let mut thread_ref = thread_ref;
    plan::sanitize(&mut thread_ref);
    sqlx::query(
        "WITH conv AS (
             INSERT INTO conversations (id, install_id, channel, thread, thread_ref) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (install_id, channel, thread) DO UPDATE SET thread_ref = EXCLUDED.thread_ref
             RETURNING id)
         INSERT INTO tasks (id, conversation_id, install_id, requester, source, command, state, reply)
         SELECT $6, conv.id, $2, $7, 'chat', 'notice', 'answered', $8 FROM conv",
    )
    .bind(Uuid::now_v7())
    .bind(notice.install_id)
    .bind(plan::clean(&notice.thread.channel))
    .bind(notice.thread.thread.as_deref().map(plan::clean).unwrap_or_default())
    .bind(&thread_ref)
    .bind(task)
    .bind(plan::clean(notice.requester))
    .bind(plan::clean(notice.text))
    .execute(pool)
    .await?;
    Ok(task)
}
