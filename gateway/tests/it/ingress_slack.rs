//! Slack ingress over a real socket: signed like Slack signs, stored rows, the interpreter, dedupe, retries.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::ingress_support::{APPROVER, IngressApp, SLACK_APP, SLACK_TEAM, mention};

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test]
async fn a_mention_is_recorded_in_its_thread_and_runs_as_a_sandbox_job() {
    let app = IngressApp::spawn().await;
    let body = mention("EvRUN1", SLACK_TEAM, "U1", "run echo hi", Some("1699999999.000100"));
    let r = app.slack("/slack/events", JSON, &body, app.now()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "");

    let (kind, retry_num, payload): (String, Option<i32>, Value) =
        sqlx::query_as("SELECT kind, retry_num, payload FROM inbound_events WHERE delivery_id = 'EvRUN1'")
            .fetch_one(&app.db.pool)
            .await
            .expect("inbound");
    assert_eq!((kind.as_str(), retry_num), ("mention", None));
    assert_eq!(payload["thread"]["reply_to"], "1700000000.000200", "the reply attaches to the user's message");
    let (channel, thread, thread_ref): (String, String, Value) =
        sqlx::query_as("SELECT channel, thread, thread_ref FROM conversations")
            .fetch_one(&app.db.pool)
            .await
            .expect("conv");
    assert_eq!((channel.as_str(), thread.as_str()), ("C0123", "1699999999.000100"));
    assert_eq!(thread_ref["install"], SLACK_TEAM);
    assert_eq!(thread_ref["thread"], "1699999999.000100");

    let task = app.task_of("EvRUN1").await;
    let (state, reply) = app.interpreted(task).await;
    assert_eq!(state, "queued");
    assert!(reply.as_deref().is_some_and(|r| r.contains("queued on `busybox`")), "{reply:?}");
    let (command, requester, spec): (String, String, Value) = sqlx::query_as(
        "SELECT t.command, t.requester, j.spec FROM tasks t JOIN jobs j ON j.task_id = t.id WHERE t.id = $1",
    )
    .bind(task)
    .fetch_one(&app.db.pool)
    .await
    .expect("job of the task");
    assert_eq!((command.as_str(), requester.as_str()), ("run", "U1"));
    assert_eq!((spec["kind"].as_str(), spec["command"].as_str()), (Some("sandbox"), Some("echo hi")));
    assert_eq!(app.count("SELECT count(*) FROM tasks").await, 1, "the job reuses the recorded task");
}

#[tokio::test]
async fn url_verification_is_answered_only_when_signed() {
    let app = IngressApp::spawn().await;
    let body =
        r#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let r = app.slack("/slack/events", JSON, body, app.now()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    let forged = app
        .client
        .post(app.url("/slack/events"))
        .header("content-type", JSON)
        .header("x-slack-request-timestamp", app.now().to_string())
        .header("x-slack-signature", format!("v0={}", "ab".repeat(32)))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), 401);
    assert_eq!(forged.text().await.expect("body"), "");
    assert_eq!(app.stored().await, (0, 0, 0));
}

#[tokio::test]
async fn a_slash_command_is_answered_in_its_channel() {
    let app = IngressApp::spawn().await;
    let body = format!(
        "token=x&team_id={SLACK_TEAM}&api_app_id={SLACK_APP}&channel_id=C77&user_id=U5&user_name=ada\
         &command=%2Fcynode&text=status&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id=13.14.ab"
    );
    let r = app.slack("/slack/commands", FORM, &body, app.now()).await;
    assert_eq!(r.status(), 200);
    let task = app.task_of("13.14.ab").await;
    let (state, reply) = app.interpreted(task).await;
    assert_eq!(state, "answered");
    assert!(reply.as_deref().is_some_and(|r| r.starts_with("Nodes online: 0")), "{reply:?}");
    let (channel, thread): (String, String) =
        sqlx::query_as("SELECT channel, thread FROM conversations").fetch_one(&app.db.pool).await.expect("conv");
    assert_eq!((channel.as_str(), thread.as_str()), ("C77", ""));
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 0, "status creates no job");
}

#[tokio::test]
async fn an_approval_button_click_queues_the_held_job() {
    let app = IngressApp::spawn().await;
    let body = mention("EvNET", SLACK_TEAM, "U1", "run --template net wget example.com", None);
    assert_eq!(app.slack("/slack/events", JSON, &body, app.now()).await.status(), 200);
    let task = app.task_of("EvNET").await;
    assert_eq!(app.interpreted(task).await.0, "waiting");
    let job: Uuid = sqlx::query_scalar("SELECT id FROM jobs WHERE task_id = $1")
        .bind(task)
        .fetch_one(&app.db.pool)
        .await
        .expect("job");
    let short = &job.simple().to_string()[..8];

    let click = |user: &str, trigger: &str| {
        let payload = json!({
            "type": "block_actions", "user": { "id": user, "username": "x", "team_id": SLACK_TEAM },
            "api_app_id": SLACK_APP, "team": { "id": SLACK_TEAM }, "channel": { "id": "C0123" },
            "container": { "type": "message", "message_ts": "1700000001.000300", "channel_id": "C0123" },
            "trigger_id": trigger, "response_url": "https://hooks.slack.com/actions/1",
            "actions": [{ "action_id": "approve", "value": short, "type": "button", "action_ts": "1700000002.1" }]
        });
        let encoded: String = url_encode(&payload.to_string());
        format!("payload={encoded}")
    };
    let r = app.slack("/slack/interactions", FORM, &click("U1", "trig.1"), app.now()).await;
    assert_eq!(r.status(), 200);
    let (state, reply) = app.interpreted(app.task_of("trig.1").await).await;
    assert_eq!(state, "answered");
    assert!(reply.as_deref().is_some_and(|r| r.contains("not an approver")), "{reply:?}");

    let r = app.slack("/slack/interactions", FORM, &click(APPROVER, "trig.2"), app.now()).await;
    assert_eq!(r.status(), 200);
    let (_, reply) = app.interpreted(app.task_of("trig.2").await).await;
    assert!(reply.as_deref().is_some_and(|r| r.contains("approved by U2CERLKJA")), "{reply:?}");
    let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&app.db.pool)
        .await
        .expect("job");
    assert_eq!(state, "queued");
    // The click's task lives in the thread of the message that carried the button.
    let thread: String = sqlx::query_scalar(
        "SELECT c.thread FROM tasks t JOIN conversations c ON c.id = t.conversation_id
         JOIN inbound_events e ON e.id = t.inbound_id WHERE e.delivery_id = 'trig.2'",
    )
    .fetch_one(&app.db.pool)
    .await
    .expect("thread");
    assert_eq!(thread, "1700000001.000300");
}

#[tokio::test]
async fn retries_are_recorded_and_duplicates_create_nothing() {
    let app = IngressApp::spawn().await;
    // The first delivery got lost; Slack's first retry is what we record.
    let body = mention("EvRETRY", SLACK_TEAM, "U1", "help", None);
    let retry = [("x-slack-retry-num", "1"), ("x-slack-retry-reason", "http_timeout")];
    let r = app.post_slack("/slack/events", JSON, &body, app.now(), &retry).await;
    assert_eq!(r.status(), 200);
    let second = [("x-slack-retry-num", "2"), ("x-slack-retry-reason", "http_timeout")];
    let r = app.post_slack("/slack/events", JSON, &body, app.now(), &second).await;
    assert_eq!(r.status(), 200);
    let (num, reason): (Option<i32>, Option<String>) =
        sqlx::query_as("SELECT retry_num, retry_reason FROM inbound_events")
            .fetch_one(&app.db.pool)
            .await
            .expect("row");
    assert_eq!((num, reason.as_deref()), (Some(1), Some("http_timeout")));
    assert_eq!(app.stored().await, (1, 1, 1));
    assert_eq!(app.rejected("slack", "duplicate"), 1);
    let (state, reply) = app.interpreted(app.task_of("EvRETRY").await).await;
    assert_eq!(state, "answered");
    assert!(reply.as_deref().is_some_and(|r| r.starts_with("Commands:")), "{reply:?}");
}

#[tokio::test]
async fn twenty_racing_duplicates_create_one_event_and_one_task() {
    let app = IngressApp::spawn().await;
    let body = mention("EvRACE", SLACK_TEAM, "U1", "run echo race", None);
    let now = app.now();
    let requests = (0..20).map(|_| app.slack("/slack/events", JSON, &body, now));
    let responses = futures_util::future::join_all(requests).await;
    assert!(
        responses.iter().all(|r| r.status() == 200),
        "{:?}",
        responses.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    assert_eq!(app.stored().await, (1, 1, 1));
    assert_eq!(app.rejected("slack", "duplicate"), 19);
    let task = app.task_of("EvRACE").await;
    assert_eq!(app.interpreted(task).await.0, "queued");
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 1);
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_ignored() {
    let app = IngressApp::spawn().await;
    let reaction = json!({
        "team_id": SLACK_TEAM, "api_app_id": SLACK_APP, "type": "event_callback", "event_id": "EvR",
        "event": { "type": "reaction_added", "user": "U1", "reaction": "thumbsup" }
    });
    let rate_limited = json!({ "team_id": SLACK_TEAM, "api_app_id": SLACK_APP, "type": "app_rate_limited" });
    for body in [reaction, rate_limited] {
        let r = app.slack("/slack/events", JSON, &body.to_string(), app.now()).await;
        assert_eq!(r.status(), 200, "{body}");
    }
    assert_eq!(app.stored().await, (0, 0, 0));
}

#[tokio::test]
async fn a_user_over_the_limit_gets_acks_and_one_notice_but_no_work() {
    let app = IngressApp::spawn().await;
    // Install `limited` allows each user a burst of 2, then 1 a minute.
    for i in 0..5 {
        let body = mention(&format!("EvL{i}"), "TLIMITED", "U9", "run echo hi", None);
        let r = app.slack("/slack/events", JSON, &body, app.now()).await;
        assert_eq!(r.status(), 200, "over the limit is still acknowledged");
    }
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 2);
    assert_eq!(app.rejected("slack", "rate_limited"), 3);
    let notices: Vec<(String, Option<String>, String)> =
        sqlx::query_as("SELECT state, reply, requester FROM tasks WHERE command = 'notice'")
            .fetch_all(&app.db.pool)
            .await
            .expect("notices");
    assert_eq!(notices.len(), 1, "one notice per user per window: {notices:?}");
    let (state, reply, requester) = &notices[0];
    assert_eq!((state.as_str(), requester.as_str()), ("answered", "U9"));
    let reply = reply.as_deref().unwrap_or_default();
    assert!(reply.starts_with("You're sending requests too fast; try again in ") && reply.ends_with(" s."), "{reply}");
    // Another user of the same install is not affected.
    let body = mention("EvOther", "TLIMITED", "U10", "help", None);
    assert_eq!(app.slack("/slack/events", JSON, &body, app.now()).await.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 3);
    // The admitted requests ran; the notice created no job.
    for id in ["EvL0", "EvL1"] {
        assert_eq!(app.interpreted(app.task_of(id).await).await.0, "queued");
    }
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 2);
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
