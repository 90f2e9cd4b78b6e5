//! Telegram webhook updates over a real socket, authenticated by the `setWebhook` secret token.

use serde_json::{Value, json};

use crate::ingress_support::{IngressApp, TELEGRAM_SECRET};

fn update(update_id: i64, user: i64, text: &str) -> String {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": 77, "message_thread_id": 12, "date": 1_700_000_000, "text": text,
            "from": { "id": user, "is_bot": false, "first_name": "Ada", "username": "ada" },
            "chat": { "id": -100_123, "type": "supergroup", "is_forum": true }
        }
    })
    .to_string()
}

async fn post(app: &IngressApp, bot: &str, token: Option<&str>, body: String) -> reqwest::Response {
    let mut req = app.client.post(app.url(&format!("/telegram/{bot}"))).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("x-telegram-bot-api-secret-token", t);
    }
    req.body(body).send().await.expect("post")
}

#[tokio::test]
async fn a_mention_in_a_topic_is_recorded_in_that_topic() {
    let app = IngressApp::spawn().await;
    let r = post(&app, "acme", Some(TELEGRAM_SECRET), update(5001, 99, "@acme_cynode_bot run echo hi")).await;
    assert_eq!(r.status(), 200);
    let (channel, thread): (String, String) =
        sqlx::query_as("SELECT channel, thread FROM conversations").fetch_one(&app.db.pool).await.expect("conv");
    assert_eq!((channel.as_str(), thread.as_str()), ("-100123", "12"));
    let payload: Value =
        sqlx::query_scalar("SELECT payload FROM inbound_events").fetch_one(&app.db.pool).await.expect("payload");
    assert_eq!(payload["thread"]["reply_to"], "77");
    assert_eq!(payload["thread"]["install"], "acme_cynode_bot");
    let (state, _) = app.interpreted(app.task_of("5001").await).await;
    assert_eq!(state, "queued");

    // The same update again (Telegram retries until it gets a 2xx): acknowledged, nothing new.
    let r = post(&app, "acme", Some(TELEGRAM_SECRET), update(5001, 99, "@acme_cynode_bot run echo hi")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.stored().await, (1, 1, 1));
}

#[tokio::test]
async fn bad_tokens_and_unknown_bots_are_401() {
    let app = IngressApp::spawn().await;
    let body = update(5101, 99, "/status");
    for (name, bot, token, reason) in [
        ("wrong token", "acme", Some("telegram-secret_0123456780"), "bad_token"),
        ("malformed token", "acme", Some("not a token!"), "bad_header"),
        ("missing token", "acme", None, "missing_header"),
        ("unknown bot", "nobody", Some(TELEGRAM_SECRET), "unknown_install"),
    ] {
        let before = app.rejected("telegram", reason);
        let r = post(&app, bot, token, body.clone()).await;
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(r.text().await.expect("body"), "", "{name}");
        assert_eq!(app.rejected("telegram", reason), before + 1, "{name}");
    }
    let r = post(&app, "acme", Some(TELEGRAM_SECRET), "{\"update_id\": 1, \"message\": [".into()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.stored().await, (0, 0, 0));
}

#[tokio::test]
async fn commands_and_ignored_updates() {
    let app = IngressApp::spawn().await;
    assert_eq!(post(&app, "acme", Some(TELEGRAM_SECRET), update(5201, 99, "/start")).await.status(), 200);
    let (state, reply) = app.interpreted(app.task_of("5201").await).await;
    assert_eq!(state, "answered");
    assert!(reply.as_deref().is_some_and(|r| r.starts_with("Commands:")), "{reply:?}");
    // A group message not addressed to the bot, and an edit: acknowledged and ignored.
    assert_eq!(post(&app, "acme", Some(TELEGRAM_SECRET), update(5202, 99, "lunch?")).await.status(), 200);
    let edit = json!({ "update_id": 5203, "edited_message": { "message_id": 1 } }).to_string();
    assert_eq!(post(&app, "acme", Some(TELEGRAM_SECRET), edit).await.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 1);
}

#[tokio::test]
async fn a_user_over_the_limit_is_acknowledged_and_noticed_once() {
    let app = IngressApp::spawn().await;
    for i in 0..4 {
        let r = post(&app, "acme", Some(TELEGRAM_SECRET), update(5300 + i, 31, "@acme_cynode_bot status")).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 2);
    let notices: Vec<(String, String)> =
        sqlx::query_as("SELECT c.thread, t.reply FROM tasks t JOIN conversations c ON c.id = t.conversation_id WHERE t.command = 'notice'")
            .fetch_all(&app.db.pool)
            .await
            .expect("notices");
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].0, "12", "the notice goes to the user's topic");
    assert_eq!(app.rejected("telegram", "rate_limited"), 2);
}
