//! Free text in a thread: start a turn, or — while one runs there — add the message to its conversation.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::commands::{CommandError, Commands, Interpreted, Outcome, Reply};
use crate::tasks::{self, Origin};

/// What the thread shows while the model's first step is under way.
pub(crate) const THINKING: &str = "🤔 Thinking…";

/// The answer to a message that arrives while a turn runs in its thread.
const STEERED: &str = "Noted — the turn running in this thread will see this message at its next step.";

impl Commands {
    /// Free text: an agent turn in the origin's thread. Without a thread (API, console), a one-shot `ask`.
    ///
    /// # Errors
    /// Store failures.
    pub(crate) async fn agent_turn(&self, origin: &Origin, text: &str) -> Result<Interpreted, CommandError> {
        let Some(conversation) = origin.conversation_id else {
            let ask = self.ask_once(origin, text).await?;
            return Ok(Interpreted::submitted_as("ask", ask));
        };
        let settings = &self.settings().agent;
        // The checks for a new turn read other tables: done before the thread is locked, so a request never holds
        // one pooled connection while it waits for another. A message that joins a running turn needs none.
        let running_now: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM agent_turns WHERE conversation_id = $1 AND state = 'running')",
        )
        .bind(conversation)
        .fetch_one(self.pool())
        .await?;
        if !running_now {
            // A model the asker's role does not grant: said at once (and audited), no turn.
            if let Some(refused) = self.model_refusal(origin, &settings.model).await? {
                return Ok(Interpreted { reply: refused, verb: "agent", outcome: Outcome::Answered });
            }
            // Over the day's token budget: said at once, no turn.
            let budgets = &self.settings().usage;
            if let Some(text) =
                crate::usage::over_budget(self.pool(), budgets, origin.install_id, &origin.requester).await?
            {
                let reply = Reply { text: format!("⚠️ {text}"), ..Reply::default() };
                return Ok(Interpreted { reply, verb: "agent", outcome: Outcome::Answered });
            }
            // Work nobody can do is said at once: no turn starts when neither an online node nor a provider
            // could run its model steps.
            if let Err(why) = crate::providers::route(self.pool(), origin.install_id, &settings.model).await? {
                let reply = Reply { text: format!("⚠️ {why} Nothing was started."), ..Reply::default() };
                return Ok(Interpreted { reply, verb: "agent", outcome: Outcome::Answered });
            }
        }
        let mut tx = self.pool().begin().await?;
        // Turns of one thread start one at a time.
        sqlx::query("SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE")
            .bind(conversation)
            .execute(&mut *tx)
            .await?;
        let running: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM agent_turns WHERE conversation_id = $1 AND state = 'running'")
                .bind(conversation)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(turn) = running {
            if origin.task_id.is_some() && !still_received(&mut tx, origin).await? {
                return Ok(Interpreted::submitted_as("agent", None));
            }
            add_user_message(&mut tx, conversation, Some(turn), &origin.requester, text).await?;
            tx.commit().await?;
            self.agent_wake().notify_one();
            let reply = Reply { text: STEERED.into(), ..Reply::default() };
            return Ok(Interpreted { reply, verb: "agent", outcome: Outcome::Answered });
        }
        let args = serde_json::json!({ "text": text });
        let task = match origin.task_id {
            Some(task) => {
                let taken = sqlx::query(
                    "UPDATE tasks SET command = 'agent', text = $2, args = $3, state = 'running', reply = $4,
                     updated_at = now() WHERE id = $1 AND state = 'received'",
                )
                .bind(task)
                .bind(text)
                .bind(&args)
                .bind(THINKING)
                .execute(&mut *tx)
                .await?;
                if taken.rows_affected() == 0 {
                    return Ok(Interpreted::submitted_as("agent", None));
                }
                task
            }
            None => {
                let task = tasks::create_task(&mut tx, origin, "agent", text, &args).await?;
                sqlx::query("UPDATE tasks SET state = 'running', reply = $2 WHERE id = $1")
                    .bind(task)
                    .bind(THINKING)
                    .execute(&mut *tx)
                    .await?;
                task
            }
        };
        // The turn's model jobs belong to a task of their own, which no thread streams.
        let steps_origin =
            Origin { conversation_id: None, inbound_id: None, source: "agent".into(), task_id: None, ..origin.clone() };
        let steps =
            tasks::create_task(&mut tx, &steps_origin, "agent.steps", "", &serde_json::json!({ "turn_task": task }))
                .await?;
        // Random (v4): the first 8 characters are a usable short id for `cancel`.
        let turn = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO agent_turns (id, task_id, steps_task_id, conversation_id, install_id, requester, max_steps,
                                      max_output_tokens, deadline)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + $9 * interval '1 millisecond')",
        )
        .bind(turn)
        .bind(task)
        .bind(steps)
        .bind(conversation)
        .bind(origin.install_id)
        .bind(&origin.requester)
        .bind(settings.max_steps.max(1))
        .bind(settings.max_output_tokens.max(1))
        .bind(i64::try_from(settings.max_duration.as_millis()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        add_user_message(&mut tx, conversation, Some(turn), &origin.requester, text).await?;
        tx.commit().await?;
        tracing::info!(turn.id = %turn, task.id = %task, "agent turn started");
        self.agent_wake().notify_one();
        let reply = Reply { text: THINKING.into(), task_id: Some(task), ..Reply::default() };
        Ok(Interpreted { reply, verb: "agent", outcome: Outcome::Kept })
    }
}

async fn still_received(conn: &mut PgConnection, origin: &Origin) -> Result<bool, sqlx::Error> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM tasks WHERE id = $1 FOR UPDATE")
        .bind(origin.task_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(state.as_deref() == Some("received"))
}

/// Stores what a user said in a thread.
async fn add_user_message(
    conn: &mut PgConnection,
    conversation: Uuid,
    turn: Option<Uuid>,
    author: &str,
    text: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO conversation_messages (conversation_id, turn_id, role, author, content)
         VALUES ($1, $2, 'user', $3, $4)",
    )
    .bind(conversation)
    .bind(turn)
    .bind(author)
    .bind(text)
    .execute(conn)
    .await?;
    Ok(())
}

/// `cancel <turn>`: asks the running turn whose id starts with `prefix` to stop (its driver ends it at its next
/// step, cancelling its jobs). `None` when no running turn matches, so the caller says there is no such job.
/// Only the turn's requester or an approver may stop it.
///
/// # Errors
/// Store failures.
pub async fn cancel(commands: &Commands, origin: &Origin, prefix: &str) -> Result<Option<Reply>, CommandError> {
    let prefix = prefix.trim().to_lowercase();
    if prefix.len() < 4 || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Ok(None);
    }
    let found: Vec<(Uuid, String, Option<Uuid>)> = sqlx::query_as(
        "SELECT id, requester, install_id FROM agent_turns WHERE state = 'running' AND id::text LIKE $1 || '%' LIMIT 2",
    )
    .bind(&prefix)
    .fetch_all(commands.pool())
    .await?;
    let [(turn, requester, install)] = found.as_slice() else { return Ok(None) };
    let allowed = (requester == &origin.requester && *install == origin.install_id)
        || crate::policy::is_approver(commands.pool(), *install, &origin.requester).await?;
    let mut tx = commands.pool().begin().await?;
    if !allowed {
        // Audited like a refused job cancel: a Stop click by someone else lands here too.
        let detail = serde_json::json!({ "owner": requester });
        crate::audit::append(&mut tx, &origin.requester, "turn.cancel.refused", &turn.to_string(), &detail).await?;
        tx.commit().await?;
        return Ok(Some(Reply {
            text: format!(
                "Turn `{}` is not yours; only its requester or an approver can stop it.",
                tasks::short(*turn)
            ),
            ..Reply::default()
        }));
    }
    sqlx::query("UPDATE agent_turns SET cancel_requested = true WHERE id = $1 AND state = 'running'")
        .bind(turn)
        .execute(&mut *tx)
        .await?;
    crate::audit::append(&mut tx, &origin.requester, "turn.cancel", &turn.to_string(), &serde_json::json!({})).await?;
    tx.commit().await?;
    commands.agent_wake().notify_one();
    Ok(Some(Reply { text: format!("Stopping turn `{}`.", tasks::short(*turn)), ..Reply::default() }))
}
