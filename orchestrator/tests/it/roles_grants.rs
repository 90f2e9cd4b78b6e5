//! Roles grant models and agent tools, and the bootstrap file imports an install's Rego policy: a model the
//! asker's role does not grant is refused in the thread (no job, audited); a tool call the role does not grant is
//! refused as the tool's result (for the model to read) and audited; a policy file or inline policy is compiled
//! at parse time (a syntax error names the file and line) and re-importing it changes nothing; the names platforms
//! send land on linked chat identities without overriding an admin's.

use cynode_orchestrator::agent::tools::{self, Scope, Started};
use cynode_orchestrator::bootstrap::BootstrapFile;
use cynode_orchestrator::commands::{CommandSettings, Commands};
use cynode_orchestrator::crypto::SecretBox;
use cynode_tests::TestDb;
use uuid::Uuid;

use crate::roles::{chat, conversation};
use crate::support::{audited, dispatcher};

const YAML: &str = "
installs:
  - platform: slack
    name: ops
    team_id: T1
    signing_secret: 8f742231b10e8888abcd99yyyzzz85a5
    bot_token: xoxb-test-token
templates:
  - { name: busybox, image: 'cynode/busybox:latest' }
teams:
  - install: ops
    roles: { UADMIN: admin, UMEM: member }
    grants:
      member: { models: [small], tools: [read_thread, list_jobs] }
";

/// One master key per process, so a re-import can open the secrets the first import sealed.
fn secrets() -> &'static SecretBox {
    static KEY: std::sync::OnceLock<SecretBox> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SecretBox::from_base64(&SecretBox::generate_key()).expect("key"))
}

async fn import(db: &TestDb, yaml: &str, origin: &str) -> cynode_orchestrator::bootstrap::ImportReport {
    let file = BootstrapFile::parse(yaml, origin).expect("parse");
    cynode_orchestrator::bootstrap::import(&db.pool, secrets(), &file, origin).await.expect("import")
}

async fn install(db: &TestDb) -> Uuid {
    sqlx::query_scalar("SELECT id FROM installs WHERE name = 'ops'").fetch_one(&db.pool).await.expect("install")
}

#[tokio::test]
async fn a_model_the_role_does_not_grant_is_refused_for_ask_and_turns() {
    let db = TestDb::new().await;
    import(&db, YAML, "t").await;
    let install = install(&db).await;
    let general = conversation(&db, install, "CGEN").await;
    let mut settings = CommandSettings { default_model: "big".into(), ..CommandSettings::default() };
    settings.agent.model = "big".into();
    let c = Commands::new(db.pool.clone(), dispatcher(&db.pool), settings);

    let r = c.handle(&chat(install, general, "UMEM"), "ask what is up").await.expect("ask");
    assert!(r.refused, "{}", r.text);
    assert!(r.text.contains("Your role here (member) may not use model `big` (allowed: small)"), "{}", r.text);
    let r = c.handle(&chat(install, general, "UMEM"), "please look at the build").await.expect("turn");
    assert!(r.refused && r.text.contains("may not use model `big`"), "a turn is refused too: {}", r.text);
    let turns: i64 = sqlx::query_scalar("SELECT count(*) FROM agent_turns").fetch_one(&db.pool).await.expect("n");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&db.pool).await.expect("n");
    assert_eq!((turns, jobs), (0, 0), "nothing started");
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let refused: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'command.refused' AND subject = 'model' ORDER BY seq",
    )
    .fetch_all(&db.pool)
    .await
    .expect("audit");
    assert_eq!(refused.len(), 2, "both refusals audited");
    assert_eq!(refused[0]["role"], "member");

    // The admin's role has no model list: the same ask is accepted (a job is created).
    let r = c.handle(&chat(install, general, "UADMIN"), "ask what is up").await.expect("ask");
    assert!(!r.refused && r.job_id.is_some(), "{}", r.text);

    // With the granted model configured, the member may ask.
    let settings = CommandSettings { default_model: "small".into(), ..CommandSettings::default() };
    let c = Commands::new(db.pool.clone(), dispatcher(&db.pool), settings);
    let r = c.handle(&chat(install, general, "UMEM"), "ask what is up").await.expect("ask");
    assert!(!r.refused && r.job_id.is_some(), "{}", r.text);
}

#[tokio::test]
async fn a_tool_the_role_does_not_grant_is_refused_as_its_result() {
    let db = TestDb::new().await;
    import(&db, YAML, "t").await;
    let install = install(&db).await;
    let general = conversation(&db, install, "CGEN").await;
    let c = Commands::new(db.pool.clone(), dispatcher(&db.pool), CommandSettings::default());
    let scope = |who: &str| Scope {
        turn: Uuid::new_v4(),
        conversation: general,
        install: Some(install),
        requester: who.into(),
    };

    let started = tools::start(&c, &scope("UMEM"), (1, 0), "remember", r#"{"text": "the deploy key is in vault"}"#)
        .await
        .expect("start");
    let Started::Done { result, summary } = started else { panic!("a refusal is a result at once: {started:?}") };
    assert!(
        result.starts_with("error: the requester's role here (member) does not grant the tool `remember`"),
        "{result}"
    );
    assert!(result.contains("granted: read_thread, list_jobs"), "{result}");
    assert_eq!(summary, "remember → refused: not granted to the requester's role");
    let memories: i64 = sqlx::query_scalar("SELECT count(*) FROM memories").fetch_one(&db.pool).await.expect("n");
    assert_eq!(memories, 0, "the refused call did nothing");
    let r = tools::start(&c, &scope("UMEM"), (1, 1), "run_command", r#"{"command": "ls"}"#).await.expect("start");
    assert!(matches!(&r, Started::Done { result, .. } if result.contains("tool `run_command`")), "{r:?}");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&db.pool).await.expect("n");
    assert_eq!(jobs, 0, "no sandbox job for a refused run_command");
    assert_eq!(audited(&db.pool, "tool.refused").await.len(), 2);

    // A granted tool runs; the admin (no tool list) may use every tool.
    let r = tools::start(&c, &scope("UMEM"), (1, 2), "read_thread", "{}").await.expect("start");
    assert!(matches!(&r, Started::Done { summary, .. } if summary.starts_with("read_thread → ")), "{r:?}");
    let r = tools::start(&c, &scope("UADMIN"), (1, 3), "remember", r#"{"text": "admins may remember"}"#)
        .await
        .expect("start");
    assert!(matches!(&r, Started::Done { result, .. } if !result.contains("does not grant")), "{r:?}");
    assert_eq!(audited(&db.pool, "tool.refused").await.len(), 2, "nothing more refused");
}

#[tokio::test]
async fn an_unknown_tool_in_a_grant_is_refused_at_import() {
    let yaml = YAML.replace("tools: [read_thread, list_jobs]", "tools: [read_thread, sudo]");
    let e = BootstrapFile::parse(&yaml, "team.yaml").expect_err("unknown tool");
    assert!(e.to_string().contains("teams[0]") && e.to_string().contains("`sudo` is not an agent tool"), "{e}");
}

const EXAMPLE: &str = include_str!("../../../docs/examples/policy.rego");

#[tokio::test]
async fn the_bootstrap_file_imports_a_rego_policy_once() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ops.rego"), EXAMPLE).expect("write");
    let origin = dir.path().join("bootstrap.yaml").display().to_string();
    let yaml = format!("{YAML}    policy: {{ file: ops.rego, mode: enforce, on_error: open }}\n");
    let first = import(&db, &yaml, &origin).await;
    assert!(first.created >= 1, "{first}");
    let install = install(&db).await;
    let (name, source, mode, on_error): (String, String, String, String) =
        sqlx::query_as("SELECT name, source, mode, on_error FROM rego_policies WHERE install_id = $1")
            .bind(install)
            .fetch_one(&db.pool)
            .await
            .expect("stored");
    assert!(name.ends_with("ops.rego") && source == EXAMPLE, "{name}");
    assert_eq!((mode.as_str(), on_error.as_str()), ("enforce", "open"));
    assert_eq!(audited(&db.pool, "policy.import").await.len(), 1);

    let again = import(&db, &yaml, &origin).await;
    assert_eq!((again.created, again.updated), (0, 0), "re-import changes nothing: {again}");
    assert_eq!(audited(&db.pool, "policy.import").await.len(), 1, "and audits nothing");

    // Inline, shadow by default: replaces the file's policy.
    let inline = format!(
        "{YAML}    policy:\n      source: |\n{}\n",
        EXAMPLE.lines().map(|l| format!("        {l}")).collect::<Vec<_>>().join("\n")
    );
    let changed = import(&db, &inline, &origin).await;
    assert_eq!(changed.updated, 1, "{changed}");
    let (mode, on_error): (String, String) =
        sqlx::query_as("SELECT mode, on_error FROM rego_policies WHERE install_id = $1")
            .bind(install)
            .fetch_one(&db.pool)
            .await
            .expect("stored");
    assert_eq!((mode.as_str(), on_error.as_str()), ("shadow", "closed"));
    assert_eq!(audited(&db.pool, "policy.import").await.len(), 2);
}

#[test]
fn a_bad_policy_in_the_bootstrap_file_is_refused_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("dir");
    let broken = "package cynode\n\ndecision := {\"allow\": true\n\nx := 1\n";
    std::fs::write(dir.path().join("broken.rego"), broken).expect("write");
    let origin = dir.path().join("bootstrap.yaml").display().to_string();
    let parse = |policy: &str| {
        BootstrapFile::parse(&format!("{YAML}    policy: {policy}\n"), &origin).expect_err("refused").to_string()
    };
    let e = parse("{ file: broken.rego }");
    assert!(e.contains("teams[0] (`ops`) policy") && e.contains("broken.rego:5:"), "file and line: {e}");
    let e = parse("{ source: \"package cynode\\n\\ndecision := {\" }");
    assert!(e.contains("bootstrap.yaml#teams[0].policy:3:"), "the entry and line of an inline policy: {e}");
    let e = parse("{ file: missing.rego }");
    assert!(e.contains("cannot read policy file") && e.contains("missing.rego"), "{e}");
    let e = parse("{ file: broken.rego, source: x }");
    assert!(e.contains("give `file` (a .rego file) or `source`"), "{e}");
    let e = parse("{ file: broken.rego, mode: loud }");
    assert!(e.contains("mode is shadow or enforce, not `loud`"), "{e}");
}

/// A chat request from `user` as ingress records it, with the name the platform sent.
async fn chat_request(db: &TestDb, install: Uuid, user: &str, name: Option<&str>) -> Uuid {
    let (event, task) = (Uuid::now_v7(), Uuid::now_v7());
    let payload = serde_json::json!({ "actor": { "id": user, "name": name } });
    sqlx::query(
        "INSERT INTO inbound_events (id, install_id, platform, delivery_id, kind, payload)
         VALUES ($1, $2, 'slack', $1::text, 'message', $3)",
    )
    .bind(event)
    .bind(install)
    .bind(payload)
    .execute(&db.pool)
    .await
    .expect("event");
    sqlx::query(
        "INSERT INTO tasks (id, inbound_id, install_id, requester, source, command, text)
         VALUES ($1, $2, $3, $4, 'chat', 'mention', 'help')",
    )
    .bind(task)
    .bind(event)
    .bind(install)
    .bind(user)
    .execute(&db.pool)
    .await
    .expect("task");
    task
}

#[tokio::test]
async fn platform_display_names_land_on_linked_identities_without_overriding_an_admins() {
    use cynode_orchestrator::inbound::interpreter::{self, InterpreterSettings};
    use cynode_orchestrator::team::users;

    let db = TestDb::new().await;
    import(&db, YAML, "t").await;
    let install = install(&db).await;
    users::link_identity(&db.pool, "cli", "ada", "ops", "UMEM", None).await.expect("link");
    users::link_identity(&db.pool, "cli", "boss", "ops", "UADMIN", Some("The Boss")).await.expect("link");
    chat_request(&db, install, "UMEM", Some("Countess")).await;
    chat_request(&db, install, "UADMIN", Some("bossy")).await;
    chat_request(&db, install, "USTRANGER", Some("Nobody")).await;
    let c = Commands::new(db.pool.clone(), dispatcher(&db.pool), CommandSettings::default());
    let settings = InterpreterSettings::default();
    assert_eq!(interpreter::run_once(&db.pool, &c, &settings).await.expect("interpret"), 3);

    let ada = users::show(&db.pool, "ada", None).await.expect("show").expect("ada");
    let id = &ada.identities[0];
    assert_eq!((id.display_name.as_deref(), id.platform_name.as_deref()), (None, Some("Countess")));
    assert_eq!(id.shown_name(), Some("Countess"));
    let boss = users::show(&db.pool, "boss", None).await.expect("show").expect("boss");
    let id = &boss.identities[0];
    assert_eq!(id.platform_name.as_deref(), Some("bossy"));
    assert_eq!(id.shown_name(), Some("The Boss"), "the admin's name wins");
    let unlinked: i64 = sqlx::query_scalar("SELECT count(*) FROM chat_identities WHERE user_id = 'USTRANGER'")
        .fetch_one(&db.pool)
        .await
        .expect("n");
    assert_eq!(unlinked, 0, "identities nobody linked are not created");

    // A later request with a new name updates it; one without a name leaves it.
    chat_request(&db, install, "UMEM", Some("Ada L")).await;
    chat_request(&db, install, "UADMIN", None).await;
    interpreter::run_once(&db.pool, &c, &settings).await.expect("interpret");
    let names: Vec<Option<String>> =
        sqlx::query_scalar("SELECT platform_name FROM chat_identities WHERE install_id = $1 ORDER BY user_id")
            .bind(install)
            .fetch_all(&db.pool)
            .await
            .expect("names");
    assert_eq!(names, [Some("bossy".to_string()), Some("Ada L".to_string())]);
}
