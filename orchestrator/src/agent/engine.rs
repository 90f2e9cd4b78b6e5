//! The turn driver: every replica claims running turns (`FOR UPDATE SKIP LOCKED`, a short lease renewed at
//! every step) and moves each one on, one committed step at a time. Every write names the claim token, so a
//! replica that lost its claim (paused, partitioned) changes nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cynode_protocol::{InferenceSpec, JobSpec, Requirements, ToolCall};
use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use super::context;
use super::render::TurnText;
use super::tools;
use crate::commands::Commands;
use crate::tasks::{self, NewJob};

mod close;
mod tools_phase;

use close::finish;

/// Drives agent turns. One per process.
#[derive(Debug)]
pub struct AgentWorker {
    commands: Commands,
    running: AtomicUsize,
}

/// Starts the worker; it stops (releasing its turns to other replicas) when `shutdown` fires.
pub fn spawn_agent_worker(commands: Commands, shutdown: watch::Receiver<bool>) -> Arc<AgentWorker> {
    let worker = Arc::new(AgentWorker { commands, running: AtomicUsize::new(0) });
    tokio::spawn(worker.clone().claim_loop(shutdown));
    worker
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Turn {
    id: Uuid,
    task_id: Uuid,
    steps_task_id: Uuid,
    conversation_id: Uuid,
    install_id: Option<Uuid>,
    requester: String,
    phase: String,
    step: i32,
    max_steps: i32,
    max_output_tokens: i32,
    overdue: bool,
    model_job: Option<Uuid>,
    tokens_in: i64,
    tokens_out: i64,
    cancel_requested: bool,
    seen_upto: Option<i64>,
    retries: i32,
}

#[derive(Debug, sqlx::FromRow)]
struct Call {
    idx: i32,
    name: String,
    arguments: String,
    state: String,
    job_id: Option<Uuid>,
    summary: Option<String>,
}

/// What the driver keeps between steps (rebuilt after a takeover).
#[derive(Default)]
struct Local {
    shown: String,
    shown_at: Option<Instant>,
    /// The jobs the turn waits for now (its model step or its tool calls' jobs).
    waiting: Vec<Uuid>,
    /// When this replica last renewed its claim.
    renewed_at: Option<Instant>,
}

/// The columns of [`Turn`].
macro_rules! turn_columns {
    () => {
        "id, task_id, steps_task_id, conversation_id, install_id, requester, phase, step, max_steps, \
         max_output_tokens, deadline < now() AS overdue, model_job, tokens_in, tokens_out, cancel_requested, \
         seen_upto, retries"
    };
}

/// Renews the claim and reads the turn (a write: done when a third of the claim has passed).
const RENEW: &str = concat!(
    "UPDATE agent_turns SET claimed_until = now() + $3 * interval '1 millisecond', updated_at = now() \
     WHERE id = $1 AND claim_token = $2 AND state = 'running' RETURNING ",
    turn_columns!()
);

/// Reads the turn while the claim is fresh (no write, no commit to wait for).
const READ: &str =
    concat!("SELECT ", turn_columns!(), " FROM agent_turns WHERE id = $1 AND claim_token = $2 AND state = 'running'");

/// Failed model steps retried per turn before it gives up.
const MODEL_RETRIES: i32 = 2;

/// The least time between two updates of a turn's message while the model writes.
const SHOW_EVERY: Duration = Duration::from_millis(250);

impl AgentWorker {
    /// Turns this replica drives now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    fn pool(&self) -> &PgPool {
        self.commands.pool()
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.commands.settings().agent.claim_ttl.as_millis()).unwrap_or(10_000)
    }

    async fn claim_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let wake = self.commands.agent_wake().clone();
        loop {
            let free = self.commands.settings().agent.capacity.saturating_sub(self.running());
            if free > 0 {
                match self.claim(free).await {
                    Ok(claimed) => {
                        for (turn, token) in claimed {
                            self.running.fetch_add(1, Ordering::Relaxed);
                            tokio::spawn(self.clone().drive(turn, token, shutdown.clone()));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming agent turns failed; retrying"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {},
                () = wake.notified() => {},
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn claim(&self, n: usize) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
        sqlx::query_as(
            "UPDATE agent_turns t SET claim_token = gen_random_uuid(),
                    claimed_until = now() + $2 * interval '1 millisecond'
             FROM (SELECT id FROM agent_turns
                   WHERE state = 'running' AND (claimed_until IS NULL OR claimed_until < now())
                   ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED) p
             WHERE t.id = p.id RETURNING t.id, t.claim_token",
        )
        .bind(i64::try_from(n).unwrap_or(1))
        .bind(self.ttl_ms())
        .fetch_all(self.pool())
        .await
    }

    async fn drive(self: Arc<Self>, turn: Uuid, token: Uuid, mut shutdown: watch::Receiver<bool>) {
        let mut local = Local::default();
        let poll = self.commands.settings().agent.poll;
        let mut finished = self.commands.dispatcher().finished();
        loop {
            let delay = match self.step(turn, token, &mut local).await {
                Ok(Some(d)) => d,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(turn.id = %turn, error = %e, "agent step failed; retrying");
                    poll * 20
                }
            };
            if delay.is_zero() {
                continue;
            }
            let waited = local.waiting.clone();
            // Woken at once when this replica records the finish of a job the turn waits for; the poll covers
            // finishes recorded by other replicas.
            let mine = async {
                loop {
                    match finished.recv().await {
                        Ok(job) if waited.contains(&job) => return,
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {},
                () = mine => {},
                _ = shutdown.changed() => {
                    let _ = sqlx::query("UPDATE agent_turns SET claimed_until = NULL WHERE id = $1 AND claim_token = $2")
                        .bind(turn).bind(token).execute(self.pool()).await;
                    break;
                }
            }
        }
        self.running.fetch_sub(1, Ordering::Relaxed);
    }

    /// One step; `None` when the turn ended or is no longer ours, else when to look again.
    async fn step(&self, id: Uuid, token: Uuid, local: &mut Local) -> Result<Option<Duration>, sqlx::Error> {
        let claim = self.commands.settings().agent.claim_ttl;
        let renew = local.renewed_at.is_none_or(|t| t.elapsed() >= claim / 3);
        let query = sqlx::query_as::<_, Turn>(if renew { RENEW } else { READ }).bind(id).bind(token);
        let query = if renew { query.bind(self.ttl_ms()) } else { query };
        let Some(turn) = query.fetch_optional(self.pool()).await? else {
            return Ok(None);
        };
        if renew {
            local.renewed_at = Some(Instant::now());
        }
        let settings = &self.commands.settings().agent;
        if turn.cancel_requested {
            self.end(&turn, token, "cancelled", "⏹ Stopped on request", None).await?;
            return Ok(None);
        }
        if turn.overdue {
            let why = format!("reached its time limit of {} s", settings.max_duration.as_secs());
            self.end(&turn, token, "failed", &format!("⏱ Stopped: the turn {why}"), Some(&why)).await?;
            return Ok(None);
        }
        if turn.phase == "tools" {
            return self.tools(&turn, token, local).await;
        }
        let Some(job) = turn.model_job else {
            return self.next_model_step(&turn, token, local).await;
        };
        let (state, result, text) = model_step(self.pool(), job).await?;
        match state.as_str() {
            "succeeded" => {
                let result = result.unwrap_or_default();
                self.model_answered(&turn, token, &text, &result).await?;
                Ok(Some(Duration::ZERO))
            }
            "failed" | "timed_out" | "cancelled" if turn.retries < MODEL_RETRIES => {
                // The node already retried a lost lease; a step the server failed is tried again here.
                let mut tx = self.pool().begin().await?;
                if fenced(&mut tx, turn.id, token, Fence::Stepping).await? {
                    sqlx::query(
                        "UPDATE agent_turns SET model_job = NULL, step = step - 1, retries = retries + 1,
                         updated_at = now() WHERE id = $1",
                    )
                    .bind(turn.id)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                }
                tracing::warn!(turn.id = %turn.id, job.id = %job, state, "agent model step failed; retrying");
                Ok(Some(settings.poll * 10))
            }
            "failed" | "timed_out" | "cancelled" => {
                let message = result.as_ref().and_then(|r| r["message"].as_str()).unwrap_or(state.as_str());
                let why = format!("the model step failed ({message})");
                let note = format!("⚠️ I could not finish: {why}. Try again, or ask an operator to check the nodes.");
                self.end(&turn, token, "failed", &note, Some(&why)).await?;
                Ok(None)
            }
            _ => {
                local.waiting = vec![job];
                let calls = self.summaries(turn.id).await?;
                let live = TurnText { calls: &calls, text: &text, step: turn.step, footer: None }.render();
                self.show(&turn, local, live).await?;
                Ok(Some(settings.poll))
            }
        }
    }

    async fn next_model_step(
        &self,
        turn: &Turn,
        token: Uuid,
        local: &mut Local,
    ) -> Result<Option<Duration>, sqlx::Error> {
        let settings = &self.commands.settings().agent;
        if turn.step >= turn.max_steps {
            let why = format!("reached the limit of {} steps without a final answer", turn.max_steps);
            self.end(turn, token, "failed", &format!("⚠️ Stopped: the turn {why}"), Some(&why)).await?;
            return Ok(None);
        }
        let left = i64::from(turn.max_output_tokens) - turn.tokens_out;
        if left <= 0 {
            let why = format!("used its {} output tokens", turn.max_output_tokens);
            self.end(turn, token, "failed", &format!("⚠️ Stopped: the turn {why}"), Some(&why)).await?;
            return Ok(None);
        }
        let budgets = &self.commands.settings().usage;
        if let Some(text) = crate::usage::over_budget(self.pool(), budgets, turn.install_id, &turn.requester).await? {
            self.end(turn, token, "failed", &format!("⚠️ {text}"), Some("over the daily token budget")).await?;
            return Ok(None);
        }
        let stored = context::load(self.pool(), turn.conversation_id).await?;
        let templates: Vec<String> =
            sqlx::query_scalar("SELECT name FROM templates ORDER BY name").fetch_all(self.pool()).await?;
        let seen = stored.last().map(|m| m.id);
        let model = settings.model.clone();
        let spec = JobSpec::Inference(InferenceSpec {
            model: model.clone(),
            prompt: String::new(),
            messages: context::build(&stored, settings.context_tokens),
            tools: tools::schemas_for(&templates),
            tool_choice: Some(if turn.step == 0 && !settings.first_tool.is_empty() {
                serde_json::json!({ "type": "function", "function": { "name": settings.first_tool } })
            } else {
                "auto".into()
            }),
            system: None,
            max_tokens: settings.step_max_tokens.min(u32::try_from(left).unwrap_or(u32::MAX)),
            timeout_s: settings.step_timeout.as_secs().max(1),
        });
        // A local inference node when one serves the model and the queue is short, else a provider; when neither
        // can, the step is queued for a node all the same (it starts when one comes, or the reaper says why not).
        let requirements = match crate::providers::route(self.pool(), turn.install_id, &model).await? {
            Ok(routed) => routed.requirements,
            Err(_) => Requirements { model: (!model.is_empty()).then_some(model), ..Requirements::default() },
        };
        let job = NewJob {
            spec,
            requirements,
            priority: 0,
            max_attempts: self.commands.settings().max_attempts,
            hold: false,
        };
        let mut tx = self.pool().begin().await?;
        if !fenced(&mut tx, turn.id, token, Fence::Idle).await? {
            return Ok(Some(settings.poll));
        }
        let job_id = tasks::create_job(&mut tx, turn.steps_task_id, &job).await?;
        sqlx::query(
            "UPDATE agent_turns SET model_job = $2, step = step + 1, seen_upto = $3, updated_at = now() WHERE id = $1",
        )
        .bind(turn.id)
        .bind(job_id)
        .bind(seen)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.commands.dispatcher().announce();
        local.waiting = vec![job_id];
        tracing::debug!(turn.id = %turn.id, job.id = %job_id, step = turn.step + 1, "agent model step queued");
        let calls = self.summaries(turn.id).await?;
        let live = TurnText { calls: &calls, text: "", step: turn.step + 1, footer: None }.render();
        self.show(turn, local, live).await?;
        Ok(Some(settings.poll))
    }

    /// The model's step ended: its text and tool calls join the conversation; no calls means the answer.
    async fn model_answered(
        &self,
        turn: &Turn,
        token: Uuid,
        text: &str,
        result: &serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        let calls: Vec<ToolCall> = serde_json::from_value(result["tool_calls"].clone()).unwrap_or_default();
        let tokens_in = result["usage"]["prompt_tokens"].as_i64().unwrap_or(0);
        let tokens_out = result["usage"]["completion_tokens"].as_i64().unwrap_or(0);
        // Read before the transaction: a step never holds one pooled connection while it waits for another.
        let summaries = if calls.is_empty() { self.summaries(turn.id).await? } else { Vec::new() };
        let mut tx = self.pool().begin().await?;
        if !fenced(&mut tx, turn.id, token, Fence::Stepping).await? {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO conversation_messages (conversation_id, turn_id, role, content, tool_calls, seen_upto)
             VALUES ($1, $2, 'assistant', $3, $4, $5)",
        )
        .bind(turn.conversation_id)
        .bind(turn.id)
        .bind(text)
        .bind(serde_json::to_value(&calls).unwrap_or_default())
        .bind(turn.seen_upto)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE agent_turns SET tokens_in = tokens_in + $2, tokens_out = tokens_out + $3, model_job = NULL,
             phase = CASE WHEN $4 THEN 'tools' ELSE phase END, updated_at = now() WHERE id = $1",
        )
        .bind(turn.id)
        .bind(tokens_in)
        .bind(tokens_out)
        .bind(!calls.is_empty())
        .execute(&mut *tx)
        .await?;
        for (idx, call) in calls.iter().enumerate() {
            sqlx::query(
                "INSERT INTO agent_tool_calls (turn_id, step, idx, call_id, name, arguments)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(turn.id)
            .bind(turn.step)
            .bind(i32::try_from(idx).unwrap_or(i32::MAX))
            .bind(&call.id)
            .bind(&call.name)
            .bind(&call.arguments)
            .execute(&mut *tx)
            .await?;
        }
        if calls.is_empty() {
            let answer = if text.trim().is_empty() { "(The model gave an empty answer.)" } else { text };
            let mut done = turn.clone();
            done.tokens_in += tokens_in;
            done.tokens_out += tokens_out;
            finish(&mut tx, &done, "succeeded", answer, None, &summaries).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The thread lines of the turn's tool calls so far.
    async fn summaries(&self, turn: Uuid) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT coalesce(summary, name || ' → …') FROM agent_tool_calls WHERE turn_id = $1 ORDER BY step, idx",
        )
        .bind(turn)
        .fetch_all(self.pool())
        .await
    }

    /// Updates the turn's message when it changed (at most every [`SHOW_EVERY`]).
    async fn show(&self, turn: &Turn, local: &mut Local, text: String) -> Result<(), sqlx::Error> {
        if text == local.shown || local.shown_at.is_some_and(|t| t.elapsed() < SHOW_EVERY) {
            return Ok(());
        }
        sqlx::query("UPDATE tasks SET reply = $2, updated_at = now() WHERE id = $1 AND state = 'running'")
            .bind(turn.task_id)
            .bind(&text)
            .execute(self.pool())
            .await?;
        local.shown = text;
        local.shown_at = Some(Instant::now());
        Ok(())
    }
}

/// What a fenced write expects of the turn besides being running and held by this replica.
#[derive(Debug, Clone, Copy)]
enum Fence {
    /// No model step in flight.
    Idle,
    /// A model step in flight.
    Stepping,
    /// Running tool calls.
    Tools,
    /// Anything.
    Any,
}

/// Locks the turn when this replica still holds it and `fence` holds; `false` otherwise (nothing to do).
async fn fenced(conn: &mut PgConnection, turn: Uuid, token: Uuid, fence: Fence) -> Result<bool, sqlx::Error> {
    let sql = match fence {
        Fence::Idle => {
            "SELECT 1 FROM agent_turns WHERE id = $1 AND claim_token = $2 AND state = 'running'
             AND phase = 'model' AND model_job IS NULL FOR UPDATE"
        }
        Fence::Stepping => {
            "SELECT 1 FROM agent_turns WHERE id = $1 AND claim_token = $2 AND state = 'running'
             AND model_job IS NOT NULL FOR UPDATE"
        }
        Fence::Tools => {
            "SELECT 1 FROM agent_turns WHERE id = $1 AND claim_token = $2 AND state = 'running'
             AND phase = 'tools' FOR UPDATE"
        }
        Fence::Any => "SELECT 1 FROM agent_turns WHERE id = $1 AND claim_token = $2 AND state = 'running' FOR UPDATE",
    };
    let row: Option<i32> = sqlx::query_scalar(sql).bind(turn).bind(token).fetch_optional(conn).await?;
    Ok(row.is_some())
}

/// A model step's state, result and text so far (the latest attempt's generated tokens), in one query.
async fn model_step(pool: &PgPool, job: Uuid) -> Result<(String, Option<serde_json::Value>, String), sqlx::Error> {
    let (state, result, text): (String, Option<serde_json::Value>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT j.state, j.result,
                (SELECT string_agg(c.data, ''::bytea ORDER BY c.seq) FROM job_output_chunks c
                 WHERE c.job_id = j.id AND c.attempt = j.attempt AND c.stream = 'stdout')
         FROM jobs j WHERE j.id = $1",
    )
    .bind(job)
    .fetch_one(pool)
    .await?;
    Ok((state, result, String::from_utf8_lossy(&text.unwrap_or_default()).into_owned()))
}
