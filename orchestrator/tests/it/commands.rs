use cynode_orchestrator::commands::{CommandSettings, Commands};
use cynode_orchestrator::tasks::Origin;
use cynode_tests::TestDb;

use crate::support::dispatcher;

async fn setup(db: &TestDb) -> Commands {
    let yaml = "
templates:
  - { name: busybox, image: 'cynode/busybox:latest' }
  - { name: net, image: 'cynode/busybox:latest', network: true }
policy:
  - when: { network: true }
    approvers: [UBOSS]
";
    let file = cynode_orchestrator::bootstrap::BootstrapFile::parse(yaml, "t").expect("parse");
    let sb =
        cynode_orchestrator::crypto::SecretBox::from_base64(&cynode_orchestrator::crypto::SecretBox::generate_key())
            .expect("key");
    cynode_orchestrator::bootstrap::import(&db.pool, &sb, &file, "t").await.expect("import");
    Commands::new(db.pool.clone(), dispatcher(&db.pool), CommandSettings::default())
}

fn user(id: &str) -> Origin {
    Origin { requester: id.into(), source: "chat".into(), ..Origin::default() }
}

async fn state(db: &TestDb, job: uuid::Uuid) -> String {
    sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.expect("state")
}

#[tokio::test]
async fn run_queues_a_sandbox_job_on_the_default_template() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let caps = cynode_protocol::Capabilities {
        executors: vec![cynode_protocol::ExecutorKind::Docker],
        templates: vec!["busybox".into()],
        ..Default::default()
    };
    crate::support::node(&db.pool, "local", caps).await;
    let r = c.handle(&user("U1"), "run echo hi").await.expect("run");
    let job = r.job_id.expect("job");
    assert!(r.text.contains("queued on `busybox`") && r.text.contains("`echo hi`"), "{}", r.text);
    assert_eq!(state(&db, job).await, "queued");
    let spec: serde_json::Value =
        sqlx::query_scalar("SELECT spec FROM jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.expect("spec");
    assert_eq!(spec["kind"], "sandbox");
    assert_eq!(spec["command"], "echo hi");
    assert_eq!(spec["limits"]["memory_mb"], 256);
}

#[tokio::test]
async fn unknown_templates_and_bad_input_get_helpful_replies() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let r = c.handle(&user("U1"), "run --template nope ls").await.expect("run");
    assert!(r.text.contains("no sandbox template `nope`") && r.text.contains("busybox, net"), "{}", r.text);
    assert!(r.job_id.is_none() && r.refused);
    let r = c.handle(&user("U1"), "run --frobnicate ls").await.expect("run");
    assert!(r.text.contains("unknown option") && r.text.contains("Commands:"), "{}", r.text);
    assert!(r.refused);
    let r = c.handle(&user("U1"), "/wat").await.expect("help");
    assert!(r.text.starts_with("I don't know `/wat`") && r.refused, "{}", r.text);
    let r = c.handle(&user("U1"), "cancel deadbeef").await.expect("cancel");
    assert!(r.text.contains("There is no job `deadbeef`") && r.refused, "{}", r.text);
    assert!(!c.handle(&user("U1"), "help").await.expect("help").refused);
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&db.pool).await.expect("count");
    assert_eq!(none, 0, "bad input creates nothing");
}

#[tokio::test]
async fn network_jobs_wait_for_an_approver() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let r = c.handle(&user("U1"), "run --template net wget example.com").await.expect("run");
    let job = r.job_id.expect("job");
    let approval = r.approval.expect("approval requested");
    assert_eq!(approval.approvers, vec!["UBOSS".to_string()]);
    assert!(r.text.contains("needs approval (network access) by UBOSS"), "{}", r.text);
    assert_eq!(state(&db, job).await, "awaiting_approval");
    let short = &job.simple().to_string()[..8];

    let refused = c.handle(&user("U1"), &format!("approve {short}")).await.expect("approve");
    assert!(refused.text.contains("not an approver"), "{}", refused.text);
    assert_eq!(state(&db, job).await, "awaiting_approval");

    let ok = c.handle(&user("UBOSS"), &format!("approve {short}")).await.expect("approve");
    assert!(ok.text.contains("approved by UBOSS"), "{}", ok.text);
    assert_eq!(state(&db, job).await, "queued");
    let again = c.handle(&user("UBOSS"), &format!("deny {short}")).await.expect("deny");
    assert!(again.text.contains("not waiting for approval: it was already approved by UBOSS"), "{}", again.text);

    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq").fetch_all(&db.pool).await.expect("audit");
    for a in ["approval.requested", "approval.refused", "approval.resolved"] {
        assert!(actions.iter().any(|x| x == a), "{a} audited: {actions:?}");
    }
}

#[tokio::test]
async fn deny_cancels_the_job() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let job = c.handle(&user("U1"), "run --template net curl x").await.expect("run").job_id.expect("job");
    c.handle(&user("UBOSS"), &format!("deny {job}")).await.expect("deny");
    assert_eq!(state(&db, job).await, "cancelled");
    let task: String =
        sqlx::query_scalar("SELECT t.state FROM tasks t JOIN jobs j ON j.task_id = t.id WHERE j.id = $1")
            .bind(job)
            .fetch_one(&db.pool)
            .await
            .expect("task");
    assert_eq!(task, "cancelled");
}

#[tokio::test]
async fn only_owners_and_approvers_cancel() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let job = c.handle(&user("U1"), "run sleep 100").await.expect("run").job_id.expect("job");
    let r = c.handle(&user("U2"), &format!("cancel {job}")).await.expect("cancel");
    assert!(r.text.contains("is not yours"), "{}", r.text);
    assert_eq!(state(&db, job).await, "queued");
    let r = c.handle(&user("U1"), &format!("cancel {job}")).await.expect("cancel");
    assert!(r.text.contains("cancelled before it started"), "{}", r.text);
    assert_eq!(state(&db, job).await, "cancelled");
    let r = c.handle(&user("U1"), &format!("cancel {job}")).await.expect("cancel");
    assert!(r.text.contains("already finished"), "{}", r.text);

    // A running job is cancelled through its node: the request is recorded for the heartbeat.
    let job2 = c.handle(&user("U1"), "run sleep 100").await.expect("run").job_id.expect("job");
    sqlx::query("UPDATE jobs SET state = 'running' WHERE id = $1").bind(job2).execute(&db.pool).await.expect("run");
    let r = c.handle(&user("UBOSS"), &format!("cancel {job2}")).await.expect("cancel");
    assert!(r.text.contains("its node stops it"), "{}", r.text);
    let flag: bool = sqlx::query_scalar("SELECT cancel_requested FROM jobs WHERE id = $1")
        .bind(job2)
        .fetch_one(&db.pool)
        .await
        .expect("flag");
    assert!(flag);
}

#[tokio::test]
async fn status_jobs_and_ask() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let r = c.handle(&user("U9"), "jobs").await.expect("jobs");
    assert!(r.text.contains("no jobs yet"), "{}", r.text);
    let caps = cynode_protocol::Capabilities {
        executors: vec![cynode_protocol::ExecutorKind::Docker, cynode_protocol::ExecutorKind::Inference],
        templates: vec!["busybox".into()],
        ..Default::default()
    };
    crate::support::node(&db.pool, "both", caps).await;
    c.handle(&user("U9"), "run echo one").await.expect("run");
    let r = c.handle(&user("U9"), "what is 2+2?").await.expect("ask");
    assert!(r.text.starts_with("Thinking"), "{}", r.text);
    let kind: String = sqlx::query_scalar("SELECT executor FROM jobs WHERE id = $1")
        .bind(r.job_id.expect("job"))
        .fetch_one(&db.pool)
        .await
        .expect("executor");
    assert_eq!(kind, "inference");
    let r = c.handle(&user("U9"), "jobs").await.expect("jobs");
    assert!(r.text.contains("echo one") && r.text.contains("what is 2+2?"), "{}", r.text);
    let r = c.handle(&user("U9"), "status").await.expect("status");
    assert!(r.text.contains("2 queued"), "{}", r.text);
}

#[tokio::test]
async fn an_unreadable_policy_rule_holds_jobs_instead_of_letting_them_through() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    // A damaged rule ahead of everything else (approvers must be a list of ids).
    sqlx::query("INSERT INTO policy_rules (id, install_id, position, rule) VALUES ($1, NULL, -1, $2)")
        .bind(uuid::Uuid::now_v7())
        .bind(serde_json::json!({"approvers": "UBOSS"}))
        .execute(&db.pool)
        .await
        .expect("rule");
    let r = c.handle(&user("U1"), "run echo hi").await.expect("run");
    let job = r.job_id.expect("job");
    assert_eq!(state(&db, job).await, "awaiting_approval", "held: {}", r.text);
    assert!(r.text.contains("unreadable policy rule"), "{}", r.text);
}
