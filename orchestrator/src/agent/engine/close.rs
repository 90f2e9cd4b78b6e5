//! Ending a turn: with an answer (`finish`), or without one (`end`: stopped, over a limit, the model failed),
//! its open calls answered "not run" and its jobs cancelled.

use sqlx::PgConnection;
use uuid::Uuid;

use super::tools_phase::results_join_conversation;
use super::{AgentWorker, Fence, Turn, fenced};
use crate::agent::render::{TurnText, footer};
use crate::tasks;

impl AgentWorker {
    /// Ends the turn without an answer: calls still open are answered "not run" in the conversation, its jobs
    /// are cancelled, and the thread shows `note`.
    pub(super) async fn end(
        &self,
        turn: &Turn,
        token: Uuid,
        state: &str,
        note: &str,
        why: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let summaries = self.summaries(turn.id).await?;
        let mut tx = self.pool().begin().await?;
        if !fenced(&mut tx, turn.id, token, Fence::Any).await? {
            return Ok(());
        }
        let open: Vec<Uuid> = sqlx::query_scalar(
            "SELECT job_id FROM agent_tool_calls WHERE turn_id = $1 AND state = 'running' AND job_id IS NOT NULL",
        )
        .bind(turn.id)
        .fetch_all(&mut *tx)
        .await?;
        let jobs: Vec<Uuid> = open.into_iter().chain(turn.model_job).collect();
        cancel_jobs(&mut tx, &jobs, why.unwrap_or("the agent turn was stopped")).await?;
        // Calls still open get a result, and a stopped tool phase's results (those that ended too) join the
        // conversation, so the thread's next turn sees every call answered. Only the current step can have calls
        // without results in the conversation: a step's results join it together when the last call ends.
        sqlx::query(
            "UPDATE agent_tool_calls SET state = 'done', result = 'not run: the turn was stopped', finished_at = now()
             WHERE turn_id = $1 AND state <> 'done'",
        )
        .bind(turn.id)
        .execute(&mut *tx)
        .await?;
        if turn.phase == "tools" {
            results_join_conversation(&mut tx, turn).await?;
        }
        finish(&mut tx, turn, state, note, why, &summaries).await?;
        tx.commit().await?;
        tracing::info!(turn.id = %turn.id, state, reason = why.unwrap_or(""), "agent turn ended");
        Ok(())
    }
}

/// Closes the turn and its task, with the final message (answer or note, tool lines, footer).
pub(super) async fn finish(
    conn: &mut PgConnection,
    turn: &Turn,
    state: &str,
    text: &str,
    why: Option<&str>,
    calls: &[String],
) -> Result<(), sqlx::Error> {
    let mark = match state {
        "succeeded" => "✅",
        "cancelled" => "⏹",
        _ => "⚠️",
    };
    let footer = footer(mark, turn.step.max(1), turn.tokens_in, turn.tokens_out);
    let shown = TurnText { calls, text, step: turn.step, footer: Some(footer) }.render();
    sqlx::query(
        "UPDATE agent_turns SET state = $2, error = $3, finished_at = now(), updated_at = now(), claimed_until = NULL
         WHERE id = $1",
    )
    .bind(turn.id)
    .bind(state)
    .bind(why)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE tasks SET state = $2, reply = $3, updated_at = now() WHERE id = $1")
        .bind(turn.task_id)
        .bind(state)
        .bind(&shown)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Cancels jobs: queued or held ones at once, running ones through their node.
async fn cancel_jobs(conn: &mut PgConnection, jobs: &[Uuid], why: &str) -> Result<(), sqlx::Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    let settled: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE jobs SET state = 'cancelled', finished_at = now(),
         result = jsonb_build_object('status', 'cancelled', 'duration_ms', 0, 'message', $2::text)
         WHERE id = ANY($1) AND state IN ('queued', 'awaiting_approval') RETURNING task_id",
    )
    .bind(jobs)
    .bind(why)
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query("UPDATE jobs SET cancel_requested = true WHERE id = ANY($1) AND state IN ('leased', 'running')")
        .bind(jobs)
        .execute(&mut *conn)
        .await?;
    for task in settled {
        tasks::settle(conn, task).await?;
    }
    Ok(())
}
