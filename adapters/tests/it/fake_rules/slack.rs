use std::time::Duration;

use cynode_tests::fakes::slack::SlackRates;
use cynode_tests::fakes::{FakeSlack, Rate};
use serde_json::{Value, json};

use super::{post_form, post_json};

async fn call(fake: &FakeSlack, method: &str, body: Value) -> Value {
    let auth = format!("Bearer {}", fake.token());
    post_json(&format!("{}{method}", fake.base_url()), Some(&auth), &body).await.2
}

fn error(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "{v}");
    v["error"].as_str().unwrap()
}

fn button(i: usize) -> Value {
    json!({"type": "button", "action_id": format!("a{i}"), "text": {"type": "plain_text", "text": "OK"}})
}

#[tokio::test]
async fn auth_and_required_parameters() {
    let fake = FakeSlack::builder().rates(SlackRates::unlimited()).start().await;
    let url = format!("{}chat.postMessage", fake.base_url());
    let (status, _, body) = post_json(&url, None, &json!({"channel": "C1", "text": "x"})).await;
    assert_eq!((status, error(&body)), (200, "not_authed"));
    let (_, _, body) = post_json(&url, Some("Bearer xoxb-wrong"), &json!({"channel": "C1", "text": "x"})).await;
    assert_eq!(error(&body), "invalid_auth");
    assert_eq!(error(&call(&fake, "chat.postMessage", json!({"text": "x"})).await), "channel_not_found");
    assert_eq!(error(&call(&fake, "chat.postMessage", json!({"channel": "C1"})).await), "no_text");
    let both = json!({"channel": "C1", "text": "x", "markdown_text": "**x**"});
    assert_eq!(error(&call(&fake, "chat.postMessage", both).await), "markdown_text_conflict");
    let typed = json!({"channel": "C1", "text": 5});
    assert_eq!(error(&call(&fake, "chat.postMessage", typed).await), "invalid_arguments");
    assert_eq!(error(&call(&fake, "chat.delete", json!({})).await), "unknown_method");
    // Form bodies carry the token as a field and blocks as a JSON string.
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]).to_string();
    let fields = [("token", fake.token()), ("channel", "C1"), ("blocks", blocks.as_str()), ("thread_ts", "1.2")];
    let (_, _, body) = post_form(&url, None, &fields).await;
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(fake.messages_in("C1", Some("1.2")).len(), 1);
    assert!(!fake.calls().iter().any(|c| c.params.get("token").is_some()), "tokens are not recorded");
}

#[tokio::test]
async fn length_and_block_kit_limits() {
    let fake = FakeSlack::builder().rates(SlackRates::unlimited()).start().await;
    let posted = call(&fake, "chat.postMessage", json!({"channel": "C1", "text": "x".repeat(4_001)})).await;
    let ts = posted["ts"].as_str().unwrap();
    let long = json!({"channel": "C1", "ts": ts, "text": "é".repeat(4_001)});
    assert_eq!(error(&call(&fake, "chat.update", long).await), "msg_too_long");
    let ok = json!({"channel": "C1", "ts": ts, "text": "é".repeat(4_000)});
    assert_eq!(call(&fake, "chat.update", ok).await["ok"], true);
    let missing = json!({"channel": "C1", "ts": "9.9", "text": "x"});
    assert_eq!(error(&call(&fake, "chat.update", missing).await), "message_not_found");
    let section = |n: usize| json!({"type": "section", "text": {"type": "mrkdwn", "text": "x".repeat(n)}});
    let cases = [
        (json!((0..51).map(|_| section(1)).collect::<Vec<_>>()), "must be less than 51 items"),
        (json!([section(3_001)]), "must be less than 3001 characters"),
        (json!([{"type": "actions", "elements": (0..26).map(button).collect::<Vec<_>>()}]), "must be 1 to 25 items"),
        (json!([{"type": "actions", "elements": [button(1), button(1)]}]), "action_id must be unique"),
        (json!([{"type": "header", "text": {"type": "plain_text", "text": "h".repeat(151)}}]), "less than 151"),
        (
            json!([{"type": "actions", "elements": [{"type": "button", "action_id": "a",
                     "text": {"type": "plain_text", "text": "b".repeat(76)}}]}]),
            "less than 76",
        ),
        (json!([{"type": "actions", "block_id": "b".repeat(256), "elements": [button(1)]}]), "1 to 255"),
        (
            json!([{"type": "actions", "elements": [{"type": "button", "action_id": "a", "value": "v".repeat(2_001),
                 "text": {"type": "plain_text", "text": "b"}}]}]),
            "1 to 2000",
        ),
        (json!([{"type": "carousel"}]), "unsupported block type"),
    ];
    for (blocks, message) in cases {
        let body = call(&fake, "chat.postMessage", json!({"channel": "C1", "blocks": blocks})).await;
        assert_eq!(error(&body), "invalid_blocks");
        let messages = body["response_metadata"]["messages"].to_string();
        assert!(messages.contains(message), "{messages} lacks {message}");
    }
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let rates = SlackRates {
        post_message: Rate { burst: 2, every: Duration::from_secs(3) },
        update: Rate { burst: 1, every: Duration::from_secs(60) },
        ..SlackRates::unlimited()
    };
    let fake = FakeSlack::builder().rates(rates).start().await;
    let url = format!("{}chat.postMessage", fake.base_url());
    let auth = format!("Bearer {}", fake.token());
    let post = |text: &'static str| {
        let (url, auth) = (url.clone(), auth.clone());
        async move { post_json(&url, Some(&auth), &json!({"channel": "C1", "text": text})).await }
    };
    assert_eq!(post("1").await.0, 200);
    let (_, _, second) = post("2").await;
    assert_eq!(second["ok"], true, "a short burst is allowed");
    let (status, headers, body) = post("3").await;
    assert_eq!(status, 429);
    assert_eq!(body, json!({"ok": false, "error": "ratelimited"}));
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(fake.count_429(), 1);
    let ts = second["ts"].as_str().unwrap();
    assert_eq!(call(&fake, "chat.update", json!({"channel": "C1", "ts": ts, "text": "a"})).await["ok"], true);
    let limited = call(&fake, "chat.update", json!({"channel": "C1", "ts": ts, "text": "b"})).await;
    assert_eq!(error(&limited), "ratelimited", "chat.update is limited per workspace");
}
