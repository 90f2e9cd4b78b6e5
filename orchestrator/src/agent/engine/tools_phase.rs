//! A turn's tool phase: each call of the current step is started once (inline tools answer at once, a
//! `run_command` becomes a job) and followed until it has a result; then the results join the conversation.

use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;

use super::{AgentWorker, Call, Fence, Local, Turn, fenced};
use crate::agent::render::TurnText;
use crate::agent::tools::{self, Scope, Started};
use crate::tasks::short;

impl AgentWorker {
    /// Runs the current step's tool calls; once all have results, they join the conversation and the next model
    /// step is due.
    pub(super) async fn tools(
        &self,
        turn: &Turn,
        token: Uuid,
        local: &mut Local,
    ) -> Result<Option<Duration>, sqlx::Error> {
        let settings = &self.commands.settings().agent;
        let calls: Vec<Call> = sqlx::query_as(
            "SELECT idx, name, arguments, state, job_id, summary FROM agent_tool_calls
             WHERE turn_id = $1 AND step = $2 ORDER BY idx",
        )
        .bind(turn.id)
        .bind(turn.step)
        .fetch_all(self.pool())
        .await?;
        let scope = Scope {
            turn: turn.id,
            conversation: turn.conversation_id,
            install: turn.install_id,
            requester: turn.requester.clone(),
        };
        let mut open = 0;
        local.waiting.clear();
        for call in &calls {
            match (call.state.as_str(), call.job_id) {
                ("pending", _) => {
                    let started =
                        tools::start(&self.commands, &scope, (turn.step, call.idx), &call.name, &call.arguments)
                            .await?;
                    match started {
                        Started::Done { result, summary } => self.call_done(turn, call.idx, &result, &summary).await?,
                        Started::Job(job) => {
                            open += 1;
                            local.waiting.push(job);
                            sqlx::query(
                                "UPDATE agent_tool_calls SET state = 'running', job_id = $4, summary = $5
                                 WHERE turn_id = $1 AND step = $2 AND idx = $3 AND state = 'pending'",
                            )
                            .bind(turn.id)
                            .bind(turn.step)
                            .bind(call.idx)
                            .bind(job)
                            .bind(format!("run_command `{}` → queued (job `{}`)", command_of(call), short(job)))
                            .execute(self.pool())
                            .await?;
                        }
                    }
                }
                ("running", Some(job)) => {
                    let (state, result): (String, Option<serde_json::Value>) =
                        sqlx::query_as("SELECT state, result FROM jobs WHERE id = $1")
                            .bind(job)
                            .fetch_one(self.pool())
                            .await?;
                    let cmd = command_of(call);
                    if ["succeeded", "failed", "cancelled", "timed_out"].contains(&state.as_str()) {
                        let text =
                            tools::job_result(self.pool(), job, &state, result.as_ref(), settings.tool_result_bytes)
                                .await?;
                        let summary = format!("run_command `{cmd}` → {}", outcome_word(&state, result.as_ref()));
                        self.call_done(turn, call.idx, &text, &summary).await?;
                    } else {
                        open += 1;
                        local.waiting.push(job);
                        let now = match state.as_str() {
                            "awaiting_approval" => "waiting for approval",
                            "queued" => "queued",
                            _ => "running",
                        };
                        let summary = format!("run_command `{cmd}` → {now} (job `{}`)", short(job));
                        if call.summary.as_deref() != Some(summary.as_str()) {
                            sqlx::query("UPDATE agent_tool_calls SET summary = $4 WHERE turn_id = $1 AND step = $2 AND idx = $3")
                                .bind(turn.id)
                                .bind(turn.step)
                                .bind(call.idx)
                                .bind(&summary)
                                .execute(self.pool())
                                .await?;
                        }
                    }
                }
                _ => {}
            }
        }
        let summaries = self.summaries(turn.id).await?;
        if open > 0 {
            let live = TurnText { calls: &summaries, text: "", step: turn.step, footer: None }.render();
            self.show(turn, local, live).await?;
            return Ok(Some(settings.poll));
        }
        // Every call has its result: they join the conversation, and the next model step is due.
        let mut tx = self.pool().begin().await?;
        if !fenced(&mut tx, turn.id, token, Fence::Tools).await? {
            return Ok(Some(settings.poll));
        }
        results_join_conversation(&mut tx, turn).await?;
        sqlx::query("UPDATE agent_turns SET phase = 'model', updated_at = now() WHERE id = $1")
            .bind(turn.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Duration::ZERO))
    }

    async fn call_done(&self, turn: &Turn, idx: i32, result: &str, summary: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE agent_tool_calls SET state = 'done', result = $4, summary = $5, finished_at = now()
             WHERE turn_id = $1 AND step = $2 AND idx = $3 AND state <> 'done'",
        )
        .bind(turn.id)
        .bind(turn.step)
        .bind(idx)
        .bind(result)
        .bind(summary)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// The results of the current step's calls join the conversation as `tool` messages, in call order (every call
/// has one by then: its own, or "not run" when the turn was stopped).
pub(super) async fn results_join_conversation(conn: &mut PgConnection, turn: &Turn) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO conversation_messages (conversation_id, turn_id, role, content, tool_call_id)
         SELECT $3, turn_id, 'tool', coalesce(result, ''), call_id FROM agent_tool_calls
         WHERE turn_id = $1 AND step = $2 ORDER BY idx",
    )
    .bind(turn.id)
    .bind(turn.step)
    .bind(turn.conversation_id)
    .execute(conn)
    .await?;
    Ok(())
}

fn command_of(call: &Call) -> String {
    let args: serde_json::Value = serde_json::from_str(&call.arguments).unwrap_or_default();
    let cmd = args["command"].as_str().unwrap_or_default();
    let one_line: String = cmd.replace('\n', " ").chars().take(80).collect();
    one_line.replace('`', "'")
}

fn outcome_word(state: &str, result: Option<&serde_json::Value>) -> String {
    let message = result.and_then(|r| r["message"].as_str()).unwrap_or_default();
    match (state, result.and_then(|r| r["exit_code"].as_i64())) {
        ("succeeded" | "failed", Some(code)) => format!("exit {code}"),
        ("cancelled", _) if message.starts_with("denied by ") => message.to_owned(),
        ("timed_out", _) => "timed out".to_owned(),
        (s, _) => s.to_owned(),
    }
}
