//! The interpreter and commands on recorded tasks: each task leaves `received` exactly once, a lapsed claim is
//! taken over, and a task that keeps failing is failed with a reply.

use std::time::Duration;

use cynode_gateway::server::RouterSettings;
use cynode_orchestrator::inbound::interpreter::{self, GAVE_UP, InterpreterSettings};
use cynode_orchestrator::tasks::Origin;
use uuid::Uuid;

use crate::ingress_support::{IngressApp, roomy};

/// An app whose interpreter only runs when a test says so.
async fn quiet_app() -> IngressApp {
    let mut ingress = roomy();
    ingress.interpreter.poll = Duration::from_secs(3600);
    let settings = RouterSettings { max_body_bytes: 1 << 20, request_timeout: Duration::from_secs(10) };
    IngressApp::spawn_with(settings, ingress).await
}

/// A task as ingress records it, without waking the interpreter.
async fn received(app: &IngressApp, text: &str, claimed_ago_s: Option<i64>, attempts: i32) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO tasks (id, requester, source, command, text, claimed_until, interpret_attempts)
         VALUES ($1, 'U1', 'chat', 'mention', $2, now() - $3 * interval '1 second', $4)",
    )
    .bind(id)
    .bind(text)
    .bind(claimed_ago_s)
    .bind(attempts)
    .execute(&app.db.pool)
    .await
    .expect("task");
    id
}

async fn task(app: &IngressApp, id: Uuid) -> (String, String, Option<String>) {
    sqlx::query_as("SELECT state, command, reply FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .expect("task")
}

fn origin(task: Uuid) -> Origin {
    Origin { requester: "U1".into(), source: "chat".into(), task_id: Some(task), ..Origin::default() }
}

#[tokio::test]
async fn commands_finish_the_recorded_task_once() {
    let app = quiet_app().await;
    let help = received(&app, "help", None, 0).await;
    let reply = app.state.commands.handle(&origin(help), "help").await.expect("help");
    assert!(reply.text.starts_with("Commands:"));
    let (state, command, stored) = task(&app, help).await;
    assert_eq!((state.as_str(), command.as_str()), ("answered", "help"));
    assert_eq!(stored.as_deref(), Some(reply.text.as_str()));
    // A second interpretation (a replica that took over too late) changes nothing.
    app.state.commands.handle(&origin(help), "status").await.expect("again");
    assert_eq!(task(&app, help).await, (state, command, stored));

    let run = received(&app, "run echo hi", None, 0).await;
    let reply = app.state.commands.handle(&origin(run), "run echo hi").await.expect("run");
    assert_eq!(reply.task_id, Some(run), "the job hangs off the recorded task");
    let (state, command, stored) = task(&app, run).await;
    assert_eq!((state.as_str(), command.as_str()), ("queued", "run"));
    assert!(stored.is_some_and(|s| s.contains("queued on `busybox`")));
    let again = app.state.commands.handle(&origin(run), "run echo hi").await.expect("again");
    assert_eq!((again.job_id, again.text.as_str()), (None, "This request was already handled."));
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM tasks").await, 2);
}

#[tokio::test]
async fn lapsed_claims_are_taken_over_and_live_ones_are_not() {
    let app = quiet_app().await;
    let settings = InterpreterSettings::default();
    let lapsed = received(&app, "status", Some(5), 1).await;
    let held = received(&app, "status", Some(-60), 1).await;
    let fresh = received(&app, "jobs", None, 0).await;
    // The app's own interpreter makes one pass when it starts and may take some of these first; what matters
    // is which tasks end up interpreted, whoever did it.
    let claimed = interpreter::run_once(&app.db.pool, &app.state.commands, &settings).await.expect("run");
    assert!(claimed <= 2, "only the lapsed and the fresh task may be taken, took {claimed}");
    // If the app's own pass claimed one of them, it may still be finishing it: wait for the outcome.
    assert_eq!(app.interpreted(lapsed).await.0, "answered");
    assert_eq!(app.interpreted(fresh).await.0, "answered");
    assert_eq!(task(&app, held).await.0, "received", "another replica still holds it");
    let attempts: i32 = sqlx::query_scalar("SELECT interpret_attempts FROM tasks WHERE id = $1")
        .bind(lapsed)
        .fetch_one(&app.db.pool)
        .await
        .expect("attempts");
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn a_task_that_keeps_failing_is_failed_with_a_reply() {
    let app = quiet_app().await;
    let settings = InterpreterSettings::default();
    let doomed = received(&app, "run echo hi", Some(1), settings.max_attempts).await;
    interpreter::run_once(&app.db.pool, &app.state.commands, &settings).await.expect("run");
    let (state, reply) = app.interpreted(doomed).await;
    assert_eq!((state.as_str(), reply.as_deref()), ("failed", Some(GAVE_UP)));
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 0);
}
