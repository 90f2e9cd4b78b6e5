//! Approvals bound to the job: N of M distinct approvers, no self-approval unless policy allows it, expiry, and
//! a changed spec needing a new approval. Every click (chat, API, CLI) goes through `Commands::handle`.

use cynode_orchestrator::commands::{CommandSettings, Commands};
use cynode_orchestrator::tasks::Origin;
use cynode_tests::TestDb;
use uuid::Uuid;

use crate::support::dispatcher;

async fn setup(db: &TestDb) -> Commands {
    let yaml = "
templates:
  - { name: busybox, image: 'cynode/busybox:latest' }
  - { name: gpu, image: 'cynode/cuda:latest', gpu: true }
  - { name: net, image: 'cynode/busybox:latest', network: true }
  - { name: self, image: 'cynode/busybox:latest', network: true, pids: 32 }
policy:
  - when: { gpu: true }
    approvers: [UA, UB, UC, UREQ]
    approvals: 2
  - when: { template: [self] }
    approvers: [UREQ, UBOSS]
    requester_may_approve: true
  - when: { network: true }
    approvers: [UBOSS, UREQ]
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

async fn state(db: &TestDb, job: Uuid) -> String {
    sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1").bind(job).fetch_one(&db.pool).await.expect("state")
}

async fn refusals(db: &TestDb) -> Vec<String> {
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    sqlx::query_scalar("SELECT detail->>'refused' FROM audit_log WHERE action = 'approval.refused' ORDER BY seq")
        .fetch_all(&db.pool)
        .await
        .expect("audit")
}

#[tokio::test]
async fn a_gpu_job_needs_two_distinct_approvers_and_never_its_requester() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let r = c.handle(&user("UREQ"), "run --template gpu nvidia-smi").await.expect("run");
    let job = r.job_id.expect("job");
    let approval = r.approval.expect("held");
    assert_eq!(approval.required, 2);
    assert!(r.text.contains("by 2 of UA, UB, UC, UREQ (not the requester)"), "{}", r.text);
    let card: String = sqlx::query_scalar("SELECT reason FROM approvals WHERE job_id = $1")
        .bind(job)
        .fetch_one(&db.pool)
        .await
        .expect("reason");
    assert!(card.contains("GPU use") && card.contains("2 of UA, UB, UC, UREQ"), "the card says who: {card}");

    // The requester is on the list but may not approve their own job.
    let r = c.handle(&user("UREQ"), &format!("approve {job}")).await.expect("approve");
    assert!(r.refused && r.text.contains("You requested job"), "{}", r.text);
    // Someone not on the list.
    let r = c.handle(&user("UX"), &format!("approve {job}")).await.expect("approve");
    assert!(r.refused && r.text.contains("not an approver") && r.text.contains("2 of UA, UB, UC"), "{}", r.text);
    assert_eq!(state(&db, job).await, "awaiting_approval");

    // First of two: recorded, still waiting; the same approver cannot count twice.
    let r = c.handle(&user("UA"), &format!("approve {job}")).await.expect("approve");
    assert!(!r.refused && r.text.contains("Approval 1 of 2") && r.text.contains("1 more"), "{}", r.text);
    assert_eq!(state(&db, job).await, "awaiting_approval");
    let r = c.handle(&user("UA"), &format!("approve {job}")).await.expect("approve");
    assert!(r.refused && r.text.contains("already voted"), "{}", r.text);
    assert_eq!(state(&db, job).await, "awaiting_approval");

    // Second distinct approver: queued.
    let r = c.handle(&user("UB"), &format!("approve {job}")).await.expect("approve");
    assert!(!r.refused && r.text.contains("approved by UA, UB"), "{}", r.text);
    assert_eq!(state(&db, job).await, "queued");
    assert_eq!(refusals(&db).await, vec!["requester", "not_approver"]);
    let votes: i64 = sqlx::query_scalar("SELECT count(*) FROM approval_votes").fetch_one(&db.pool).await.expect("n");
    assert_eq!(votes, 2);
    assert_eq!(cynode_orchestrator::audit::verify_chain(&db.pool).await.expect("verify"), None);
}

#[tokio::test]
async fn one_deny_cancels_an_n_of_m_request() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let job = c.handle(&user("UREQ"), "run --template gpu train").await.expect("run").job_id.expect("job");
    c.handle(&user("UA"), &format!("approve {job}")).await.expect("approve");
    let r = c.handle(&user("UC"), &format!("deny {job}")).await.expect("deny");
    assert!(!r.refused && r.text.contains("denied by UC"), "{}", r.text);
    assert_eq!(state(&db, job).await, "cancelled");
}

#[tokio::test]
async fn policy_can_let_the_requester_approve() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let r = c.handle(&user("UREQ"), "run --template self curl x").await.expect("run");
    let job = r.job_id.expect("job");
    assert!(r.text.contains("by one of UREQ, UBOSS.") && !r.text.contains("not the requester"), "{}", r.text);
    let r = c.handle(&user("UREQ"), &format!("approve {job}")).await.expect("approve");
    assert!(!r.refused, "{}", r.text);
    assert_eq!(state(&db, job).await, "queued");
}

#[tokio::test]
async fn a_changed_spec_needs_a_new_approval() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let job = c.handle(&user("U1"), "run --template net curl example.org").await.expect("run").job_id.expect("job");
    // What the job would run changes after approval was requested (the command, as someone with database
    // access could change it).
    sqlx::query("UPDATE jobs SET spec = jsonb_set(spec, '{command}', '\"curl evil.example\"') WHERE id = $1")
        .bind(job)
        .execute(&db.pool)
        .await
        .expect("change");
    let r = c.handle(&user("UBOSS"), &format!("approve {job}")).await.expect("approve");
    assert!(r.refused && r.text.contains("changed after approval was requested"), "{}", r.text);
    assert_eq!(state(&db, job).await, "awaiting_approval");
    // A changed environment variable name counts too; putting the original spec back is covered again.
    sqlx::query("UPDATE jobs SET spec = jsonb_set(spec, '{command}', '\"curl example.org\"') WHERE id = $1")
        .bind(job)
        .execute(&db.pool)
        .await
        .expect("restore");
    sqlx::query("UPDATE jobs SET spec = jsonb_set(spec, '{env}', '[[\"TOKEN\", \"x\"]]') WHERE id = $1")
        .bind(job)
        .execute(&db.pool)
        .await
        .expect("env");
    let r = c.handle(&user("UBOSS"), &format!("approve {job}")).await.expect("approve");
    assert!(r.refused && r.text.contains("changed after approval"), "{}", r.text);
    sqlx::query("UPDATE jobs SET spec = jsonb_set(spec, '{env}', '[]') WHERE id = $1")
        .bind(job)
        .execute(&db.pool)
        .await
        .expect("env back");
    let r = c.handle(&user("UBOSS"), &format!("approve {job}")).await.expect("approve");
    assert!(!r.refused, "{}", r.text);
    assert_eq!(state(&db, job).await, "queued");
    assert_eq!(refusals(&db).await, vec!["spec_changed", "spec_changed"]);
}

#[tokio::test]
async fn an_expired_request_cannot_be_approved_even_before_the_reaper_runs() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let job = c.handle(&user("U1"), "run --template net curl x").await.expect("run").job_id.expect("job");
    sqlx::query("UPDATE approvals SET expires_at = now() - interval '1 second' WHERE job_id = $1")
        .bind(job)
        .execute(&db.pool)
        .await
        .expect("expire");
    let r = c.handle(&user("UBOSS"), &format!("approve {job}")).await.expect("approve");
    assert!(r.refused && r.text.contains("expired"), "{}", r.text);
    assert_eq!(state(&db, job).await, "awaiting_approval");
    assert_eq!(refusals(&db).await, vec!["expired"]);
}

#[tokio::test]
async fn a_click_through_another_install_does_not_count() {
    let db = TestDb::new().await;
    let c = setup(&db).await;
    let job = c.handle(&user("U1"), "run --template net curl x").await.expect("run").job_id.expect("job");
    // The same user id, but in another workspace (install): a different person.
    let other = sqlx::query_scalar::<_, Uuid>(
        "INSERT INTO installs (id, platform, external_id, name, secrets) VALUES ($1, 'slack', 'T-OTHER', 'other', '\\x00')
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .fetch_one(&db.pool)
    .await
    .expect("install");
    let stranger = Origin { install_id: Some(other), ..user("UBOSS") };
    let r = c.handle(&stranger, &format!("approve {job}")).await.expect("approve");
    assert!(r.refused && r.text.contains("not an approver"), "{}", r.text);
    assert_eq!(state(&db, job).await, "awaiting_approval");
    assert_eq!(refusals(&db).await, vec!["other_install"]);
}
