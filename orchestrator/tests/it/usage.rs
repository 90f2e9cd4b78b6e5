//! The usage ledger and daily budgets against a real PostgreSQL: model calls finished through the dispatcher
//! (the test acts as the nodes) are recorded by the trigger; `ask` over a budget is answered without a job.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cynode_orchestrator::bootstrap::{BootstrapFile, import};
use cynode_orchestrator::commands::{CommandSettings, Commands, Reply};
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::dispatch::Dispatcher;
use cynode_orchestrator::tasks::{self, NewJob, Origin};
use cynode_orchestrator::usage::{self, Budgets, ReportQuery, UsageBy};
use cynode_protocol::{
    Capabilities, ExecutorKind, FinishRequest, FinishStatus, InferenceSpec, JobSpec, Lease, LeaseRef, Outcome,
    Requirements, Usage,
};
use cynode_tests::TestDb;
use uuid::Uuid;

use crate::support::{dispatcher, node};

struct Env {
    db: TestDb,
    commands: Commands,
    dispatcher: Arc<Dispatcher>,
    llm: Uuid,
    sandbox: Uuid,
    install: Uuid,
    conversation: Uuid,
}

/// A Slack install `acme` (with `install_extra` appended to its bootstrap entry), a thread in its channel
/// `C1`, an inference node and a sandbox node.
async fn start(budgets: Budgets, install_extra: &str) -> Env {
    let db = TestDb::new().await;
    let yaml = format!(
        "
installs:
  - platform: slack
    name: acme
    team_id: T1
    signing_secret: sign-secret
    bot_token: xoxb-usage-test
{install_extra}
templates:
  - {{ name: busybox, image: 'cynode/busybox:latest' }}
"
    );
    let file = BootstrapFile::parse(&yaml, "t").expect("parse");
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
    import(&db.pool, &secrets, &file, "t").await.expect("import");
    let install: Uuid = sqlx::query_scalar("SELECT id FROM installs WHERE external_id = 'T1'")
        .fetch_one(&db.pool)
        .await
        .expect("install");
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
    let settings = CommandSettings { usage: budgets, ..CommandSettings::default() };
    let commands = Commands::new(db.pool.clone(), dispatcher.clone(), settings);
    let caps = |kind| Capabilities {
        executors: vec![kind],
        templates: vec!["busybox".into()],
        max_concurrent_jobs: 4,
        ..Capabilities::default()
    };
    let llm = node(&db.pool, "llm", caps(ExecutorKind::Inference)).await;
    let sandbox = node(&db.pool, "box", caps(ExecutorKind::Docker)).await;
    Env { db, commands, dispatcher, llm, sandbox, install, conversation }
}

fn outcome(usage: Option<Usage>) -> Outcome {
    Outcome { exit_code: Some(0), usage, ..Outcome::new(FinishStatus::Succeeded, 5) }
}

fn used(prompt_tokens: u64, completion_tokens: u64) -> Option<Usage> {
    Some(Usage { prompt_tokens, completion_tokens })
}

impl Env {
    fn origin(&self, user: &str) -> Origin {
        Origin {
            install_id: Some(self.install),
            conversation_id: Some(self.conversation),
            requester: user.into(),
            source: "chat".into(),
            ..Origin::default()
        }
    }

    async fn say(&self, origin: &Origin, text: &str) -> Reply {
        self.commands.handle(origin, text).await.expect("handle")
    }

    async fn lease(&self, node: Uuid) -> Lease {
        for _ in 0..50 {
            let got = self.dispatcher.lease(node, 1, Duration::from_millis(200)).await.expect("lease");
            if let Some(l) = got.into_iter().next() {
                return l;
            }
        }
        panic!("nothing to lease");
    }

    /// Leases `node`'s next job and finishes it with `outcome`; returns the job.
    async fn finish_next(&self, node: Uuid, outcome: Outcome) -> Uuid {
        let l = self.lease(node).await;
        let lease = LeaseRef { job_id: l.job_id, attempt: l.attempt, lease_token: l.lease_token };
        self.dispatcher.finish(node, &FinishRequest { lease, outcome }).await.expect("finish");
        l.job_id
    }

    /// `ask` by `user` in the thread, answered by the model with `usage`.
    async fn ask_answered(&self, user: &str, usage: Option<Usage>) -> Uuid {
        let r = self.say(&self.origin(user), "ask what is up?").await;
        assert!(r.job_id.is_some(), "not refused: {}", r.text);
        self.finish_next(self.llm, outcome(usage)).await
    }

    async fn ledger(&self) -> Vec<LedgerRow> {
        sqlx::query_as(
            "SELECT job_id, task_id, turn_id, install_id, requester, conversation_id, model, prompt_tokens,
                    completion_tokens, day = (now() AT TIME ZONE 'UTC')::date AS today
             FROM usage_ledger ORDER BY at, job_id",
        )
        .fetch_all(&self.db.pool)
        .await
        .expect("ledger")
    }

    async fn inference_jobs(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE executor = 'inference'")
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }
}

#[derive(Debug, sqlx::FromRow)]
struct LedgerRow {
    job_id: Uuid,
    task_id: Uuid,
    turn_id: Option<Uuid>,
    install_id: Option<Uuid>,
    requester: String,
    conversation_id: Option<Uuid>,
    model: String,
    prompt_tokens: i64,
    completion_tokens: i64,
    today: bool,
}

/// A running agent turn of `user` in the thread (as `agent::begin` writes it) with one model step queued on its
/// steps task: `(turn, job)`.
async fn agent_step(env: &Env, user: &str) -> (Uuid, Uuid) {
    let mut tx = env.db.pool.begin().await.expect("tx");
    let origin = env.origin(user);
    let task =
        tasks::create_task(&mut tx, &origin, "agent", "why is CI red?", &serde_json::json!({})).await.expect("t");
    let steps_origin = Origin { conversation_id: None, source: "agent".into(), ..origin };
    let steps = tasks::create_task(&mut tx, &steps_origin, "agent.steps", "", &serde_json::json!({})).await.expect("s");
    let turn = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO agent_turns (id, task_id, steps_task_id, conversation_id, install_id, requester, max_steps,
                                  max_output_tokens, deadline)
         VALUES ($1, $2, $3, $4, $5, $6, 8, 8192, now() + interval '10 minutes')",
    )
    .bind(turn)
    .bind(task)
    .bind(steps)
    .bind(env.conversation)
    .bind(env.install)
    .bind(user)
    .execute(&mut *tx)
    .await
    .expect("turn");
    let spec = JobSpec::Inference(InferenceSpec {
        model: "qwen-small".into(),
        prompt: String::new(),
        messages: Vec::new(),
        tools: Vec::new(),
        tool_choice: None,
        system: None,
        max_tokens: 64,
        timeout_s: 60,
    });
    let job = NewJob { spec, requirements: Requirements::default(), priority: 0, max_attempts: 3, hold: false };
    let job = tasks::create_job(&mut tx, steps, &job).await.expect("job");
    tx.commit().await.expect("commit");
    env.dispatcher.announce();
    (turn, job)
}

#[tokio::test]
async fn finished_model_calls_are_recorded_once_with_their_turn_requester_channel_and_install() {
    let env = start(Budgets::default(), "").await;

    // An `ask` answered with usage: one row, attributed to its task, requester, thread and install.
    let ask = env.ask_answered("U1", used(120, 30)).await;
    let rows = env.ledger().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let task: Uuid = sqlx::query_scalar("SELECT task_id FROM jobs WHERE id = $1")
        .bind(ask)
        .fetch_one(&env.db.pool)
        .await
        .expect("t");
    let r = &rows[0];
    assert_eq!((r.job_id, r.task_id, r.turn_id), (ask, task, None));
    assert_eq!(
        (r.install_id, r.requester.as_str(), r.conversation_id),
        (Some(env.install), "U1", Some(env.conversation))
    );
    assert_eq!((r.model.as_str(), r.prompt_tokens, r.completion_tokens, r.today), ("", 120, 30, true));

    // The node retrying the same finish records nothing twice.
    let lease: (i32, Uuid) = sqlx::query_as("SELECT attempt, lease_token FROM jobs WHERE id = $1")
        .bind(ask)
        .fetch_one(&env.db.pool)
        .await
        .expect("lease");
    let again = FinishRequest {
        lease: LeaseRef { job_id: ask, attempt: lease.0, lease_token: lease.1 },
        outcome: outcome(used(120, 30)),
    };
    env.dispatcher.finish(env.llm, &again).await.expect("idempotent finish");
    assert_eq!(env.ledger().await.len(), 1);

    // A model call whose server reported no usage, and a sandbox job (even one whose node sent usage): no row.
    env.ask_answered("U1", None).await;
    let r = env.say(&env.origin("U1"), "run echo hi").await;
    assert!(r.job_id.is_some(), "{}", r.text);
    env.finish_next(env.sandbox, outcome(used(5, 5))).await;
    assert_eq!(env.ledger().await.len(), 1, "only the call with usage is recorded");

    // An agent turn's model step: attributed to the turn, and to the turn's thread (its steps task has none).
    let (turn, step) = agent_step(&env, "U2").await;
    assert_eq!(env.finish_next(env.llm, outcome(used(7, 3))).await, step);
    let rows = env.ledger().await;
    let r = rows.iter().find(|r| r.job_id == step).expect("the step is recorded");
    assert_eq!((r.turn_id, r.requester.as_str(), r.conversation_id), (Some(turn), "U2", Some(env.conversation)));
    assert_eq!((r.model.as_str(), r.prompt_tokens, r.completion_tokens), ("qwen-small", 7, 3));

    // A node's absurd count cannot fail the finish that records it: it counts as 0.
    let odd = env.ask_answered("U3", used(u64::MAX, 4)).await;
    let state: String =
        sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1").bind(odd).fetch_one(&env.db.pool).await.expect("s");
    assert_eq!(state, "succeeded");
    let rows = env.ledger().await;
    let r = rows.iter().find(|r| r.job_id == odd).expect("recorded");
    assert_eq!((r.prompt_tokens, r.completion_tokens), (0, 4));

    // Queried per day: by requester, channel and model.
    let today = Utc::now().date_naive();
    let q = |by| ReportQuery { from: today, to: today, by, install_id: Some(env.install), limit: 100 };
    let by_requester = usage::report(&env.db.pool, &q(UsageBy::Requester)).await.expect("report");
    let tokens: Vec<(Option<&str>, i64, i64)> = by_requester
        .rows
        .iter()
        .map(|r| (r.requester.as_deref(), r.calls, r.prompt_tokens + r.completion_tokens))
        .collect();
    assert_eq!(tokens, [(Some("U1"), 1, 150), (Some("U2"), 1, 10), (Some("U3"), 1, 4)]);
    assert_eq!((by_requester.total.calls, by_requester.total.prompt_tokens), (3, 127));
    let by_channel = usage::report(&env.db.pool, &q(UsageBy::Channel)).await.expect("report");
    assert_eq!(by_channel.rows.len(), 1);
    assert_eq!((by_channel.rows[0].channel.as_deref(), by_channel.rows[0].calls), (Some("C1"), 3));
    assert_eq!(by_channel.rows[0].install_name.as_deref(), Some("acme"));
    let by_model = usage::report(&env.db.pool, &q(UsageBy::Model)).await.expect("report");
    let models: Vec<(Option<&str>, i64)> = by_model.rows.iter().map(|r| (r.model.as_deref(), r.calls)).collect();
    assert_eq!(models, [(Some(""), 2), (Some("qwen-small"), 1)]);
    let other = ReportQuery { install_id: Some(Uuid::now_v7()), ..q(UsageBy::Install) };
    assert!(usage::report(&env.db.pool, &other).await.expect("report").rows.is_empty(), "scoped to the install");
}

#[tokio::test]
async fn an_install_over_its_daily_budget_is_told_so_and_no_model_is_called() {
    let budgets = Budgets { daily_tokens_per_install: 1_000, daily_tokens_per_requester: 0 };
    let env = start(budgets, "").await;
    env.ask_answered("U1", used(900, 99)).await;
    // 999 of 1,000: still allowed.
    env.ask_answered("U2", used(1, 0)).await;
    let calls = env.inference_jobs().await;

    let r = env.say(&env.origin("U2"), "ask and now?").await;
    assert_eq!(
        r.text,
        "This install used its 1,000 tokens for today; budgets reset at 00:00 UTC — ask an admin to raise \
         `usage.daily_tokens_per_install`."
    );
    assert_eq!(r.job_id, None);
    assert_eq!(env.inference_jobs().await, calls, "no model call");
    let direct = usage::over_budget(&env.db.pool, &budgets, Some(env.install), "U9").await;
    assert!(direct.expect("store").is_some_and(|t| t.starts_with("This install used")));

    // Budgets are per UTC day: yesterday's tokens do not count today.
    sqlx::query("UPDATE usage_ledger SET day = day - 1").execute(&env.db.pool).await.expect("move");
    let r = env.say(&env.origin("U2"), "ask and now?").await;
    assert!(r.job_id.is_some(), "{}", r.text);
}

#[tokio::test]
async fn a_requester_over_budget_is_refused_and_other_requesters_are_not() {
    let env = start(Budgets { daily_tokens_per_install: 0, daily_tokens_per_requester: 500 }, "").await;
    env.ask_answered("U1", used(400, 100)).await;

    let r = env.say(&env.origin("U1"), "ask one more?").await;
    assert_eq!(
        r.text,
        "You used your 500 tokens for today; budgets reset at 00:00 UTC — ask an admin to raise \
         `usage.daily_tokens_per_requester`."
    );
    assert_eq!(r.job_id, None);
    // Another requester of the install, and the same user id outside the install, may still ask.
    assert!(env.say(&env.origin("U2"), "ask me?").await.job_id.is_some());
    let elsewhere = Origin { requester: "U1".into(), source: "api".into(), ..Origin::default() };
    assert!(env.say(&elsewhere, "ask me?").await.job_id.is_some());
}

#[tokio::test]
async fn an_installs_bootstrap_entry_overrides_the_configured_budgets() {
    let overrides = "    usage: { daily_tokens: 0, daily_tokens_per_requester: 2000 }";
    let env = start(Budgets { daily_tokens_per_install: 10, daily_tokens_per_requester: 10 }, overrides).await;
    let stored: serde_json::Value = sqlx::query_scalar("SELECT settings->'usage' FROM installs WHERE id = $1")
        .bind(env.install)
        .fetch_one(&env.db.pool)
        .await
        .expect("settings");
    assert_eq!(stored, serde_json::json!({ "daily_tokens": 0, "daily_tokens_per_requester": 2000 }));

    // Past the configured 10 tokens, within the install's own 2,000 per requester (and no install cap).
    env.ask_answered("U1", used(1500, 0)).await;
    env.ask_answered("U1", used(499, 0)).await;
    env.ask_answered("U2", used(1999, 0)).await;
    env.ask_answered("U1", used(1, 0)).await;
    let r = env.say(&env.origin("U1"), "ask again?").await;
    assert_eq!(r.job_id, None);
    assert!(
        r.text.starts_with("You used your 2,000 tokens for today")
            && r.text.contains("`usage.daily_tokens_per_requester` of this install in the bootstrap file"),
        "{}",
        r.text
    );

    // Unknown keys in an install's `usage` are refused when the file is read.
    let bad = "
installs:
  - platform: slack
    name: acme
    team_id: T1
    signing_secret: s
    bot_token: xoxb-1
    usage: { daily_token: 5 }
";
    let err = BootstrapFile::parse(bad, "cynode.yaml").expect_err("refused").to_string();
    assert!(err.contains("daily_token"), "{err}");
}
