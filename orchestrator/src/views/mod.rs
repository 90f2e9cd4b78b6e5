//! Read models for the user API: tasks with their jobs, jobs, full job output, nodes, and a task's event log
//! ([`events`]). Every task read takes a [`Scope`], so a tenant's token cannot see another tenant's work: a task
//! outside the scope reads exactly like a task that does not exist.

pub mod events;
pub mod live;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

/// Which tasks a reader may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope {
    /// Only this install's tasks; `None` sees every task.
    pub install_id: Option<Uuid>,
}

/// A task's state as shown: the stored state, except that a `queued` task whose job a node leased or runs shows
/// `running`. Claims, heartbeats and re-queues change only the job row (settling the task there would take the
/// task's row lock inside the claim, against the finish batches' task-then-job order); this reads the truth
/// from the jobs instead, with the same rule as `task_state_of`.
macro_rules! shown_state {
    () => {
        "CASE WHEN state = 'queued' AND EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = tasks.id
                                                 AND j.state IN ('leased', 'running'))
              THEN 'running' ELSE state END AS state"
    };
}

/// Task states after which nothing changes any more.
pub const FINAL_TASK_STATES: [&str; 4] = ["succeeded", "failed", "cancelled", "answered"];

/// A task and its jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct TaskView {
    /// Task id.
    pub id: Uuid,
    /// The install (tenant) it belongs to.
    pub install_id: Option<Uuid>,
    /// Who asked.
    pub requester: String,
    /// `chat`, `api`, `webhook` or `console`.
    pub source: String,
    /// The command word (`run`, `ask`, `help`, …).
    pub command: String,
    /// What was asked, verbatim.
    pub text: String,
    /// `received`, `waiting`, `queued`, `running`, `succeeded`, `failed`, `cancelled` or `answered`.
    pub state: String,
    /// The reply text, once there is one.
    pub reply: Option<String>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Its jobs, oldest first.
    #[sqlx(skip)]
    #[serde(default)]
    pub jobs: Vec<JobView>,
}

impl TaskView {
    /// Whether the task reached a final state.
    pub fn is_final(&self) -> bool {
        FINAL_TASK_STATES.contains(&self.state.as_str())
    }
}

/// A job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct JobView {
    /// Job id.
    pub id: Uuid,
    /// Its task.
    pub task_id: Uuid,
    /// `docker`, `inference` or `host`.
    pub executor: String,
    /// `awaiting_approval`, `queued`, `leased`, `running`, `succeeded`, `failed`, `cancelled` or `timed_out`.
    pub state: String,
    /// Leases so far (the latest attempt's number).
    pub attempt: i32,
    /// Leases before it fails.
    pub max_attempts: i32,
    /// The node holding or last holding it.
    pub node_id: Option<Uuid>,
    /// A cancel was requested while it ran.
    pub cancel_requested: bool,
    /// The outcome (`status`, `exit_code`, `duration_ms`, …) once finished.
    pub result: Option<serde_json::Value>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// First started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Finished.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct NodeView {
    /// Node id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// What it reported: executors, templates, models, GPUs.
    pub capabilities: serde_json::Value,
    /// When it was last heard from (a lease request or heartbeat, recorded every few seconds, or a registration).
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    /// Heard from within [`crate::nodes::ONLINE_WITHIN`] (10 s); a node that stops polling goes offline then.
    pub online: bool,
    /// Jobs it holds now (leased or running).
    pub running_jobs: i64,
    /// The node protocol version negotiated when it registered.
    pub protocol: i32,
    /// The agent's build as it reported it (`cynode-node` version); `null` for agents that do not say.
    pub agent_version: Option<String>,
}

/// One page of tasks, newest first, each with its jobs. `before` is the last task of the previous page.
///
/// # Errors
/// Store failures.
pub async fn tasks(
    pool: &PgPool,
    scope: Scope,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<TaskView>, sqlx::Error> {
    let mut tasks: Vec<TaskView> = sqlx::query_as(concat!(
        "SELECT id, install_id, requester, source, command, text, ",
        shown_state!(),
        ", reply, created_at, updated_at FROM tasks
         WHERE ($1::uuid IS NULL OR install_id = $1)
           AND ($2::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM tasks WHERE id = $2))
         ORDER BY created_at DESC, id DESC LIMIT $3"
    ))
    .bind(scope.install_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    let jobs: Vec<JobView> = sqlx::query_as(
        "SELECT id, task_id, executor, state, attempt, max_attempts, node_id, cancel_requested, result,
         created_at, started_at, finished_at FROM jobs WHERE task_id = ANY($1) ORDER BY created_at, id",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    for job in jobs {
        if let Some(t) = tasks.iter_mut().find(|t| t.id == job.task_id) {
            t.jobs.push(job);
        }
    }
    Ok(tasks)
}

/// A task with its jobs, if it exists within `scope`.
///
/// # Errors
/// Store failures.
pub async fn task(pool: &PgPool, scope: Scope, id: Uuid) -> Result<Option<TaskView>, sqlx::Error> {
    let task: Option<TaskView> = sqlx::query_as(concat!(
        "SELECT id, install_id, requester, source, command, text, ",
        shown_state!(),
        ", reply, created_at, updated_at FROM tasks
         WHERE id = $1 AND ($2::uuid IS NULL OR install_id = $2)"
    ))
    .bind(id)
    .bind(scope.install_id)
    .fetch_optional(pool)
    .await?;
    let Some(mut task) = task else { return Ok(None) };
    task.jobs = sqlx::query_as(
        "SELECT id, task_id, executor, state, attempt, max_attempts, node_id, cancel_requested, result,
         created_at, started_at, finished_at FROM jobs WHERE task_id = $1 ORDER BY created_at, id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(Some(task))
}

/// A job and the requester of its task, if it exists within `scope`.
///
/// # Errors
/// Store failures.
pub async fn job(pool: &PgPool, scope: Scope, id: Uuid) -> Result<Option<(JobView, String)>, sqlx::Error> {
    let job: Option<JobView> = sqlx::query_as(
        "SELECT j.id, j.task_id, j.executor, j.state, j.attempt, j.max_attempts, j.node_id, j.cancel_requested,
                j.result, j.created_at, j.started_at, j.finished_at
         FROM jobs j JOIN tasks t ON t.id = j.task_id
         WHERE j.id = $1 AND ($2::uuid IS NULL OR t.install_id = $2)",
    )
    .bind(id)
    .bind(scope.install_id)
    .fetch_optional(pool)
    .await?;
    let Some(job) = job else { return Ok(None) };
    let requester: String =
        sqlx::query_scalar("SELECT requester FROM tasks WHERE id = $1").bind(job.task_id).fetch_one(pool).await?;
    Ok(Some((job, requester)))
}

/// The whole output of one attempt of a job (all streams, in upload order); `attempt` defaults to the latest.
/// Returns the attempt read and the bytes.
///
/// # Errors
/// Store failures.
pub async fn output(pool: &PgPool, job: &JobView, attempt: Option<i32>) -> Result<(i32, Vec<u8>), sqlx::Error> {
    let attempt = attempt.unwrap_or(job.attempt);
    let chunks: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT data FROM job_output_chunks WHERE job_id = $1 AND attempt = $2 ORDER BY seq, stream",
    )
    .bind(job.id)
    .bind(attempt)
    .fetch_all(pool)
    .await?;
    Ok((attempt, chunks.concat()))
}

/// Every node whose key is live, most recently seen first.
///
/// # Errors
/// Store failures.
pub async fn nodes(pool: &PgPool) -> Result<Vec<NodeView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n.id, n.name, n.capabilities, n.last_seen_at,
                n.last_seen_at > now() - $1 * interval '1 second' AS online,
                (SELECT count(*) FROM jobs j WHERE j.node_id = n.id AND j.state IN ('leased', 'running'))
                    AS running_jobs,
                n.protocol, n.agent_version
         FROM nodes n LEFT JOIN node_keys k ON k.id = n.key_id
         WHERE k.revoked_at IS NULL ORDER BY n.last_seen_at DESC",
    )
    .bind(crate::nodes::online_within_s())
    .fetch_all(pool)
    .await
}
