use std::time::Duration;

use cynode_tests::fakes::discord::DiscordRates;
use cynode_tests::fakes::{FakeDiscord, Window};
use serde_json::{Value, json};

use super::post_json;

const CHANNEL: &str = "1110000000000000000";

async fn create(fake: &FakeDiscord, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = format!("{}channels/{CHANNEL}/messages", fake.base_url());
    post_json(&url, Some(&format!("Bot {}", fake.bot_token())), &body).await
}

fn button(id: &str) -> Value {
    json!({"type": 2, "style": 1, "label": "Go", "custom_id": id})
}

fn invalid_form(body: &Value, pointer: &str, code: &str) {
    assert_eq!(body["code"], 50_035, "{body}");
    assert_eq!(body["message"], "Invalid Form Body");
    assert_eq!(body.pointer(pointer).and_then(|e| e[0]["code"].as_str()), Some(code), "{body}");
}

#[tokio::test]
async fn auth_content_and_component_rules() {
    let fake = FakeDiscord::builder().rates(DiscordRates::unlimited()).start().await;
    let url = format!("{}channels/{CHANNEL}/messages", fake.base_url());
    let (status, _, body) = post_json(&url, None, &json!({"content": "x"})).await;
    assert_eq!((status, body), (401, json!({"message": "401: Unauthorized", "code": 0})));
    let (status, _, body) = create(&fake, json!({"content": "x".repeat(2_001)})).await;
    assert_eq!(status, 400);
    invalid_form(&body, "/errors/content/_errors", "BASE_TYPE_MAX_LENGTH");
    let (_, _, body) = create(&fake, json!({"content": "é".repeat(2_000)})).await;
    assert!(body["id"].is_string(), "2,000 characters fit: {body}");
    let (_, _, body) = create(&fake, json!({"content": "  "})).await;
    assert_eq!(body, json!({"message": "Cannot send an empty message", "code": 50_006}));
    let six = json!([{"type": 1, "components": (0..6).map(|i| button(&i.to_string())).collect::<Vec<_>>()}]);
    let (_, _, body) = create(&fake, json!({"content": "x", "components": six})).await;
    invalid_form(&body, "/errors/components/0/components/_errors", "BASE_TYPE_BAD_LENGTH");
    let dup = json!([{"type": 1, "components": [button("a"), button("a")]}]);
    let (_, _, body) = create(&fake, json!({"content": "x", "components": dup})).await;
    invalid_form(&body, "/errors/components/0/components/1/custom_id/_errors", "COMPONENT_CUSTOM_ID_DUPLICATED");
    let long_id = json!([{"type": 1, "components": [button(&"i".repeat(101))]}]);
    let (_, _, body) = create(&fake, json!({"content": "x", "components": long_id})).await;
    invalid_form(&body, "/errors/components/0/components/0/custom_id/_errors", "BASE_TYPE_BAD_LENGTH");
    let label =
        json!([{"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "a", "label": "l".repeat(81)}]}]);
    let (_, _, body) = create(&fake, json!({"content": "x", "components": label})).await;
    invalid_form(&body, "/errors/components/0/components/0/label/_errors", "BASE_TYPE_MAX_LENGTH");
    let rows = json!((0..6).map(|i| json!({"type": 1, "components": [button(&i.to_string())]})).collect::<Vec<_>>());
    let (_, _, body) = create(&fake, json!({"content": "x", "components": rows})).await;
    invalid_form(&body, "/errors/components/_errors", "BASE_TYPE_MAX_LENGTH");
    let (_, _, body) = create(&fake, json!({"content": "x", "flags": 64})).await;
    invalid_form(&body, "/errors/flags/_errors", "MESSAGE_INVALID_FLAGS");
}

#[tokio::test]
async fn interaction_tokens_are_checked() {
    let fake = FakeDiscord::start().await;
    let token = fake.interaction(CHANNEL);
    let app = fake.application_id();
    let follow_up = |app: &str, token: &str| format!("{}webhooks/{app}/{token}?wait=true", fake.base_url());
    let (status, _, body) = post_json(&follow_up(app, "nope"), None, &json!({"content": "x"})).await;
    assert_eq!((status, body["code"].as_u64()), (401, Some(50_027)));
    let (status, _, body) = post_json(&follow_up("1", &token), None, &json!({"content": "x"})).await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10_015)));
    let (status, _, body) = post_json(&follow_up(app, &token), None, &json!({"content": "ok", "flags": 64})).await;
    assert_eq!((status, body["flags"].as_u64()), (200, Some(64)), "ephemeral follow-ups are allowed");
    assert!(fake.calls().iter().all(|c| !c.params.to_string().contains(&token)));
}

#[tokio::test]
async fn every_response_has_rate_limit_headers_and_429s_have_the_real_shape() {
    let fake = FakeDiscord::builder()
        .rates(DiscordRates { create_message: Window::new(5, Duration::from_secs(5)), ..DiscordRates::unlimited() })
        .start()
        .await;
    for remaining in (0..5).rev() {
        let (status, headers, _) = create(&fake, json!({"content": "x"})).await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-ratelimit-limit"], "5");
        assert_eq!(headers["x-ratelimit-remaining"], remaining.to_string().as_str());
        assert!(headers.contains_key("x-ratelimit-reset") && headers.contains_key("x-ratelimit-bucket"));
        let reset_after: f64 = headers["x-ratelimit-reset-after"].to_str().unwrap().parse().unwrap();
        assert!(reset_after > 0.0 && reset_after <= 5.0);
    }
    let (status, headers, body) = create(&fake, json!({"content": "x"})).await;
    assert_eq!(status, 429);
    assert_eq!(body["message"], "You are being rate limited.");
    assert_eq!(body["global"], false);
    let retry = body["retry_after"].as_f64().unwrap();
    assert!(retry > 0.0 && retry <= 5.0, "{retry}");
    assert_eq!(headers["retry-after"], "5");
    assert_eq!(headers["x-ratelimit-scope"], "user");
    assert_eq!(fake.count_429(), 1);
}
