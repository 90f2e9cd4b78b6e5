//! Tasks (what someone asked for) and their jobs (what nodes run).

use cynode_protocol::{JobSpec, Requirements};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Who asked, and where.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The install the request came through (none for the local console and API admin calls).
    pub install_id: Option<Uuid>,
    /// The conversation (channel/thread) to answer in.
    pub conversation_id: Option<Uuid>,
    /// The recorded inbound event.
    pub inbound_id: Option<Uuid>,
    /// The requesting user's platform id.
    pub requester: String,
    /// `chat`, `api`, `webhook` or `console`.
    pub source: String,
    /// A task already recorded for this request (by ingress, in state `received`): commands update it instead of
    /// creating a new one, and it leaves `received` exactly once (see [`crate::commands::Commands::handle`]).
    pub task_id: Option<Uuid>,
}

/// A job to create.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// What to run.
    pub spec: JobSpec,
    /// Where it may run.
    pub requirements: Requirements,
    /// Higher runs first.
    pub priority: i32,
    /// Leases before giving up.
    pub max_attempts: i32,
    /// Wait for approval before queueing.
    pub hold: bool,
}

/// Creates a task row.
///
/// # Errors
/// Store failures (a duplicate `inbound_id` is a unique violation).
pub async fn create_task(
    conn: &mut PgConnection,
    origin: &Origin,
    command: &str,
    text: &str,
    args: &serde_json::Value,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    create_task_with_id(conn, id, origin, command, text, args).await?;
    Ok(id)
}

/// Creates a task row with a fixed id; `false` (and nothing written) when a task with that id exists already.
///
/// # Errors
/// Store failures.
pub async fn create_task_with_id(
    conn: &mut PgConnection,
    id: Uuid,
    origin: &Origin,
    command: &str,
    text: &str,
    args: &serde_json::Value,
) -> Result<bool, sqlx::Error> {
    // A fresh id never conflicts; a fixed one that exists already inserts nothing (a duplicate `inbound_id` is
    // still a unique violation).
    let sql = "INSERT INTO tasks (id, inbound_id, conversation_id, install_id, requester, source, command, text, args)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING";
    let done = sqlx::query(sql)
        .bind(id)
        .bind(origin.inbound_id)
        .bind(origin.conversation_id)
        .bind(origin.install_id)
        .bind(&origin.requester)
        .bind(&origin.source)
        .bind(command)
        .bind(text)
        .bind(args)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Creates a job of `task`, queued or held for approval, and updates the task's state.
///
/// # Errors
/// Store failures.
pub async fn create_job(conn: &mut PgConnection, task: Uuid, job: &NewJob) -> Result<Uuid, sqlx::Error> {
    // Random (v4) ids: the first 8 hex characters are a usable short id.
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO jobs (id, task_id, executor, spec, requirements, state, priority, max_attempts, timeout_s)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(task)
    .bind(crate::providers::executor_for(&job.spec, &job.requirements).as_str())
    .bind(serde_json::to_value(&job.spec).unwrap_or_default())
    .bind(serde_json::to_value(&job.requirements).unwrap_or_default())
    .bind(if job.hold { "awaiting_approval" } else { "queued" })
    .bind(job.priority)
    .bind(job.max_attempts.max(1))
    .bind(i32::try_from(job.spec.timeout_s()).unwrap_or(i32::MAX))
    .execute(&mut *conn)
    .await?;
    settle(conn, task).await?;
    Ok(id)
}

/// Recomputes a task's state from its jobs.
///
/// # Errors
/// Store failures.
pub async fn settle(conn: &mut PgConnection, task: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE tasks SET state = s.state, updated_at = now()
         FROM (SELECT task_state_of(ARRAY(SELECT state FROM jobs WHERE task_id = $1)) AS state) s
         WHERE id = $1 AND s.state IS NOT NULL AND tasks.state IS DISTINCT FROM s.state",
    )
    .bind(task)
    .execute(conn)
    .await?;
    Ok(())
}

/// Resolves a job id or its first 8+ hex characters.
///
/// # Errors
/// Store failures.
pub async fn resolve_job(pool: &PgPool, text: &str) -> Result<Resolved, sqlx::Error> {
    if let Ok(id) = Uuid::parse_str(text) {
        let found: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM jobs WHERE id = $1").bind(id).fetch_optional(pool).await?;
        return Ok(found.map_or(Resolved::None, Resolved::One));
    }
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() < 6 || hex.len() > 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(Resolved::None);
    }
    let hex = hex.to_ascii_lowercase();
    let lo = Uuid::parse_str(&format!("{hex:0<32}")).unwrap_or_default();
    let hi = Uuid::parse_str(&format!("{hex:f<32}")).unwrap_or_default();
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM jobs WHERE id BETWEEN $1 AND $2 LIMIT 2")
        .bind(lo)
        .bind(hi)
        .fetch_all(pool)
        .await?;
    Ok(match ids.as_slice() {
        [one] => Resolved::One(*one),
        [] => Resolved::None,
        _ => Resolved::Ambiguous,
    })
}

/// Result of resolving a job reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// Exactly one job.
    One(Uuid),
    /// No job.
    None,
    /// Several jobs share the prefix.
    Ambiguous,
}

/// The short id users see: the first 8 hex characters.
pub fn short(id: Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

/// What interpreting a recorded task leaves on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReply {
    /// The task.
    pub task_id: Uuid,
    /// The command word it turned out to be (`help`, `status`, …), if it should be stored.
    pub command: Option<String>,
    /// The reply text to deliver into the task's thread (`None`: nothing to say).
    pub reply: Option<String>,
    /// The final state for a task that created no job (`answered` or `failed`); `None` keeps the state (the task
    /// created a job, whose progress now drives it).
    pub state: Option<&'static str>,
}

/// Stores replies of interpreted tasks in one statement. A reply with a final state only applies to a task
/// still in `received` (so a task answered twice keeps the first answer); the claim is released.
///
/// # Errors
/// Store failures.
pub async fn record_replies(pool: &PgPool, replies: &[TaskReply]) -> Result<u64, sqlx::Error> {
    if replies.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = replies.iter().map(|r| r.task_id).collect();
    let commands: Vec<Option<&str>> = replies.iter().map(|r| r.command.as_deref()).collect();
    let texts: Vec<Option<&str>> = replies.iter().map(|r| r.reply.as_deref()).collect();
    let states: Vec<Option<&str>> = replies.iter().map(|r| r.state).collect();
    let done = sqlx::query(
        "UPDATE tasks t
         SET reply = coalesce(r.reply, t.reply), command = coalesce(r.command, t.command),
             state = coalesce(r.state, t.state), claimed_until = NULL, updated_at = now()
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS r(id, command, reply, state)
         WHERE t.id = r.id AND (r.state IS NULL OR t.state = 'received')",
    )
    .bind(&ids)
    .bind(&commands)
    .bind(&texts)
    .bind(&states)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
