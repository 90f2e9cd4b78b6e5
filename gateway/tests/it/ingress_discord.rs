//! Discord interactions over a real socket, signed with the RFC 8032 test key as Discord signs.

use serde_json::{Value, json};

use crate::ingress_support::{DISCORD_APP, DISCORD_LIMITED_APP, IngressApp, discord_signature};

fn command(id: &str, app: &str, user: &str, text: &str) -> String {
    json!({
        "type": 2, "id": id, "application_id": app, "token": "interaction-token-secret",
        "channel_id": "1110", "channel": { "id": "1110", "type": 0 },
        "member": { "user": { "id": user, "username": "ada" } },
        "data": { "name": "cynode", "options": [{ "name": "text", "type": 3, "value": text }] }
    })
    .to_string()
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let app = IngressApp::spawn().await;
    let body = format!(r#"{{"type":1,"id":"1","application_id":"{DISCORD_APP}","token":"t"}}"#);
    let r = app.discord(&body, app.now()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.expect("body"), r#"{"type":1}"#);
    assert_eq!(app.stored().await, (0, 0, 0));
}

#[tokio::test]
async fn a_command_is_deferred_recorded_and_interpreted() {
    let app = IngressApp::spawn().await;
    let body = command("2001", DISCORD_APP, "42", "status");
    let r = app.discord(&body, app.now()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json"), json!({ "type": 5 }));
    let payload: Value = sqlx::query_scalar("SELECT payload FROM inbound_events WHERE delivery_id = '2001'")
        .fetch_one(&app.db.pool)
        .await
        .expect("row");
    assert_eq!(payload["reply_handle"]["application_id"], DISCORD_APP);
    let (state, reply) = app.interpreted(app.task_of("2001").await).await;
    assert_eq!(state, "answered");
    assert!(reply.as_deref().is_some_and(|r| r.starts_with("Nodes online")), "{reply:?}");

    // A button click is deferred as an update of its message (type 6) and becomes its command.
    let click = json!({
        "type": 3, "id": "2002", "application_id": DISCORD_APP, "token": "t2", "channel_id": "1110",
        "member": { "user": { "id": "42" } }, "message": { "id": "3003" },
        "data": { "custom_id": "cancel:deadbeef", "component_type": 2 }
    })
    .to_string();
    let r = app.discord(&click, app.now()).await;
    assert_eq!(r.json::<Value>().await.expect("json"), json!({ "type": 6 }));
    let (_, reply) = app.interpreted(app.task_of("2002").await).await;
    assert!(reply.as_deref().is_some_and(|r| r.contains("There is no job `deadbeef`")), "{reply:?}");
}

#[tokio::test]
async fn interactions_in_a_thread_keep_the_thread() {
    let app = IngressApp::spawn().await;
    let body = json!({
        "type": 2, "id": "2101", "application_id": DISCORD_APP, "token": "t", "channel_id": "1300",
        "channel": { "id": "1300", "type": 11, "parent_id": "1110" }, "user": { "id": "42" },
        "data": { "name": "cynode", "options": [{ "name": "text", "type": 3, "value": "help" }] }
    })
    .to_string();
    assert_eq!(app.discord(&body, app.now()).await.status(), 200);
    let (channel, thread): (String, String) =
        sqlx::query_as("SELECT channel, thread FROM conversations").fetch_one(&app.db.pool).await.expect("conv");
    assert_eq!((channel.as_str(), thread.as_str()), ("1110", "1300"));
}

#[tokio::test]
async fn forged_tampered_and_stale_interactions_are_401() {
    let app = IngressApp::spawn().await;
    let now = app.now();
    let body = command("2201", DISCORD_APP, "42", "status");
    let send = |sig: String, ts: i64, body: String| {
        app.client
            .post(app.url("/discord/interactions"))
            .header("content-type", "application/json")
            .header("x-signature-ed25519", sig)
            .header("x-signature-timestamp", ts.to_string())
            .body(body)
            .send()
    };
    let cases = [
        ("forged", "0".repeat(128), now, body.clone(), "bad_signature"),
        ("tampered", discord_signature(now, body.as_bytes()), now, body.replace("status", "jobs"), "bad_signature"),
        ("stale", discord_signature(now - 301, body.as_bytes()), now - 301, body.clone(), "stale_timestamp"),
        ("future", discord_signature(now + 301, body.as_bytes()), now + 301, body.clone(), "future_timestamp"),
        ("unknown application", discord_signature(now, b"x"), now, body.replace(DISCORD_APP, "999"), "unknown_install"),
    ];
    for (name, sig, ts, body, reason) in cases {
        let before = app.rejected("discord", reason);
        let r = send(sig, ts, body).await.expect("post");
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(r.text().await.expect("body"), "", "{name}");
        assert_eq!(app.rejected("discord", reason), before + 1, "{name}");
    }
    // A correctly signed body that is not JSON: verified against the configured keys, then a clear 400.
    let broken = "{\"type\":2,";
    let r = app.discord(broken, now).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("body").contains("truncated"));
    assert_eq!(app.stored().await, (0, 0, 0));
}

#[tokio::test]
async fn a_user_over_the_limit_gets_an_ephemeral_notice_as_the_response() {
    let app = IngressApp::spawn().await;
    let first = app.discord(&command("2301", DISCORD_LIMITED_APP, "7", "status"), app.now()).await;
    assert_eq!(first.json::<Value>().await.expect("json"), json!({ "type": 5 }));
    let second = app.discord(&command("2302", DISCORD_LIMITED_APP, "7", "status"), app.now()).await;
    assert_eq!(second.status(), 200);
    let v: Value = second.json().await.expect("json");
    assert_eq!((v["type"].as_u64(), v["data"]["flags"].as_u64()), (Some(4), Some(64)));
    assert!(v["data"]["content"].as_str().is_some_and(|c| c.starts_with("You're sending requests too fast")), "{v}");
    assert_eq!(app.count("SELECT count(*) FROM inbound_events").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM tasks WHERE command = 'notice'").await, 0, "delivered inline");
}
