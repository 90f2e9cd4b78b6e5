//! Work that no online node could take is said at once, in the reply and in `status`, and fails with the reason
//! after `dispatch.unschedulable_after_s` instead of waiting forever.

use std::time::Duration;

use cynode_orchestrator::commands::{CommandSettings, Commands};
use cynode_orchestrator::dispatch::{DispatchSettings, Dispatcher};
use cynode_orchestrator::tasks::Origin;
use cynode_protocol::{Capabilities, ExecutorKind};
use cynode_tests::TestDb;
use uuid::Uuid;

use crate::support::*;

async fn setup(db: &TestDb, after: Duration) -> (Commands, std::sync::Arc<Dispatcher>) {
    let yaml = "
templates:
  - { name: busybox, image: 'cynode/busybox:latest' }
  - { name: rogue, image: 'example/rogue:1' }
";
    let file = cynode_orchestrator::bootstrap::BootstrapFile::parse(yaml, "t").expect("parse");
    let sb =
        cynode_orchestrator::crypto::SecretBox::from_base64(&cynode_orchestrator::crypto::SecretBox::generate_key())
            .expect("key");
    cynode_orchestrator::bootstrap::import(&db.pool, &sb, &file, "t").await.expect("import");
    let d = Dispatcher::new(db.pool.clone(), DispatchSettings { unschedulable_after: after, ..fast() });
    (Commands::new(db.pool.clone(), d.clone(), CommandSettings::default()), d)
}

fn user() -> Origin {
    Origin { requester: "U1".into(), source: "chat".into(), ..Origin::default() }
}

fn sandbox_caps() -> Capabilities {
    Capabilities { executors: vec![ExecutorKind::Docker], templates: vec!["busybox".into()], ..Capabilities::default() }
}

async fn job_row(db: &TestDb, job: Uuid) -> (String, Option<String>, Option<serde_json::Value>, String) {
    sqlx::query_as(
        "SELECT j.state, j.unschedulable, j.result, t.state FROM jobs j JOIN tasks t ON t.id = j.task_id
         WHERE j.id = $1",
    )
    .bind(job)
    .fetch_one(&db.pool)
    .await
    .expect("job")
}

#[tokio::test]
async fn a_template_no_node_offers_is_said_at_once_and_fails_after_its_time() {
    let db = TestDb::new().await;
    let (c, d) = setup(&db, Duration::from_secs(300)).await;
    node(&db.pool, "local", sandbox_caps()).await;

    let ok = c.handle(&user(), "run echo fine").await.expect("run");
    assert!(ok.text.starts_with("Job `") && ok.text.contains("queued on `busybox`"), "{}", ok.text);
    let r = c.handle(&user(), "run --template rogue echo hi").await.expect("run");
    let job = r.job_id.expect("queued with a notice");
    assert!(!r.refused);
    assert!(r.text.contains("No online node offers template `rogue`"), "{}", r.text);
    assert!(r.text.contains("fails if none comes within 5 min"), "{}", r.text);
    let (state, notice, _, _) = job_row(&db, job).await;
    assert_eq!(state, "queued");
    assert!(notice.as_deref().is_some_and(|n| n.starts_with("No online node offers template `rogue`")), "{notice:?}");
    assert_eq!(job_row(&db, ok.job_id.expect("job")).await.1, None, "work a node can take carries no notice");

    let s = c.handle(&user(), "status").await.expect("status");
    assert!(s.text.starts_with("Nodes online: 1 of 1. Jobs: 2 queued"), "{}", s.text);
    assert!(s.text.contains("• `local` online · 0 running"), "{}", s.text);
    assert!(s.text.contains("⚠️ 1 queued: No online node offers template `rogue`"), "{}", s.text);
    assert!(!s.text.contains("busybox`:"), "feasible work is not explained as stuck: {}", s.text);

    // Not yet due: nothing happens.
    assert_eq!(d.reap().await.expect("reap").unschedulable, 0);
    // Past its time and still nobody offers it: failed with the reason, and the task with it.
    sqlx::query("UPDATE jobs SET created_at = now() - interval '301 seconds' WHERE id = $1")
        .bind(job)
        .execute(&db.pool)
        .await
        .expect("age");
    assert_eq!(d.reap().await.expect("reap").unschedulable, 1);
    let (state, _, result, task_state) = job_row(&db, job).await;
    assert_eq!((state.as_str(), task_state.as_str()), ("failed", "failed"));
    let result = result.expect("result");
    assert_eq!(result["status"], "unschedulable");
    let message = result["message"].as_str().expect("message");
    assert!(message.contains("template `rogue`") && message.ends_with("for 300 s)"), "{message}");
    assert_eq!(job_row(&db, ok.job_id.expect("job")).await.0, "queued", "other work is untouched");
}

#[tokio::test]
async fn a_node_that_comes_in_time_takes_the_work_and_clears_the_notice() {
    let db = TestDb::new().await;
    let (c, d) = setup(&db, Duration::from_secs(300)).await;
    let r = c.handle(&user(), "run echo hi").await.expect("run");
    let job = r.job_id.expect("job");
    assert!(r.text.contains("No node is online"), "{}", r.text);
    sqlx::query("UPDATE jobs SET created_at = now() - interval '1 hour' WHERE id = $1")
        .bind(job)
        .execute(&db.pool)
        .await
        .expect("age");
    // A node offering the template registered (busy elsewhere, it has not claimed the job yet).
    node(&db.pool, "late", sandbox_caps()).await;
    assert_eq!(d.reap().await.expect("reap").unschedulable, 0);
    assert_eq!(job_row(&db, job).await.0, "queued");
    assert_eq!(job_row(&db, job).await.1, None, "the notice is cleared");
}

#[tokio::test]
async fn questions_without_an_inference_node_are_said_at_once() {
    let db = TestDb::new().await;
    let (c, _) = setup(&db, Duration::from_secs(60)).await;
    node(&db.pool, "local", sandbox_caps()).await;
    let r = c.handle(&user(), "ask what is 2+2?").await.expect("ask");
    assert!(r.job_id.is_some());
    assert!(
        r.text.starts_with("⚠️ No node answers questions yet: start `cynode-node` with an inference"),
        "{}",
        r.text
    );
    assert!(r.text.contains("within 60 s"), "{}", r.text);
}

#[tokio::test]
async fn with_no_waiting_allowed_such_work_is_refused_and_nothing_is_queued() {
    let db = TestDb::new().await;
    let (c, _) = setup(&db, Duration::ZERO).await;
    node(&db.pool, "local", sandbox_caps()).await;
    let r = c.handle(&user(), "run --template rogue echo hi").await.expect("run");
    assert!(r.refused && r.job_id.is_none(), "{r:?}");
    assert!(r.text.contains("template `rogue`") && r.text.ends_with("Nothing was queued."), "{}", r.text);
    let r = c.handle(&user(), "run echo hi").await.expect("run");
    assert!(!r.refused && r.job_id.is_some(), "{r:?}");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&db.pool).await.expect("count");
    assert_eq!(jobs, 1);
}
