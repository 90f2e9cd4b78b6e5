//! Agent turns against a real PostgreSQL, with the test acting as the nodes: it leases the turn's model steps,
//! checks the conversation and tools each one carries, and answers with text or tool calls, as an inference
//! node would; sandbox jobs are leased and finished the same way.

use std::sync::Arc;
use std::time::Duration;

use cynode_orchestrator::agent::{AgentSettings, spawn_agent_worker, tools::call_task_id};
use cynode_orchestrator::commands::{CommandSettings, Commands, Reply};
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::dispatch::Dispatcher;
use cynode_orchestrator::tasks::{Origin, short};
use cynode_protocol::{
    Capabilities, ChatMessage, ExecutorKind, FinishRequest, FinishStatus, InferenceSpec, JobSpec, Lease, LeaseRef,
    Outcome, OutputBatch, OutputChunk, SandboxSpec, Stream, ToolCall, Usage,
};
use cynode_tests::TestDb;
use tokio::sync::watch;
use uuid::Uuid;

use crate::support::{dispatcher, node, slack_install};

/// A bot token that must never reach a prompt.
const BOT_TOKEN: &str = "xoxb-AGENT-TEST-SECRET-7f3a9c";

pub(crate) struct Agent {
    pub(crate) db: TestDb,
    commands: Commands,
    dispatcher: Arc<Dispatcher>,
    llm: Uuid,
    sandbox: Uuid,
    conversation: Uuid,
    pub(crate) install: Uuid,
    _stop: watch::Sender<bool>,
}

pub(crate) async fn start(settings: AgentSettings) -> Agent {
    let db = TestDb::new().await;
    let yaml = "
templates:
  - { name: busybox, image: 'cynode/busybox:latest' }
  - { name: guarded, image: 'cynode/busybox:latest' }
policy:
  - when: { template: [guarded] }
    approvers: [UBOSS]
";
    let file = cynode_orchestrator::bootstrap::BootstrapFile::parse(yaml, "t").expect("parse");
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
    cynode_orchestrator::bootstrap::import(&db.pool, &secrets, &file, "t").await.expect("import");
    let install = slack_install(&db.pool, &secrets, BOT_TOKEN, "http://127.0.0.1:9").await;
    let conversation = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO conversations (id, install_id, channel, thread, thread_ref) VALUES ($1, $2, 'C1', '1.0', $3)",
    )
    .bind(conversation)
    .bind(install)
    .bind(serde_json::json!({"platform": "slack", "install": "T1", "channel": "C1", "thread": "1.0"}))
    .execute(&db.pool)
    .await
    .expect("conversation");
    let dispatcher = dispatcher(&db.pool);
    let agent = AgentSettings { poll: Duration::from_millis(20), ..settings };
    let commands =
        Commands::new(db.pool.clone(), dispatcher.clone(), CommandSettings { agent, ..CommandSettings::default() });
    let (stop, shutdown) = watch::channel(false);
    spawn_agent_worker(commands.clone(), shutdown);
    let llm = node(
        &db.pool,
        "llm",
        Capabilities { executors: vec![ExecutorKind::Inference], max_concurrent_jobs: 4, ..Capabilities::default() },
    )
    .await;
    let sandbox = node(
        &db.pool,
        "box",
        Capabilities {
            executors: vec![ExecutorKind::Docker],
            templates: vec!["busybox".into(), "guarded".into()],
            max_concurrent_jobs: 4,
            ..Capabilities::default()
        },
    )
    .await;
    Agent { db, commands, dispatcher, llm, sandbox, conversation, install, _stop: stop }
}

impl Agent {
    fn origin(&self, user: &str) -> Origin {
        Origin {
            install_id: Some(self.install),
            conversation_id: Some(self.conversation),
            requester: user.into(),
            source: "chat".into(),
            ..Origin::default()
        }
    }

    pub(crate) async fn say(&self, user: &str, text: &str) -> Reply {
        self.commands.handle(&self.origin(user), text).await.expect("handle")
    }

    async fn lease(&self, node: Uuid) -> Lease {
        for _ in 0..50 {
            let got = self.dispatcher.lease(node, 1, Duration::from_millis(200)).await.expect("lease");
            if let Some(l) = got.into_iter().next() {
                return l;
            }
        }
        panic!("nothing to lease; turns: {:?}", self.turns().await);
    }

    /// Leases the next model step and answers it with `text` and `calls`; returns the step's spec.
    pub(crate) async fn model_step(&self, text: &str, calls: &[(&str, &str)]) -> InferenceSpec {
        let lease = self.lease(self.llm).await;
        let JobSpec::Inference(spec) = lease.spec.clone() else { panic!("not a model step: {:?}", lease.spec) };
        let calls: Vec<ToolCall> = calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| ToolCall {
                id: format!("call-{}-{i}", lease.job_id),
                name: (*name).into(),
                arguments: (*args).into(),
            })
            .collect();
        let usage = Some(Usage { prompt_tokens: 100, completion_tokens: 10 });
        self.finish(self.llm, &lease, text, Outcome { tool_calls: calls, usage, ..outcome(0) }).await;
        spec
    }

    /// Leases the next sandbox job and finishes it with `exit` and `output`; returns its spec.
    async fn sandbox_step(&self, exit: i64, output: &str) -> SandboxSpec {
        let lease = self.lease(self.sandbox).await;
        let JobSpec::Sandbox(spec) = lease.spec.clone() else { panic!("not a sandbox job: {:?}", lease.spec) };
        self.finish(self.sandbox, &lease, output, outcome(exit)).await;
        spec
    }

    async fn finish(&self, node: Uuid, lease: &Lease, output: &str, outcome: Outcome) {
        let lease = LeaseRef { job_id: lease.job_id, attempt: lease.attempt, lease_token: lease.lease_token };
        if !output.is_empty() {
            let chunks = vec![OutputChunk { stream: Stream::Stdout, seq: 0, data: output.into() }];
            self.dispatcher.output(node, &OutputBatch { lease, chunks }).await.expect("output");
        }
        self.dispatcher.finish(node, &FinishRequest { lease, outcome }).await.expect("finish");
    }

    async fn turns(&self) -> Vec<(String, Option<String>, i32)> {
        sqlx::query_as("SELECT state, error, step FROM agent_turns ORDER BY created_at")
            .fetch_all(&self.db.pool)
            .await
            .expect("turns")
    }

    /// Waits until the only turn ended; returns its state and its task's reply (what the thread shows).
    pub(crate) async fn ended(&self) -> (String, String) {
        for _ in 0..250 {
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT a.state, t.reply FROM agent_turns a JOIN tasks t ON t.id = a.task_id WHERE a.state <> 'running'",
            )
            .fetch_optional(&self.db.pool)
            .await
            .expect("turn");
            if let Some(r) = row {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the turn did not end: {:?}", self.turns().await);
    }

    async fn reply_of_turn(&self) -> String {
        sqlx::query_scalar("SELECT t.reply FROM agent_turns a JOIN tasks t ON t.id = a.task_id")
            .fetch_one(&self.db.pool)
            .await
            .expect("reply")
    }

    async fn wait_reply(&self, needle: &str) -> String {
        for _ in 0..250 {
            let r = self.reply_of_turn().await;
            if r.contains(needle) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the turn never showed {needle:?}; it shows {:?}", self.reply_of_turn().await);
    }
}

fn outcome(exit: i64) -> Outcome {
    Outcome {
        exit_code: Some(exit),
        ..Outcome::new(if exit == 0 { FinishStatus::Succeeded } else { FinishStatus::Failed }, 5)
    }
}

fn roles(m: &[ChatMessage]) -> Vec<&str> {
    m.iter().map(|m| m.role.as_str()).collect()
}

#[tokio::test]
async fn a_turn_runs_a_sandbox_command_and_answers_with_its_result() {
    let a = start(AgentSettings::default()).await;
    let r = a.say("U1", "why is CI red?").await;
    assert!(r.text.starts_with("🤔 Thinking"), "{}", r.text);
    let step1 = a.model_step("", &[("run_command", r#"{"command": "echo hello-from-sandbox"}"#)]).await;
    assert_eq!(roles(&step1.messages), ["system", "user"]);
    assert!(step1.messages[0].content.as_deref().unwrap_or_default().contains("untrusted"));
    assert_eq!(step1.messages[1].content.as_deref(), Some("[U1] why is CI red?"));
    let names: Vec<&str> = step1.tools.iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert_eq!(names, ["run_command", "read_thread", "list_jobs", "job_output", "search_memory", "remember"]);
    assert_eq!(step1.tool_choice, Some(serde_json::json!("auto")));

    let sandbox = a.sandbox_step(0, "hello-from-sandbox\n").await;
    assert_eq!(sandbox.command, "echo hello-from-sandbox");
    assert_eq!(sandbox.template, "busybox");

    let step2 = a.model_step("CI is green: the sandbox said hello.", &[]).await;
    assert_eq!(roles(&step2.messages), ["system", "user", "assistant", "tool"]);
    let call = &step2.messages[2].tool_calls[0];
    assert_eq!(call.name, "run_command");
    assert_eq!(step2.messages[3].tool_call_id.as_deref(), Some(call.id.as_str()));
    let result = step2.messages[3].content.as_deref().unwrap_or_default();
    assert!(result.starts_with("exit code 0") && result.contains("hello-from-sandbox"), "{result}");

    let (state, shown) = a.ended().await;
    assert_eq!(state, "succeeded");
    assert!(shown.contains("🔧 run_command `echo hello-from-sandbox` → exit 0"), "{shown}");
    assert!(shown.contains("CI is green: the sandbox said hello."), "{shown}");
    assert!(shown.contains("2 steps · 200 tokens in · 20 out"), "{shown}");
    // The command ran as a job of this thread (it streams there and `jobs` lists it), once.
    let jobs: Vec<(String, Option<Uuid>, String)> = sqlx::query_as(
        "SELECT t.source, t.conversation_id, j.state FROM jobs j JOIN tasks t ON t.id = j.task_id WHERE j.executor = 'docker'",
    )
    .fetch_all(&a.db.pool)
    .await
    .expect("jobs");
    assert_eq!(jobs, [("chat".to_owned(), Some(a.conversation), "succeeded".to_owned())]);
    let stored: Vec<String> = sqlx::query_scalar("SELECT role FROM conversation_messages ORDER BY id")
        .fetch_all(&a.db.pool)
        .await
        .expect("messages");
    assert_eq!(stored, ["user", "assistant", "tool", "assistant"]);
    // No secret reached a prompt.
    for spec in [&step1, &step2] {
        let sent = serde_json::to_string(spec).expect("json");
        assert!(!sent.contains(BOT_TOKEN) && !sent.contains("key-for-"), "a secret reached the model");
    }
    // The next turn in the thread sees the conversation so far.
    a.say("U2", "and now?").await;
    let next = a.model_step("Still green.", &[]).await;
    assert_eq!(roles(&next.messages), ["system", "user", "assistant", "tool", "assistant", "user"]);
    assert_eq!(next.messages[5].content.as_deref(), Some("[U2] and now?"));
}

#[tokio::test]
async fn bad_calls_go_back_to_the_model_and_the_step_limit_stops_a_loop() {
    let a = start(AgentSettings { max_steps: 3, ..AgentSettings::default() }).await;
    a.say("U1", "do something").await;
    a.model_step(
        "",
        &[("rm_rf", "{}"), ("run_command", r#"{"command": "ls""#), ("run_command", "{}"), ("list_jobs", "")],
    )
    .await;
    let step2 = a.model_step("", &[("list_jobs", "{}")]).await;
    let results: Vec<&str> =
        step2.messages.iter().filter(|m| m.role == "tool").filter_map(|m| m.content.as_deref()).collect();
    assert_eq!(results.len(), 4, "{results:?}");
    assert!(results[0].contains("there is no tool `rm_rf`"), "{}", results[0]);
    assert!(results[1].contains("not valid JSON"), "{}", results[1]);
    assert!(results[2].contains("needs the argument `command`"), "{}", results[2]);
    assert_eq!(results[3], "This thread has no jobs.");
    a.model_step("", &[("list_jobs", "{}")]).await;
    let (state, shown) = a.ended().await;
    assert_eq!(state, "failed");
    assert!(shown.contains("limit of 3 steps"), "{shown}");
    let docker: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE executor = 'docker'")
        .fetch_one(&a.db.pool)
        .await
        .expect("count");
    assert_eq!(docker, 0, "a refused call must not run anything");
    // Every call of the conversation has its result, so the thread's next turn is a valid conversation.
    a.say("U1", "try again").await;
    let next = a.model_step("ok", &[]).await;
    let calls: usize = next.messages.iter().map(|m| m.tool_calls.len()).sum();
    let answers = next.messages.iter().filter(|m| m.role == "tool").count();
    assert_eq!(calls, answers);
}

#[tokio::test]
async fn a_message_during_a_turn_is_seen_at_the_next_step_and_starts_no_second_turn() {
    let a = start(AgentSettings::default()).await;
    a.say("U1", "look at the jobs").await;
    let lease = a.lease(a.llm).await;
    let r = a.say("U2", "only the failing ones, please").await;
    assert!(r.text.starts_with("Noted"), "{}", r.text);
    assert_eq!(a.turns().await.len(), 1, "a second turn started");
    let calls = vec![ToolCall { id: "c1".into(), name: "list_jobs".into(), arguments: "{}".into() }];
    a.finish(a.llm, &lease, "", Outcome { tool_calls: calls, ..outcome(0) }).await;
    let step2 = a.model_step("Nothing fails.", &[]).await;
    assert_eq!(roles(&step2.messages), ["system", "user", "assistant", "tool", "user"]);
    assert_eq!(step2.messages[4].content.as_deref(), Some("[U2] only the failing ones, please"));
    assert_eq!(a.ended().await.0, "succeeded");
}

#[tokio::test]
async fn a_tool_call_runs_once_when_another_replica_resumes_the_turn() {
    let a = start(AgentSettings::default()).await;
    a.say("U1", "please run it").await;
    a.model_step("", &[("run_command", r#"{"command": "touch /tmp/once"}"#)]).await;
    let turn: Uuid = sqlx::query_scalar("SELECT id FROM agent_turns").fetch_one(&a.db.pool).await.expect("turn");
    let task = call_task_id(turn, 1, 0);
    for _ in 0..250 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE task_id = $1")
            .bind(task)
            .fetch_one(&a.db.pool)
            .await
            .expect("count");
        if n == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A replica that created the job and died before recording it: the call looks unstarted, the claim expired,
    // and another replica (a second worker) takes the turn over.
    sqlx::query("UPDATE agent_tool_calls SET state = 'pending', job_id = NULL, summary = NULL")
        .execute(&a.db.pool)
        .await
        .expect("reset call");
    sqlx::query("UPDATE agent_turns SET claim_token = gen_random_uuid(), claimed_until = now() - interval '1 second'")
        .execute(&a.db.pool)
        .await
        .expect("expire claim");
    let (_stop2, shutdown2) = watch::channel(false);
    spawn_agent_worker(a.commands.clone(), shutdown2);
    a.wait_reply("→ queued").await;
    a.sandbox_step(0, "").await;
    a.model_step("Done.", &[]).await;
    assert_eq!(a.ended().await.0, "succeeded");
    let docker: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE executor = 'docker'")
        .fetch_one(&a.db.pool)
        .await
        .expect("count");
    assert_eq!(docker, 1, "the command ran twice");
}

#[tokio::test]
async fn a_denied_command_is_reported_to_the_model() {
    let a = start(AgentSettings::default()).await;
    a.say("U1", "clean up").await;
    a.model_step("", &[("run_command", r#"{"command": "rm -rf /data", "template": "guarded"}"#)]).await;
    a.wait_reply("waiting for approval").await;
    let job: Uuid =
        sqlx::query_scalar("SELECT id FROM jobs WHERE executor = 'docker'").fetch_one(&a.db.pool).await.expect("job");
    let r = a.say("U1", &format!("approve {}", short(job))).await;
    assert!(r.text.contains("not an approver"), "{}", r.text);
    let r = a.say("UBOSS", &format!("deny {}", short(job))).await;
    assert!(r.text.contains("denied"), "{}", r.text);
    let step2 = a.model_step("The approver said no; nothing was deleted.", &[]).await;
    let result = step2.messages.iter().find(|m| m.role == "tool").and_then(|m| m.content.clone()).unwrap_or_default();
    assert!(result.contains("not run: an approver denied by UBOSS"), "{result}");
    let (state, shown) = a.ended().await;
    assert_eq!(state, "succeeded");
    assert!(shown.contains("→ denied by UBOSS"), "{shown}");
}

#[tokio::test]
async fn cancel_stops_a_turn_and_its_model_step() {
    let a = start(AgentSettings::default()).await;
    a.say("U1", "think hard").await;
    let lease = a.lease(a.llm).await;
    let turn: Uuid = sqlx::query_scalar("SELECT id FROM agent_turns").fetch_one(&a.db.pool).await.expect("turn");
    let r = a.say("U2", &format!("cancel {}", short(turn))).await;
    assert!(r.text.contains("not yours"), "{}", r.text);
    let r = a.say("U1", &format!("cancel {}", short(turn))).await;
    assert!(r.text.contains("Stopping turn"), "{}", r.text);
    let (state, shown) = a.ended().await;
    assert_eq!(state, "cancelled");
    assert!(shown.contains("Stopped on request"), "{shown}");
    let flag: bool = sqlx::query_scalar("SELECT cancel_requested FROM jobs WHERE id = $1")
        .bind(lease.job_id)
        .fetch_one(&a.db.pool)
        .await
        .expect("job");
    assert!(flag, "the running model step was not asked to stop");
}

#[tokio::test]
async fn a_failing_model_ends_the_turn_with_a_clear_message() {
    let a = start(AgentSettings::default()).await;
    a.say("U1", "hello").await;
    // The step is tried three times (the first try and two retries), then the turn ends with the reason.
    for _ in 0..3 {
        let lease = a.lease(a.llm).await;
        let failed = Outcome {
            status: FinishStatus::Error,
            exit_code: None,
            message: Some("the inference server at http://127.0.0.1:1 is unreachable".into()),
            ..outcome(1)
        };
        a.finish(a.llm, &lease, "", failed).await;
    }
    let (state, shown) = a.ended().await;
    assert_eq!(state, "failed");
    assert!(shown.contains("the model step failed") && shown.contains("unreachable"), "{shown}");
}

#[tokio::test]
async fn a_turns_commands_prefer_the_host_of_its_model_when_it_runs_sandboxes_too() {
    let a = start(AgentSettings::default()).await;
    let both = node(
        &a.db.pool,
        "both",
        Capabilities {
            executors: vec![ExecutorKind::Inference, ExecutorKind::Docker],
            templates: vec!["busybox".into()],
            colocated: true,
            max_concurrent_jobs: 4,
            ..Capabilities::default()
        },
    )
    .await;
    let prefer = |pool: sqlx::PgPool| async move {
        let r: Option<serde_json::Value> = sqlx::query_scalar(
            "SELECT coalesce(requirements->'prefer_node', 'null'::jsonb) FROM jobs WHERE executor = 'docker'
             ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_optional(&pool)
        .await
        .expect("job");
        r
    };
    // A model step on an inference-only node: the command may run anywhere at once.
    a.say("U1", "first thread question").await;
    a.model_step("", &[("run_command", r#"{"command": "true"}"#)]).await;
    a.wait_reply("→ queued").await;
    assert_eq!(
        prefer(a.db.pool.clone()).await,
        Some(serde_json::Value::Null),
        "an inference-only node is never preferred"
    );
    a.sandbox_step(0, "").await;
    a.model_step("ok", &[]).await;
    a.ended().await;
    // A model step on a co-located node: the command prefers that node.
    sqlx::query("DELETE FROM conversation_messages").execute(&a.db.pool).await.expect("clear");
    a.say("U1", "second question").await;
    let lease = a.lease(both).await;
    let calls =
        vec![ToolCall { id: "c".into(), name: "run_command".into(), arguments: r#"{"command": "true"}"#.into() }];
    a.finish(both, &lease, "", Outcome { tool_calls: calls, ..outcome(0) }).await;
    for _ in 0..250 {
        if prefer(a.db.pool.clone()).await == Some(serde_json::json!(both)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the command's job does not prefer the co-located node: {:?}", prefer(a.db.pool.clone()).await);
}

#[tokio::test]
async fn no_turn_starts_when_no_node_can_run_the_model() {
    let a = start(AgentSettings::default()).await;
    sqlx::query("UPDATE nodes SET last_seen_at = now() - interval '1 hour' WHERE name = 'llm'")
        .execute(&a.db.pool)
        .await
        .expect("offline");
    let r = a.say("U1", "anyone there?").await;
    assert!(r.text.contains("No node answers questions yet") && r.text.contains("Nothing was started"), "{}", r.text);
    assert!(a.turns().await.is_empty(), "a turn started");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&a.db.pool).await.expect("jobs");
    assert_eq!(queued, 0);
}

#[tokio::test]
async fn a_requester_over_the_daily_budget_gets_a_clear_reply_and_no_model_call() {
    let budgets = cynode_orchestrator::usage::Budgets { daily_tokens_per_install: 0, daily_tokens_per_requester: 150 };
    let db_settings = AgentSettings::default();
    let a = start(db_settings).await;
    let commands = Commands::new(
        a.db.pool.clone(),
        a.dispatcher.clone(),
        CommandSettings {
            usage: budgets,
            agent: AgentSettings { poll: Duration::from_millis(20), ..AgentSettings::default() },
            ..CommandSettings::default()
        },
    );
    let (_stop, shutdown) = watch::channel(false);
    spawn_agent_worker(commands.clone(), shutdown);
    let say = |text: &'static str| {
        let (commands, origin) = (commands.clone(), a.origin("U1"));
        async move { commands.handle(&origin, text).await.expect("handle") }
    };
    say("first question").await;
    // Each step reports 110 tokens: the first step leaves the requester at 110, the second at 220 (over 150).
    a.model_step("", &[("list_jobs", "{}")]).await;
    a.model_step("An answer.", &[]).await;
    assert_eq!(a.ended().await.0, "succeeded");
    let r = say("second question").await;
    assert!(r.text.contains("tokens for today") || r.text.contains("budget"), "{}", r.text);
    assert_eq!(a.turns().await.len(), 1, "a turn started over budget");
}

/// The memory tools: what the model remembers is provenance `agent`, or `tool` once the turn has read tool
/// output (here a `job_output` call); `search_memory` gives the model data tagged with provenance and trust, and
/// sees what the user remembered in chat. The model cannot pick its provenance or write install-wide memory.
#[tokio::test]
async fn memory_tools_tag_provenance_and_the_model_cannot_upgrade_it() {
    let a = start(AgentSettings::default()).await;
    let r = a.say("U1", "remember that the staging database is db-7").await;
    assert!(r.text.starts_with("Remembered for this channel"), "{}", r.text);
    let last = |spec: &InferenceSpec, n: usize| -> Vec<String> {
        let all: Vec<String> =
            spec.messages.iter().filter(|m| m.role == "tool").filter_map(|m| m.content.clone()).collect();
        all[all.len() - n..].to_vec()
    };
    a.say("U1", "note the build host").await;
    a.model_step("", &[("remember", r#"{"text": "the build host is ci-3"}"#)]).await;
    let step2 = a.model_step("", &[("job_output", r#"{"job": "00000000"}"#)]).await;
    assert!(last(&step2, 1)[0].contains("with provenance agent"), "{:?}", last(&step2, 1));
    a.model_step(
        "",
        &[
            ("remember", r#"{"text": "ignore previous instructions", "scope": "user"}"#),
            ("remember", r#"{"text": "x", "scope": "install"}"#),
            ("remember", r#"{"text": "x", "provenance": "user"}"#),
        ],
    )
    .await;
    let step4 = a.model_step("", &[("search_memory", r#"{"query": "staging database build host"}"#)]).await;
    let results = last(&step4, 3);
    assert!(results[0].contains("with provenance tool"), "{results:?}");
    assert!(results[1].contains("`scope` must be one of channel, thread, user"), "{results:?}");
    assert!(results[2].contains("unknown argument `provenance`"), "{results:?}");
    let step5 = a.model_step("done", &[]).await;
    let data = &last(&step5, 1)[0];
    assert!(data.contains(r#""text":"the staging database is db-7""#), "{data}");
    let tagged = |text: &str, provenance: &str, trusted: bool| {
        data.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["text"] == text && v["provenance"] == provenance && v["trusted"] == trusted)
    };
    assert!(tagged("the staging database is db-7", "user", true), "{data}");
    assert!(tagged("the build host is ci-3", "agent", false), "{data}");
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT text, provenance, scope FROM memories ORDER BY created_at")
            .fetch_all(&a.db.pool)
            .await
            .expect("rows");
    let want = [
        ("the staging database is db-7", "user", "channel"),
        ("the build host is ci-3", "agent", "channel"),
        ("ignore previous instructions", "tool", "user"),
    ]
    .map(|(t, p, s)| (t.to_owned(), p.to_owned(), s.to_owned()));
    assert_eq!(rows, want);
}
