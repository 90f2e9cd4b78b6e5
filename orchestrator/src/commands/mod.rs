//! Commands from chat and the API: one grammar (see [`grammar`]) for every platform, executed against the
//! store. Every user mistake becomes a reply, never an error.

mod decide;
pub mod grammar;
mod interpret;
mod memory;
mod rego;
mod roles;
mod status;
mod submit;

use std::sync::Arc;
use std::time::Duration;

use cynode_protocol::{ExecutorKind, InferenceSpec, JobSpec, Requirements, SandboxLimits, SandboxSpec};
use sqlx::PgPool;
use uuid::Uuid;

pub use grammar::{Command, HELP};
pub use interpret::{Interpreted, Outcome};

use crate::audit;
use crate::bootstrap::TemplateSpec;
use crate::dispatch::Dispatcher;
use crate::dispatch::feasible::{self, Unschedulable};
use crate::policy::{self, Decision};
use crate::tasks::{self, Origin, Resolved, short};

/// Defaults for commands.
#[derive(Debug, Clone)]
pub struct CommandSettings {
    /// Template used by `run` without `--template`.
    pub default_template: String,
    /// Model used by `ask` (empty: the node's default).
    pub default_model: String,
    /// How long an approval request stays open.
    pub approval_ttl: Duration,
    /// Attempts per job before it fails.
    pub max_attempts: i32,
    /// Agent turns (free text).
    pub agent: crate::agent::AgentSettings,
    /// Daily token budgets, checked before each model call ([`crate::usage::over_budget`]).
    pub usage: crate::usage::Budgets,
}

impl Default for CommandSettings {
    fn default() -> Self {
        Self {
            default_template: "busybox".into(),
            default_model: String::new(),
            approval_ttl: Duration::from_secs(3600),
            max_attempts: 3,
            agent: crate::agent::AgentSettings::default(),
            usage: crate::usage::Budgets::default(),
        }
    }
}

/// What a command produced: the reply to show, and what it created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// Text for the user (platform-neutral Markdown).
    pub text: String,
    /// The task created, if any.
    pub task_id: Option<Uuid>,
    /// The job created or acted on, if any.
    pub job_id: Option<Uuid>,
    /// The job waits for one of these approvers.
    pub approval: Option<ApprovalRequest>,
    /// The command was refused or not understood (bad input, an unknown word, a template that does not exist,
    /// a job that is not there or not the asker's, work no online node could take when such work is refused at
    /// once): nothing was done. `cynode say` exits non-zero for it.
    pub refused: bool,
}

/// An approval to ask for in the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    /// The approval row.
    pub approval_id: Uuid,
    /// Who may approve.
    pub approvers: Vec<String>,
    /// Why it is needed.
    pub reason: String,
    /// Who may approve, in words (`2 of U1, U2, U3`).
    pub who: String,
    /// How many distinct approvers must approve.
    pub required: u32,
}

/// What `run` runs.
#[derive(Debug, Clone)]
pub(crate) struct RunArgs<'a> {
    /// Template name (default from settings).
    pub(crate) template: Option<String>,
    /// Ask for GPUs.
    pub(crate) gpu: bool,
    /// The shell command.
    pub(crate) command: &'a str,
    /// The request's text, as recorded on the task.
    pub(crate) text: &'a str,
    /// Prefer this node (an agent's sandbox job on the host of its model step).
    pub(crate) prefer_node: Option<Uuid>,
}

/// Store failures while executing a command (user mistakes are replies, not errors).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct CommandError(#[from] pub(crate) sqlx::Error);

/// Executes commands.
#[derive(Debug, Clone)]
pub struct Commands {
    pool: PgPool,
    dispatcher: Arc<Dispatcher>,
    settings: CommandSettings,
    agent_wake: Arc<tokio::sync::Notify>,
    memories: crate::memory::Memories,
    rego: Arc<policy::rego::Cache>,
}

fn reply(text: impl Into<String>) -> Reply {
    Reply { text: text.into(), ..Reply::default() }
}

/// A reply that refuses the command ([`Reply::refused`]).
fn refusal(text: impl Into<String>) -> Reply {
    Reply { text: text.into(), refused: true, ..Reply::default() }
}

/// The answer to `text` when it needs no store (`help`, an unknown word, input the grammar refuses): the same
/// [`Interpreted`] that [`Commands::interpret`] gives, so ingress can record such a request already answered.
pub fn immediate(text: &str) -> Option<Interpreted> {
    answer_without_store(grammar::parse(text)).err().map(|done| *done)
}

/// Splits a parse into a command that needs the store (`Ok`) and one answered from the text alone (`Err`).
fn answer_without_store(parsed: Result<Command, String>) -> Result<Command, Box<Interpreted>> {
    match parsed {
        Err(msg) => Err(Box::new(Interpreted::answered("invalid", refusal(format!("{msg}\n\n{HELP}"))))),
        Ok(Command::Help { unknown: None }) => Err(Box::new(Interpreted::answered("help", reply(HELP)))),
        Ok(Command::Help { unknown: Some(w) }) => {
            Err(Box::new(Interpreted::answered("help", refusal(format!("I don't know `{w}`.\n\n{HELP}")))))
        }
        Ok(command) => Ok(command),
    }
}

impl Commands {
    /// Commands over a store and dispatcher.
    pub fn new(pool: PgPool, dispatcher: Arc<Dispatcher>, settings: CommandSettings) -> Self {
        let memories = crate::memory::Memories::new(pool.clone(), None, crate::memory::MemorySettings::default());
        Self {
            pool,
            dispatcher,
            settings,
            agent_wake: Arc::new(tokio::sync::Notify::new()),
            memories,
            rego: Arc::new(policy::rego::Cache::default()),
        }
    }

    /// The same commands with `memories` (an embedder, memory settings) for `remember`, `recall`, `forget` and
    /// the agent's memory tools; without, memory is keyword-only with default settings.
    #[must_use]
    pub fn with_memories(mut self, memories: crate::memory::Memories) -> Self {
        self.memories = memories;
        self
    }

    /// The memory service.
    pub fn memories(&self) -> &crate::memory::Memories {
        &self.memories
    }

    /// The store.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The dispatcher.
    pub(crate) fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// The settings.
    pub(crate) fn settings(&self) -> &CommandSettings {
        &self.settings
    }

    /// Wakes this process's agent worker (a turn started or moved on).
    pub(crate) fn agent_wake(&self) -> &Arc<tokio::sync::Notify> {
        &self.agent_wake
    }

    /// Parses and executes `text` for `origin`.
    ///
    /// With [`Origin::task_id`] (a task ingress recorded in state `received`), that task is used instead of a new
    /// one: a command that creates a job moves it on with the job; any other answer (help, status, a refused
    /// approval, a reply to bad input) leaves it `answered` with the reply text in `tasks.reply`. A task that
    /// already left `received` is not touched again.
    ///
    /// # Errors
    /// Only store failures; everything the user can get wrong is a [`Reply`].
    pub async fn handle(&self, origin: &Origin, text: &str) -> Result<Reply, CommandError> {
        let done = self.interpret(origin, text).await?;
        if let Some(r) = origin.task_id.and_then(|t| done.task_reply(t)) {
            tasks::record_replies(&self.pool, &[r]).await?;
        }
        Ok(done.reply)
    }

    /// Like [`Commands::handle`], but leaves storing the reply of a recorded task to the caller (the ingress
    /// interpreter stores a whole batch in one statement with [`tasks::record_replies`]).
    ///
    /// # Errors
    /// Only store failures.
    pub async fn interpret(&self, origin: &Origin, text: &str) -> Result<Interpreted, CommandError> {
        let command = match answer_without_store(grammar::parse(text)) {
            Ok(command) => command,
            Err(done) => return Ok(*done),
        };
        let verb = interpret::verb(&command);
        let answered = |r: Reply| Interpreted::answered(verb, r);
        if let Some(refused) = self.command_refusal(origin, verb).await? {
            return Ok(answered(refused));
        }
        Ok(match command {
            Command::Help { .. } => answered(reply(HELP)), // answered above; kept for exhaustiveness
            Command::Run { template, gpu, command } => {
                let args = RunArgs { template, gpu, command: &command, text, prefer_node: None };
                Interpreted::submitted(verb, self.run(origin, None, args).await?)
            }
            Command::Ask { prompt } => Interpreted::submitted(verb, self.ask(origin, &prompt, text).await?),
            Command::Agent { text } => self.agent_turn(origin, &text).await?,
            Command::Status => answered(self.status().await?),
            Command::Jobs => answered(self.jobs(origin).await?),
            Command::Cancel { job } => answered(self.cancel(origin, &job).await?),
            Command::Approve { job } => answered(self.decide(origin, &job, true).await?),
            Command::Deny { job } => answered(self.decide(origin, &job, false).await?),
            Command::Remember { scope, text } => answered(self.remember(origin, scope, &text).await?),
            Command::Recall { query } => answered(self.recall(origin, &query).await?),
            Command::Forget { memory } => answered(self.forget(origin, memory.as_deref()).await?),
        })
    }

    /// `run`: a sandbox job under policy. With `new_id`, the task gets that id and nothing is written when it
    /// exists already (an agent's tool call, run at most once).
    pub(crate) async fn run(
        &self,
        origin: &Origin,
        new_id: Option<Uuid>,
        run: RunArgs<'_>,
    ) -> Result<Option<Reply>, CommandError> {
        let RunArgs { template, gpu, command, text, prefer_node } = run;
        let name = template.unwrap_or_else(|| self.settings.default_template.clone());
        let spec: Option<serde_json::Value> = sqlx::query_scalar("SELECT spec FROM templates WHERE name = $1")
            .bind(&name)
            .fetch_optional(&self.pool)
            .await?;
        let Some(t) = spec.and_then(|s| serde_json::from_value::<TemplateSpec>(s).ok()) else {
            let names: Vec<String> =
                sqlx::query_scalar("SELECT name FROM templates ORDER BY name").fetch_all(&self.pool).await?;
            let list = if names.is_empty() { "none are configured".to_string() } else { names.join(", ") };
            return Ok(Some(refusal(format!("There is no sandbox template `{name}` (available: {list})."))));
        };
        if let Some(refused) = self.job_refusal(origin, &t.name, gpu || t.gpu, t.network).await? {
            return Ok(Some(refused));
        }
        let job_spec = JobSpec::Sandbox(SandboxSpec {
            template: t.name.clone(),
            image: t.image.clone(),
            command: command.to_string(),
            network: t.network,
            env: Vec::new(),
            limits: SandboxLimits {
                memory_mb: t.memory_mb,
                cpus: t.cpus,
                pids: t.pids,
                timeout_s: t.timeout_s,
                max_output_bytes: t.max_output_kb * 1024,
            },
            gpu: gpu || t.gpu,
        });
        let requirements = Requirements {
            template: Some(t.name.clone()),
            gpu_memory_mb: (gpu || t.gpu).then_some(1),
            prefer_node,
            ..Requirements::default()
        };
        let notice = match self.feasibility(ExecutorKind::Docker, &requirements).await? {
            Ok(notice) => notice,
            Err(refused) => return Ok(Some(refused)),
        };
        let decision = policy::evaluate(
            &self.pool,
            &policy::Request {
                install_id: origin.install_id,
                template: Some(&t.name),
                network: t.network,
                gpu: gpu || t.gpu,
                requester: &origin.requester,
            },
        )
        .await?;
        let decision = match self.apply_rego(origin, "run", &job_spec, decision).await? {
            Ok(d) => d,
            Err(refused) => return Ok(Some(refused)),
        };
        let args = serde_json::json!({ "template": t.name, "gpu": gpu, "command": command });
        let Some(mut r) =
            self.submit(origin, new_id, "run", text, &args, job_spec, requirements, &decision, notice.as_ref()).await?
        else {
            return Ok(None);
        };
        let job = short(r.job_id.unwrap_or_default());
        if r.approval.is_none() {
            r.text = format!("Job `{job}` queued on `{}`: `{command}`", t.name);
        }
        if let Some(n) = &notice {
            r.text = format!("{}\n⚠️ {n} It waits{}", r.text, self.gives_up());
        }
        Ok(Some(r))
    }

    /// A one-shot `ask` of `text` (free text where no thread can hold a turn).
    pub(crate) async fn ask_once(&self, origin: &Origin, text: &str) -> Result<Option<Reply>, CommandError> {
        self.ask(origin, text, text).await
    }

    async fn ask(&self, origin: &Origin, prompt: &str, text: &str) -> Result<Option<Reply>, CommandError> {
        // Over a daily budget: the reply says so, and no job (no model call) is created.
        if let Some(refusal) =
            crate::usage::over_budget(&self.pool, &self.settings.usage, origin.install_id, &origin.requester).await?
        {
            return Ok(Some(reply(refusal)));
        }
        let model = self.settings.default_model.clone();
        if let Some(refused) = self.model_refusal(origin, &model).await? {
            return Ok(Some(refused));
        }
        let spec = JobSpec::Inference(InferenceSpec {
            model: model.clone(),
            prompt: prompt.to_string(),
            messages: Vec::new(),
            tools: Vec::new(),
            tool_choice: None,
            system: None,
            max_tokens: 512,
            timeout_s: 120,
        });
        // A local node, else a provider (crate::providers::route); neither: refused or queued with the reason.
        let (requirements, notice, via) = match crate::providers::route(&self.pool, origin.install_id, &model).await? {
            Ok(routed) => (routed.requirements, None, routed.via),
            Err(why) => match self.refuse_unschedulable(&why) {
                None => (
                    Requirements { model: (!model.is_empty()).then_some(model), ..Requirements::default() },
                    Some(why),
                    crate::providers::Via::Node,
                ),
                Some(refused) => return Ok(Some(refused)),
            },
        };
        let args = serde_json::json!({ "prompt": prompt });
        let Some(mut r) = self
            .submit(origin, None, "ask", text, &args, spec, requirements, &Decision::Allow, notice.as_ref())
            .await?
        else {
            return Ok(None);
        };
        let job = short(r.job_id.unwrap_or_default());
        r.text = match &notice {
            Some(n) => format!("⚠️ {n} Job `{job}` waits{}", self.gives_up()),
            None => match &via {
                crate::providers::Via::Node => format!("Thinking… (job `{job}`)"),
                crate::providers::Via::Provider { name, .. } => format!("Thinking… (job `{job}`, provider `{name}`)"),
            },
        };
        Ok(Some(r))
    }

    /// Whether an online node could take the job: `Ok(None)` yes; `Ok(Some(reason))` no, queue it with the
    /// reason as a notice; `Err(reply)` no, and such work is refused at once (`dispatch.unschedulable_after_s`
    /// is 0).
    async fn feasibility(
        &self,
        executor: ExecutorKind,
        requirements: &Requirements,
    ) -> Result<Result<Option<Unschedulable>, Reply>, CommandError> {
        let Err(why) = feasible::check(&self.pool, executor, requirements).await? else { return Ok(Ok(None)) };
        Ok(self.refuse_unschedulable(&why).map_or(Ok(Some(why)), Err))
    }

    /// Work no online node could take: the refusal when such work is refused at once
    /// (`dispatch.unschedulable_after_s` is 0); `None` when it is queued with the reason as a notice.
    fn refuse_unschedulable(&self, why: &Unschedulable) -> Option<Reply> {
        self.dispatcher.settings().unschedulable_after.is_zero().then(|| refusal(format!("{why} Nothing was queued.")))
    }

    /// How long work nobody can take waits before it fails, as the end of a sentence.
    fn gives_up(&self) -> String {
        let s = self.dispatcher.settings().unschedulable_after.as_secs();
        let after = if s >= 120 && s.is_multiple_of(60) { format!("{} min", s / 60) } else { format!("{s} s") };
        format!(" for such a node and fails if none comes within {after}.")
    }

    async fn jobs(&self, origin: &Origin) -> Result<Reply, CommandError> {
        let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
            "SELECT j.id, j.state, t.command, t.text FROM jobs j JOIN tasks t ON t.id = j.task_id
             WHERE t.requester = $1 AND t.install_id IS NOT DISTINCT FROM $2
             ORDER BY j.created_at DESC LIMIT 10",
        )
        .bind(&origin.requester)
        .bind(origin.install_id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(reply("You have no jobs yet. Try `run echo hi`."));
        }
        let lines: Vec<String> = rows
            .iter()
            .map(|(id, state, _, text)| {
                let shown: String = text.chars().take(60).collect();
                format!("`{}` {state} — {shown}", short(*id))
            })
            .collect();
        Ok(reply(format!("Your recent jobs:\n{}", lines.join("\n"))))
    }

    async fn find(&self, job: &str) -> Result<Result<Uuid, Reply>, CommandError> {
        Ok(match tasks::resolve_job(&self.pool, job).await? {
            Resolved::One(id) => Ok(id),
            Resolved::None => Err(refusal(format!("There is no job `{job}`. `jobs` lists yours."))),
            Resolved::Ambiguous => Err(refusal(format!("`{job}` matches several jobs; use more characters."))),
        })
    }

    async fn cancel(&self, origin: &Origin, job: &str) -> Result<Reply, CommandError> {
        let id = match self.find(job).await? {
            Ok(id) => id,
            Err(r) => {
                return Ok(match crate::agent::cancel(self, origin, job).await? {
                    Some(turn) => turn,
                    None => r,
                });
            }
        };
        let (owner, state, task, install): (String, String, Uuid, Option<Uuid>) = sqlx::query_as(
            "SELECT t.requester, j.state, t.id, t.install_id FROM jobs j JOIN tasks t ON t.id = j.task_id WHERE j.id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        let admin = install.is_some()
            && install == origin.install_id
            && self.standing(origin).await?.is_some_and(|s| s.role == crate::team::TeamRole::Admin);
        let allowed = owner == origin.requester && install == origin.install_id
            || admin
            || policy::is_approver(&self.pool, install, &origin.requester).await?;
        let mut tx = self.pool.begin().await?;
        if !allowed {
            let detail = serde_json::json!({ "owner": owner });
            audit::append(&mut tx, &origin.requester, "job.cancel.refused", &id.to_string(), &detail).await?;
            tx.commit().await?;
            return Ok(refusal(format!(
                "Job `{}` is not yours; only its requester or an approver can cancel it.",
                short(id)
            )));
        }
        let text = match state.as_str() {
            "queued" | "awaiting_approval" => {
                sqlx::query(
                    "UPDATE jobs SET state = 'cancelled', finished_at = now(),
                     result = jsonb_build_object('status', 'cancelled', 'duration_ms', 0, 'message', $2::text)
                     WHERE id = $1",
                )
                .bind(id)
                .bind(format!("cancelled by {}", origin.requester))
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE approvals SET state = 'denied', decided_by = $2, decided_at = now()
                             WHERE job_id = $1 AND state = 'pending'",
                )
                .bind(id)
                .bind(&origin.requester)
                .execute(&mut *tx)
                .await?;
                tasks::settle(&mut tx, task).await?;
                format!("Job `{}` cancelled before it started.", short(id))
            }
            "leased" | "running" => {
                sqlx::query("UPDATE jobs SET cancel_requested = true WHERE id = $1").bind(id).execute(&mut *tx).await?;
                format!("Cancelling job `{}`; its node stops it within a few seconds.", short(id))
            }
            done => {
                tx.rollback().await?;
                return Ok(refusal(format!("Job `{}` already finished ({done}).", short(id))));
            }
        };
        audit::append(
            &mut tx,
            &origin.requester,
            "job.cancel",
            &id.to_string(),
            &serde_json::json!({ "state": state }),
        )
        .await?;
        tx.commit().await?;
        self.dispatcher.events().announce([id]);
        Ok(Reply { text, job_id: Some(id), ..Reply::default() })
    }
}
