//! A task's event log (`task_events`): state changes of the task and its jobs, and output chunks, numbered
//! `1, 2, 3, …` per task. The rows are written by database triggers in the same transaction as the change, and
//! numbers are handed out under a per-task transaction lock, so events become visible in number order: after
//! reading event `n`, a later read of `seq > n` can never skip an event. Any replica can serve any task's stream,
//! and a client resumes after a restart from the last number it saw.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// One event of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TaskEvent {
    /// The task changed state (or was created).
    Task {
        /// Event number within the task.
        seq: i64,
        /// The new state.
        state: String,
        /// The reply at that moment.
        reply: Option<String>,
        /// When.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// A job changed state (or was created).
    Job {
        /// Event number within the task.
        seq: i64,
        /// The job.
        job_id: Uuid,
        /// The new state.
        state: String,
        /// The attempt at that moment.
        attempt: i32,
        /// The outcome, once finished.
        result: Option<serde_json::Value>,
        /// When.
        at: chrono::DateTime<chrono::Utc>,
    },
    /// A chunk of output arrived.
    Output {
        /// Event number within the task.
        seq: i64,
        /// The job.
        job_id: Uuid,
        /// The attempt that produced it.
        attempt: i32,
        /// `stdout`, `stderr` or `system`.
        stream: String,
        /// The text.
        data: String,
        /// When.
        at: chrono::DateTime<chrono::Utc>,
    },
}

impl TaskEvent {
    /// The event number (the SSE `id`).
    pub fn seq(&self) -> i64 {
        match self {
            Self::Task { seq, .. } | Self::Job { seq, .. } | Self::Output { seq, .. } => *seq,
        }
    }

    /// The event name (`task`, `job`, `output`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Task { .. } => "task",
            Self::Job { .. } => "job",
            Self::Output { .. } => "output",
        }
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    kind: String,
    job_id: Option<Uuid>,
    attempt: Option<i32>,
    stream: Option<String>,
    detail: serde_json::Value,
    at: chrono::DateTime<chrono::Utc>,
    data: Option<Vec<u8>>,
}

impl Row {
    fn into_event(self) -> TaskEvent {
        let text = |k: &str| self.detail.get(k).and_then(|v| v.as_str()).map(str::to_string);
        match self.kind.as_str() {
            "job" => TaskEvent::Job {
                seq: self.seq,
                job_id: self.job_id.unwrap_or_default(),
                state: text("state").unwrap_or_default(),
                attempt: self.attempt.unwrap_or(0),
                result: self.detail.get("result").filter(|r| !r.is_null()).cloned(),
                at: self.at,
            },
            "output" => TaskEvent::Output {
                seq: self.seq,
                job_id: self.job_id.unwrap_or_default(),
                attempt: self.attempt.unwrap_or(0),
                stream: self.stream.clone().unwrap_or_default(),
                data: String::from_utf8_lossy(self.data.as_deref().unwrap_or_default()).into_owned(),
                at: self.at,
            },
            _ => TaskEvent::Task {
                seq: self.seq,
                state: text("state").unwrap_or_default(),
                reply: text("reply"),
                at: self.at,
            },
        }
    }
}

/// Up to `limit` events of `task` numbered above `after`, in order.
///
/// # Errors
/// Store failures.
pub async fn after(pool: &PgPool, task: Uuid, after: i64, limit: i64) -> Result<Vec<TaskEvent>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT e.seq, e.kind, e.job_id, e.attempt, e.stream, e.detail, e.at, c.data
         FROM task_events e
         LEFT JOIN job_output_chunks c
           ON e.kind = 'output' AND c.job_id = e.job_id AND c.attempt = e.attempt AND c.stream = e.stream
              AND c.seq = e.chunk_seq
         WHERE e.task_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3",
    )
    .bind(task)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(Row::into_event).collect())
}

/// The task's current state, if the task exists.
///
/// # Errors
/// Store failures.
pub async fn task_state(pool: &PgPool, task: Uuid) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as("SELECT state, reply FROM tasks WHERE id = $1").bind(task).fetch_optional(pool).await
}
