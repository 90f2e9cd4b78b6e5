//! The agent's tools: each has an OpenAI function schema, checks its arguments, and reads or acts only within
//! the turn's own thread. Results are bounded text for the model plus a one-line summary for the thread.
//! Mistakes (unknown tool, malformed JSON, arguments that fail the schema) and tools the requester's role does not
//! grant are results too, so the model can correct itself; they never fail the turn.

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::commands::{Commands, RunArgs};
use crate::tasks::{Origin, short};

/// Where a tool runs: the turn's thread, install and requester.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The turn.
    pub turn: Uuid,
    /// The thread.
    pub conversation: Uuid,
    /// The install.
    pub install: Option<Uuid>,
    /// Who started the turn (tool jobs run as their request).
    pub requester: String,
}

/// What starting a tool call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Finished at once: the result for the model and a summary for the thread.
    Done {
        /// For the model.
        result: String,
        /// For the thread.
        summary: String,
    },
    /// A job runs it; the result comes when the job ends.
    Job(Uuid),
}

/// The names of the tools, in the order they are offered.
pub const NAMES: [&str; 6] = ["run_command", "read_thread", "list_jobs", "job_output", "search_memory", "remember"];

/// The tools' OpenAI function schemas. With `templates`, `run_command`'s template must be one of them (an
/// `enum`, so a server that constrains generation to the schema cannot make one up).
pub fn schemas_for(templates: &[String]) -> Vec<Value> {
    let mut all = schemas();
    if !templates.is_empty() {
        all[0]["function"]["parameters"]["properties"]["template"]["enum"] = json!(templates);
    }
    all
}

/// The tools' OpenAI function schemas.
pub fn schemas() -> Vec<Value> {
    let f = |name: &str, description: &str, parameters: Value| json!({ "type": "function", "function": { "name": name, "description": description, "parameters": parameters } });
    vec![
        f(
            "run_command",
            "Run a shell command in an isolated sandbox (no network unless the template allows it). Policy may \
             require a human approval; a denied command does not run. Returns the exit code and the head and \
             tail of the output.",
            json!({ "type": "object", "properties": {
                "command": { "type": "string", "description": "The shell command (sh -c)." },
                "template": { "type": "string", "description": "Sandbox template; default when omitted." } },
                "required": ["command"], "additionalProperties": false }),
        ),
        f(
            "read_thread",
            "Read the latest messages of this thread (only this thread).",
            json!({ "type": "object", "properties": {
                "limit": { "type": "integer", "minimum": 1, "maximum": 50 } }, "additionalProperties": false }),
        ),
        f(
            "list_jobs",
            "List the jobs of this thread: id, state, command.",
            json!({ "type": "object", "properties": {}, "additionalProperties": false }),
        ),
        f(
            "job_output",
            "The output (head and tail) of one of this thread's jobs.",
            json!({ "type": "object", "properties": {
                "job": { "type": "string", "description": "Job id or its first 8 characters." } },
                "required": ["job"], "additionalProperties": false }),
        ),
        f(
            "search_memory",
            "Search what the team asked you to remember (only memories the requester may see here). Each result \
             is data with its provenance; `trusted: false` ones came from the agent or from tool output.",
            json!({ "type": "object", "properties": {
                "query": { "type": "string", "description": "What to look for." },
                "limit": { "type": "integer", "minimum": 1, "maximum": 20 } },
                "required": ["query"], "additionalProperties": false }),
        ),
        f(
            "remember",
            "Keep a fact for later turns: for this channel (default), this thread, or the requester only.",
            json!({ "type": "object", "properties": {
                "text": { "type": "string", "description": "The fact, in one or two sentences." },
                "scope": { "type": "string", "enum": ["channel", "thread", "user"] } },
                "required": ["text"], "additionalProperties": false }),
        ),
    ]
}

/// A tool's arguments, checked against its schema; `Err` is the message for the model.
fn arguments(name: &str, raw: &str) -> Result<serde_json::Map<String, Value>, String> {
    let schema = schemas()
        .into_iter()
        .find(|s| s["function"]["name"] == name)
        .ok_or_else(|| format!("error: there is no tool `{}`; the tools are {}", clip(name, 64), NAMES.join(", ")))?;
    let raw = if raw.trim().is_empty() { "{}" } else { raw };
    let value: Value = serde_json::from_str(raw)
        .map_err(|e| format!("error: the arguments are not valid JSON ({e}); send a JSON object"))?;
    let Value::Object(args) = value else {
        return Err("error: the arguments must be a JSON object".into());
    };
    let params = &schema["function"]["parameters"];
    let props = params["properties"].as_object().cloned().unwrap_or_default();
    for key in args.keys() {
        if !props.contains_key(key) {
            return Err(format!("error: unknown argument `{}` for {name}", clip(key, 64)));
        }
    }
    for (key, spec) in &props {
        let required = params["required"].as_array().is_some_and(|r| r.iter().any(|k| k == key.as_str()));
        match (args.get(key), spec["type"].as_str()) {
            (None, _) if required => return Err(format!("error: {name} needs the argument `{key}`")),
            (Some(v), Some("string")) if !v.is_string() => return Err(format!("error: `{key}` must be a string")),
            (Some(v), Some("integer")) if !v.is_i64() => return Err(format!("error: `{key}` must be an integer")),
            _ => {}
        }
    }
    Ok(args)
}

/// The refusal of a call of tool `name` when the requester's role in the turn's install (and channel) does not
/// grant it ([`crate::team::RoleGrant::tools`]), audited as `tool.refused`. Unknown names are left to the
/// argument check.
async fn refused_by_role(pool: &PgPool, scope: &Scope, name: &str) -> Result<Option<String>, sqlx::Error> {
    let Some(install) = scope.install.filter(|_| NAMES.contains(&name)) else { return Ok(None) };
    let standing = crate::team::standing(pool, install, Some(scope.conversation), &scope.requester).await?;
    let Err(why) = standing.allows_tool(name) else { return Ok(None) };
    let mut tx = pool.begin().await?;
    let detail = json!({ "install": install, "turn": scope.turn, "tool": name, "role": standing.role.as_str(),
                         "role_from": standing.from });
    crate::audit::append(&mut tx, &scope.requester, "tool.refused", name, &detail).await?;
    tx.commit().await?;
    Ok(Some(why))
}

/// Starts call `name(raw)` of step `step`, index `idx`. A `run_command` creates its sandbox job through the
/// same policy and approvals as `run`, in a task whose id is derived from (turn, step, index): started again
/// after a crash, it finds that task instead of running the command twice.
///
/// # Errors
/// Store failures.
pub async fn start(
    commands: &Commands,
    scope: &Scope,
    (step, idx): (i32, i32),
    name: &str,
    raw: &str,
) -> Result<Started, sqlx::Error> {
    if let Some(result) = refused_by_role(commands.pool(), scope, name).await? {
        return Ok(Started::Done {
            summary: format!("{name} → refused: not granted to the requester's role"), result
        });
    }
    let args = match arguments(name, raw) {
        Ok(a) => a,
        Err(result) => {
            return Ok(Started::Done { summary: format!("{} → refused: bad call", clip(name, 32)), result });
        }
    };
    let pool = commands.pool();
    match name {
        "run_command" => run_command(commands, scope, (step, idx), &args).await,
        "read_thread" => {
            let limit = args.get("limit").and_then(Value::as_i64).unwrap_or(20).clamp(1, 50);
            let rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
                "SELECT role, author, content FROM (
                   SELECT id, role, author, content FROM conversation_messages
                   WHERE conversation_id = $1 AND (role = 'user' OR (role = 'assistant' AND tool_calls = '[]'::jsonb))
                   ORDER BY id DESC LIMIT $2) m ORDER BY id",
            )
            .bind(scope.conversation)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let lines: Vec<String> = rows
                .iter()
                .map(|(role, author, content)| {
                    let who = if role == "user" { author.as_deref().unwrap_or("someone") } else { "CyNode" };
                    format!("{who}: {content}")
                })
                .collect();
            Ok(Started::Done { summary: format!("read_thread → {} messages", lines.len()), result: lines.join("\n") })
        }
        "list_jobs" => {
            let rows = thread_jobs(pool, scope.conversation).await?;
            let lines: Vec<String> = rows
                .iter()
                .map(|(id, state, text, result)| {
                    let exit = result.as_ref().and_then(|r| r["exit_code"].as_i64());
                    let exit = exit.map(|c| format!(" exit {c}")).unwrap_or_default();
                    format!("{} {state}{exit} — {}", short(*id), clip(text, 120))
                })
                .collect();
            let result = if lines.is_empty() { "This thread has no jobs.".to_owned() } else { lines.join("\n") };
            Ok(Started::Done { summary: format!("list_jobs → {} jobs", rows.len()), result })
        }
        "job_output" => {
            let wanted = args.get("job").and_then(Value::as_str).unwrap_or_default().trim().to_lowercase();
            let rows = thread_jobs(pool, scope.conversation).await?;
            let found: Vec<&(Uuid, String, String, Option<Value>)> =
                rows.iter().filter(|(id, ..)| !wanted.is_empty() && id.to_string().starts_with(&wanted)).collect();
            let [(id, state, _, result)] = found.as_slice() else {
                let why = if found.is_empty() { "no job of this thread" } else { "several jobs of this thread" };
                return Ok(Started::Done {
                    summary: "job_output → not found".into(),
                    result: format!("error: `{}` matches {why}; list_jobs shows them", clip(&wanted, 40)),
                });
            };
            let text =
                job_result(pool, *id, state, result.as_ref(), commands.settings().agent.tool_result_bytes).await?;
            Ok(Started::Done { summary: format!("job_output {} → {state}", short(*id)), result: text })
        }
        "search_memory" | "remember" => memory_tool(commands, scope, (step, idx), name, &args).await,
        _ => unreachable!("arguments() accepts only the tools of NAMES"),
    }
}

async fn run_command(
    commands: &Commands,
    scope: &Scope,
    (step, idx): (i32, i32),
    args: &serde_json::Map<String, Value>,
) -> Result<Started, sqlx::Error> {
    let command = args.get("command").and_then(Value::as_str).unwrap_or_default().trim();
    if command.is_empty() {
        return Ok(Started::Done {
            summary: "run_command → refused: empty".into(),
            result: "error: empty command".into(),
        });
    }
    let template = args.get("template").and_then(Value::as_str).map(str::to_owned);
    let id = call_task_id(scope.turn, step, idx);
    let origin = Origin {
        install_id: scope.install,
        conversation_id: Some(scope.conversation),
        inbound_id: None,
        requester: scope.requester.clone(),
        source: "chat".into(),
        task_id: None,
    };
    let text = format!("run {command}");
    let prefer_node = colocated_node(commands.pool(), scope.turn, template.as_deref(), commands).await?;
    let run = RunArgs { template, gpu: false, command, text: &text, prefer_node };
    let reply = commands.run(&origin, Some(id), run).await.map_err(|e| e.0)?;
    if let Some(job) = reply.as_ref().and_then(|r| r.job_id) {
        return Ok(Started::Job(job));
    }
    // Ran before (a resumed turn): the job of the task with this id.
    let existing: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM jobs WHERE task_id = $1 ORDER BY created_at LIMIT 1")
            .bind(id)
            .fetch_optional(commands.pool())
            .await?;
    Ok(match (existing, reply) {
        (Some(job), _) => Started::Job(job),
        (None, Some(r)) => {
            Started::Done { summary: "run_command → refused".into(), result: format!("error: {}", r.text) }
        }
        (None, None) => Started::Done {
            summary: "run_command → refused".into(),
            result: "error: the command could not be started".into(),
        },
    })
}

/// `search_memory` and `remember`, as the turn's requester in the turn's thread. What the model writes is
/// provenance `agent` — or `tool` once the turn has read tool output (a command's output, a job's, recalled
/// memories), so text a program printed can never be remembered as something a person said. The model cannot
/// choose its provenance, and cannot write install-wide or shared memory.
async fn memory_tool(
    commands: &Commands,
    scope: &Scope,
    (step, idx): (i32, i32),
    name: &str,
    args: &serde_json::Map<String, Value>,
) -> Result<Started, sqlx::Error> {
    use crate::memory::{MemoryError, NewMemory, Provenance, Recall, Scope as MemScope, Viewer, recall};
    let origin = Origin {
        install_id: scope.install,
        conversation_id: Some(scope.conversation),
        inbound_id: None,
        requester: scope.requester.clone(),
        source: "chat".into(),
        task_id: None,
    };
    let mut viewer = Viewer::of(commands.pool(), &origin).await?;
    // The model never acts with the requester's approver rights.
    viewer.approver = false;
    let text = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default().trim().to_owned();
    let refused = |summary: &str, e: MemoryError| match e {
        MemoryError::Store(e) => Err(e),
        e => Ok(Started::Done { summary: format!("{name} → refused: {summary}"), result: format!("error: {e}") }),
    };
    if name == "search_memory" {
        let limit = args.get("limit").and_then(Value::as_i64).unwrap_or(5).clamp(1, 20);
        let req = Recall { query: text("query"), limit: usize::try_from(limit).unwrap_or(5) };
        return match commands.memories().recall(&viewer, &req).await {
            Ok(r) => Ok(Started::Done {
                summary: format!(
                    "search_memory → {} memories{}",
                    r.memories.len(),
                    if r.hybrid { "" } else { " (keyword)" }
                ),
                result: recall::for_model(&r),
            }),
            Err(e) => refused("bad query", e),
        };
    }
    let mem_scope = match args.get("scope").and_then(Value::as_str).unwrap_or("channel") {
        "channel" => MemScope::Channel,
        "thread" => MemScope::Thread,
        "user" => MemScope::User,
        other => {
            return Ok(Started::Done {
                summary: "remember → refused: scope".into(),
                result: format!("error: `scope` must be one of channel, thread, user (not `{}`)", clip(other, 20)),
            });
        }
    };
    let tainted: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM agent_tool_calls WHERE turn_id = $1
                          AND name IN ('run_command', 'job_output', 'search_memory')
                          AND (step, idx) < ($2, $3))",
    )
    .bind(scope.turn)
    .bind(step)
    .bind(idx)
    .fetch_one(commands.pool())
    .await?;
    let provenance = if tainted { Provenance::Tool } else { Provenance::Agent };
    // At most once per call: a resumed turn finds the memory this call wrote.
    let label = format!("agent-call:{}:{step}:{idx}", scope.turn);
    let done: Option<Uuid> = sqlx::query_scalar("SELECT id FROM memories WHERE source_label = $1")
        .bind(&label)
        .fetch_optional(commands.pool())
        .await?;
    if let Some(id) = done {
        return Ok(Started::Done {
            summary: format!("remember → {}", short(id)),
            result: format!("remembered ({})", short(id)),
        });
    }
    let mut new = NewMemory::new(text("text"), mem_scope, provenance);
    new.source_label = Some(label);
    match commands.memories().add(&viewer, new).await {
        Ok(m) => Ok(Started::Done {
            summary: format!("remember → {} ({})", short(m.id), provenance.as_str()),
            result: format!("remembered ({}) with provenance {}", short(m.id), provenance.as_str()),
        }),
        Err(e) => refused("bad memory", e),
    }
}

/// The node that ran the turn's latest model step, when it also runs sandboxes of `template` (a co-located
/// node): the sandbox job prefers it, so a turn's commands run beside its model. A node that runs only models
/// is never preferred (the job would wait for it in vain).
async fn colocated_node(
    pool: &PgPool,
    turn: Uuid,
    template: Option<&str>,
    commands: &Commands,
) -> Result<Option<Uuid>, sqlx::Error> {
    let template = template.unwrap_or(&commands.settings().default_template);
    sqlx::query_scalar(
        "SELECT n.id FROM agent_turns a JOIN jobs j ON j.task_id = a.steps_task_id JOIN nodes n ON n.id = j.node_id
         WHERE a.id = $1 AND (n.capabilities->>'colocated')::boolean
           AND n.capabilities->'templates' ? $2
         ORDER BY j.created_at DESC LIMIT 1",
    )
    .bind(turn)
    .bind(template)
    .fetch_optional(pool)
    .await
}

/// The id of the task that runs call (turn, step, index): the same on every replica and after every restart.
pub fn call_task_id(turn: Uuid, step: i32, idx: i32) -> Uuid {
    Uuid::new_v5(&turn, format!("agent-call:{step}:{idx}").as_bytes())
}

type JobRow = (Uuid, String, String, Option<Value>);

async fn thread_jobs(pool: &PgPool, conversation: Uuid) -> Result<Vec<JobRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT j.id, j.state, t.text, j.result FROM jobs j JOIN tasks t ON t.id = j.task_id
         WHERE t.conversation_id = $1 ORDER BY j.created_at DESC LIMIT 20",
    )
    .bind(conversation)
    .fetch_all(pool)
    .await
}

/// A finished job as the model sees it: how it ended and the head and tail of its output, within `max` bytes.
///
/// # Errors
/// Store failures.
pub async fn job_result(
    pool: &PgPool,
    job: Uuid,
    state: &str,
    result: Option<&Value>,
    max: usize,
) -> Result<String, sqlx::Error> {
    let chunks: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT data FROM job_output_chunks WHERE job_id = $1
           AND attempt = (SELECT attempt FROM jobs WHERE id = $1) AND stream <> 'system' ORDER BY seq, stream",
    )
    .bind(job)
    .fetch_all(pool)
    .await?;
    let output = String::from_utf8_lossy(&chunks.concat()).into_owned();
    let exit = result.and_then(|r| r["exit_code"].as_i64());
    let message = result.and_then(|r| r["message"].as_str()).unwrap_or_default();
    let mut head = match (state, exit) {
        ("succeeded" | "failed", Some(code)) => format!("exit code {code}"),
        ("cancelled", _) if message.starts_with("denied by ") => {
            format!("not run: an approver {message}; do not retry it unchanged")
        }
        _ => format!("{state}{}", if message.is_empty() { String::new() } else { format!(": {message}") }),
    };
    head.push_str("\n--- output ---\n");
    head.push_str(&head_tail(&output, max));
    Ok(head)
}

/// `text` within `max` bytes: its head and tail with a marker saying how much was left out.
pub fn head_tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let half = max / 2;
    let mut a = half;
    while !text.is_char_boundary(a) {
        a -= 1;
    }
    let mut b = text.len() - half;
    while !text.is_char_boundary(b) {
        b += 1;
    }
    format!("{}\n[… {} bytes left out …]\n{}", &text[..a], b - a, &text[b..])
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { format!("{}…", s.chars().take(n).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked_against_the_schema() {
        assert!(arguments("run_command", r#"{"command": "ls"}"#).is_ok());
        assert!(arguments("list_jobs", "").is_ok());
        let err = |n: &str, a: &str| arguments(n, a).expect_err("refused");
        assert!(err("rm_rf", "{}").contains("there is no tool `rm_rf`"));
        assert!(err("run_command", r#"{"command": "ls""#).contains("not valid JSON"));
        assert!(err("run_command", "[1]").contains("JSON object"));
        assert!(err("run_command", "{}").contains("needs the argument `command`"));
        assert!(err("run_command", r#"{"command": 5}"#).contains("must be a string"));
        assert!(err("run_command", r#"{"command": "ls", "sudo": true}"#).contains("unknown argument `sudo`"));
        assert!(err("read_thread", r#"{"limit": "all"}"#).contains("must be an integer"));
    }

    #[test]
    fn run_command_offers_only_the_templates_there_are() {
        let s = schemas_for(&["busybox".to_owned(), "python".to_owned()]);
        assert_eq!(s[0]["function"]["parameters"]["properties"]["template"]["enum"], json!(["busybox", "python"]));
        assert!(schemas_for(&[])[0]["function"]["parameters"]["properties"]["template"]["enum"].is_null());
    }

    #[test]
    fn long_results_keep_head_and_tail() {
        let text = format!("{}{}", "a".repeat(5_000), "z".repeat(5_000));
        let cut = head_tail(&text, 1_000);
        assert!(cut.starts_with("aaaa") && cut.ends_with("zzzz"));
        assert!(cut.contains("[… 9000 bytes left out …]"), "{cut}");
        assert_eq!(head_tail("short", 10), "short");
    }

    #[test]
    fn a_call_maps_to_one_task_id() {
        let turn = Uuid::now_v7();
        assert_eq!(call_task_id(turn, 1, 0), call_task_id(turn, 1, 0));
        assert_ne!(call_task_id(turn, 1, 0), call_task_id(turn, 1, 1));
        assert_ne!(call_task_id(turn, 1, 0), call_task_id(turn, 2, 0));
    }
}
