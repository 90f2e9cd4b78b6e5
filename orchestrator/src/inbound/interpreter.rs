//! The interpreter: runs recorded tasks (state `received`) through the commands, on any replica.
//!
//! A claim is one statement (`UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED)`) that marks a batch of tasks
//! as held until `claimed_until`; if the replica dies, the claim lapses and another replica takes the tasks
//! over. Wake-ups come from the local recorder (a `Notify`) with a polling fallback for tasks recorded by other
//! replicas. Every write that finishes a task applies only while it is still `received`, so a task taken over
//! after a lapsed claim is never answered twice or given two jobs. A task whose claim lapsed too often is failed
//! with a reply instead of being retried forever.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::commands::Commands;
use crate::tasks::{self, Origin, TaskReply};

/// Interpreter tuning.
#[derive(Debug, Clone)]
pub struct InterpreterSettings {
    /// Tasks claimed per statement.
    pub batch: i64,
    /// Tasks of one batch interpreted concurrently.
    pub concurrency: usize,
    /// How often to look for work without a wake-up (tasks recorded by other replicas, lapsed claims).
    pub poll: Duration,
    /// How long a claim holds a task before another replica may take it over.
    pub claim_ttl: Duration,
    /// Claims after which a task is failed instead of retried.
    pub max_attempts: i32,
}

impl Default for InterpreterSettings {
    fn default() -> Self {
        Self {
            batch: 64,
            concurrency: 8,
            poll: Duration::from_secs(1),
            claim_ttl: Duration::from_secs(30),
            max_attempts: 5,
        }
    }
}

const CLAIM: &str = "
UPDATE tasks t
SET claimed_until = now() + $2 * interval '1 millisecond', interpret_attempts = t.interpret_attempts + 1
FROM (SELECT id FROM tasks
      WHERE state = 'received' AND (claimed_until IS NULL OR claimed_until < now())
      ORDER BY created_at
      LIMIT $1
      FOR UPDATE SKIP LOCKED) picked
WHERE t.id = picked.id
RETURNING t.id, t.install_id, t.conversation_id, t.inbound_id, t.requester, t.source, t.text, t.interpret_attempts";

#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    install_id: Option<Uuid>,
    conversation_id: Option<Uuid>,
    inbound_id: Option<Uuid>,
    requester: String,
    source: String,
    text: String,
    interpret_attempts: i32,
}

/// The reply of a task whose interpretation failed too often.
pub const GAVE_UP: &str = "Sorry, I could not process this request; please try again later.";

/// Starts the interpreter loop; it stops when `shutdown` fires. `wake` is the recorder's notifier.
pub fn spawn_interpreter(
    pool: PgPool,
    commands: Commands,
    wake: Arc<Notify>,
    settings: InterpreterSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match run_once(&pool, &commands, &settings).await {
                // A full batch: there may be more right away.
                Ok(n) if n >= usize::try_from(settings.batch).unwrap_or(usize::MAX) => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "claiming tasks to interpret failed; retrying"),
            }
            tokio::select! {
                () = &mut notified => {},
                () = tokio::time::sleep(settings.poll) => {},
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Claims one batch and interprets it; returns how many tasks it claimed.
///
/// # Errors
/// Store failures of the claim or of storing the replies (claimed tasks are then taken over after the TTL).
pub async fn run_once(
    pool: &PgPool,
    commands: &Commands,
    settings: &InterpreterSettings,
) -> Result<usize, sqlx::Error> {
    let claimed: Vec<Claimed> = sqlx::query_as(CLAIM)
        .bind(settings.batch)
        .bind(i64::try_from(settings.claim_ttl.as_millis()).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?;
    let count = claimed.len();
    if count == 0 {
        return Ok(0);
    }
    // Best effort, one statement per batch: a failure only leaves a display name stale.
    let ids: Vec<Uuid> = claimed.iter().filter(|t| t.source == "chat").map(|t| t.id).collect();
    if !ids.is_empty()
        && let Err(e) = crate::team::users::note_platform_names(pool, &ids).await
    {
        tracing::warn!(error = %e, "recording platform display names failed");
    }
    let replies: Vec<TaskReply> = futures_util::stream::iter(claimed)
        .map(|task| interpret(commands, task, settings.max_attempts))
        .buffer_unordered(settings.concurrency.max(1))
        .filter_map(|r| async move { r })
        .collect()
        .await;
    tasks::record_replies(pool, &replies).await?;
    Ok(count)
}

async fn interpret(commands: &Commands, task: Claimed, max_attempts: i32) -> Option<TaskReply> {
    if task.interpret_attempts > max_attempts {
        tracing::error!(task.id = %task.id, attempts = task.interpret_attempts, "giving up on a task");
        return Some(TaskReply {
            task_id: task.id,
            command: None,
            reply: Some(GAVE_UP.to_string()),
            state: Some("failed"),
        });
    }
    let origin = Origin {
        install_id: task.install_id,
        conversation_id: task.conversation_id,
        inbound_id: task.inbound_id,
        requester: task.requester,
        source: task.source,
        task_id: Some(task.id),
    };
    match commands.interpret(&origin, &task.text).await {
        Ok(done) => {
            tracing::debug!(task.id = %task.id, command = done.verb, "task interpreted");
            done.task_reply(task.id)
        }
        Err(e) => {
            // Left claimed: another attempt follows when the claim lapses.
            tracing::warn!(task.id = %task.id, error = %e, "interpreting a task failed; it will be retried");
            None
        }
    }
}
