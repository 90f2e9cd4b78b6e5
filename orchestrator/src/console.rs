//! Requests that do not come from a chat platform (the user API and the terminal): each becomes a task like a
//! platform delivery does, so every submission — including `help` or a refused command — is recorded and has an
//! id, a state and a reply.

use sqlx::PgPool;
use uuid::Uuid;

use crate::commands::{CommandError, Commands, Reply};
use crate::tasks::Origin;

/// How long the submitting request holds its task before the interpreter may take it over (if the request's
/// process dies between recording and interpreting, the task is still answered).
const HOLD_SECONDS: i64 = 60;

/// Records a task for `text` from `origin` (its `task_id` is ignored) and executes it.
///
/// # Errors
/// Store failures.
pub async fn submit(pool: &PgPool, commands: &Commands, origin: &Origin, text: &str) -> Result<Reply, CommandError> {
    let task = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO tasks (id, install_id, requester, source, command, text, claimed_until, interpret_attempts)
         VALUES ($1, $2, $3, $4, '', $5, now() + $6 * interval '1 second', 1)",
    )
    .bind(task)
    .bind(origin.install_id)
    .bind(&origin.requester)
    .bind(&origin.source)
    .bind(text)
    .bind(HOLD_SECONDS)
    .execute(pool)
    .await?;
    let origin = Origin { task_id: Some(task), inbound_id: None, ..origin.clone() };
    let mut reply = commands.handle(&origin, text).await?;
    reply.task_id = Some(task);
    Ok(reply)
}
