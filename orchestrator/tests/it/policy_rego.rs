//! Rego policy in commands: shadow vs enforce, deny with reason, require approval (N of M through role
//! approvers), fail closed vs fail open on evaluation errors, syntax errors at import, and the audit of each.

use cynode_orchestrator::commands::{CommandSettings, Commands};
use cynode_orchestrator::policy::rego::{self, Mode};
use cynode_orchestrator::tasks::Origin;
use cynode_tests::TestDb;
use uuid::Uuid;

use crate::support::{audited, dispatcher};

const EXAMPLE: &str = include_str!("../../../docs/examples/policy.rego");

const YAML: &str = "
installs:
  - platform: slack
    name: ops
    team_id: T1
    signing_secret: 8f742231b10e8888abcd99yyyzzz85a5
    bot_token: xoxb-test-token
templates:
  - { name: busybox, image: 'cynode/busybox:latest' }
  - { name: gpu, image: 'cynode/cuda:latest', gpu: true }
  - { name: net, image: 'cynode/busybox:latest', network: true }
policy:
  - when: { network: true }
    approvers: [UBOSS]
teams:
  - install: ops
    roles: { UADMIN: admin, UA: approver, UB: approver, UMEM: member, UVIEW: viewer }
    grants:
      viewer: { commands: [status, jobs, run] }
";

async fn setup(db: &TestDb) -> (Commands, Uuid, Uuid) {
    let file = cynode_orchestrator::bootstrap::BootstrapFile::parse(YAML, "t").expect("parse");
    let sb =
        cynode_orchestrator::crypto::SecretBox::from_base64(&cynode_orchestrator::crypto::SecretBox::generate_key())
            .expect("key");
    cynode_orchestrator::bootstrap::import(&db.pool, &sb, &file, "t").await.expect("import");
    let install: Uuid =
        sqlx::query_scalar("SELECT id FROM installs WHERE name = 'ops'").fetch_one(&db.pool).await.expect("install");
    let conversation = Uuid::now_v7();
    let thread_ref = serde_json::json!({ "platform": "slack", "install": "T1", "channel": "CPROD", "thread": null });
    sqlx::query(
        "INSERT INTO conversations (id, install_id, channel, thread, thread_ref) VALUES ($1, $2, 'CPROD', '', $3)",
    )
    .bind(conversation)
    .bind(install)
    .bind(thread_ref)
    .execute(&db.pool)
    .await
    .expect("conversation");
    (Commands::new(db.pool.clone(), dispatcher(&db.pool), CommandSettings::default()), install, conversation)
}

fn chat(install: Uuid, conversation: Uuid, user: &str) -> Origin {
    Origin {
        install_id: Some(install),
        conversation_id: Some(conversation),
        requester: user.into(),
        source: "chat".into(),
        ..Origin::default()
    }
}

#[tokio::test]
async fn shadow_records_and_enforce_decides() {
    let db = TestDb::new().await;
    let (c, install, conv) = setup(&db).await;
    rego::import(&db.pool, "cli", Some(install), "policy.rego", EXAMPLE, Mode::Shadow, false).await.expect("import");
    // Shadow: the viewer (whose grant allows `run`) is let through by the built-in rules; Rego's deny is recorded.
    let r = c.handle(&chat(install, conv, "UVIEW"), "run echo hi").await.expect("run");
    assert!(!r.refused && r.job_id.is_some(), "{}", r.text);
    let shadow = audited(&db.pool, "policy.shadow").await;
    assert_eq!(shadow.len(), 1);
    assert_eq!(shadow[0]["would"]["deny"], "viewers cannot run jobs");
    assert_eq!(shadow[0]["enforced"]["allow"], true);

    rego::import(&db.pool, "cli", Some(install), "policy.rego", EXAMPLE, Mode::Enforce, false).await.expect("import");
    let r = c.handle(&chat(install, conv, "UVIEW"), "run echo hi").await.expect("run");
    assert!(r.refused && r.text.contains("Policy `policy.rego` refuses this: viewers cannot run jobs"), "{}", r.text);
    assert_eq!(audited(&db.pool, "policy.deny").await.len(), 1);

    // Rego replaces the YAML rules: network from #prod needs one role approver (not UBOSS).
    let r = c.handle(&chat(install, conv, "UMEM"), "run --template net curl x").await.expect("run");
    assert!(r.text.contains("network access from #prod") && r.text.contains("any approver"), "{}", r.text);
    // A member's GPU job needs two approvers (unless it is night in UTC, when it is refused outright).
    let r = c.handle(&chat(install, conv, "UMEM"), "run --template gpu train").await.expect("run");
    let hour = chrono::Timelike::hour(&chrono::Utc::now());
    if hour < 6 {
        assert!(r.refused && r.text.contains("between 00:00 and 06:00"), "{}", r.text);
    } else {
        let job = r.job_id.expect("held");
        assert_eq!(r.approval.expect("approval").required, 2);
        let one = c.handle(&chat(install, conv, "UA"), &format!("approve {job}")).await.expect("a");
        assert!(one.text.contains("Approval 1 of 2"), "{}", one.text);
        let two = c.handle(&chat(install, conv, "UB"), &format!("approve {job}")).await.expect("b");
        assert!(two.text.contains("approved by UA, UB"), "{}", two.text);
    }
}

#[tokio::test]
async fn evaluation_errors_fail_closed_or_open_and_are_audited() {
    let db = TestDb::new().await;
    let (c, install, conv) = setup(&db).await;
    // Two branches produce different values for one complete rule: an evaluation error for members.
    let conflicting = "package cynode\n\ndecision := {\"allow\": true}\n\ndecision := {\"deny\": \"x\"} if \"member\" in input.roles\n";
    rego::import(&db.pool, "cli", Some(install), "conflict.rego", conflicting, Mode::Enforce, false)
        .await
        .expect("compiles; fails only when evaluated");
    let r = c.handle(&chat(install, conv, "UMEM"), "run echo hi").await.expect("run");
    assert!(r.refused && r.text.contains("could not be evaluated") && r.text.contains("fails closed"), "{}", r.text);
    rego::import(&db.pool, "cli", Some(install), "conflict.rego", conflicting, Mode::Enforce, true)
        .await
        .expect("open");
    let r = c.handle(&chat(install, conv, "UMEM"), "run echo hi").await.expect("run");
    assert!(!r.refused && r.job_id.is_some(), "fail open: the built-in rules decide: {}", r.text);
    let errors = audited(&db.pool, "policy.error").await;
    assert_eq!(errors.iter().map(|e| e["on_error"].as_str().unwrap_or("?")).collect::<Vec<_>>(), ["closed", "open"]);
    assert!(errors[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
}

#[tokio::test]
async fn a_syntax_error_is_refused_at_import_with_file_and_line() {
    let db = TestDb::new().await;
    let (_, install, _) = setup(&db).await;
    let broken = "package cynode\n\ndecision := {\"allow\": true\n\nx := 1\n";
    let e = rego::import(&db.pool, "cli", Some(install), "team.rego", broken, Mode::Enforce, false)
        .await
        .expect_err("syntax error");
    assert!(e.contains("team.rego:"), "{e}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM rego_policies").fetch_one(&db.pool).await.expect("n");
    assert_eq!(stored, 0, "nothing stored");
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let imported: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'policy.import'")
        .fetch_one(&db.pool)
        .await
        .expect("n");
    assert_eq!(imported, 0);
}
