use std::time::Duration;

use cynode_tests::fakes::telegram::TelegramRates;
use cynode_tests::fakes::{FakeTelegram, Rate};
use serde_json::{Value, json};

use super::{post_form, post_json};

async fn call(fake: &FakeTelegram, method: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = post_json(&format!("{}bot{}/{method}", fake.base_url(), fake.token()), None, &body).await;
    (status, body)
}

fn refused(reply: &(u16, Value), description: &str) {
    let (status, body) = reply;
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["error_code"].as_u64(), Some(u64::from(*status)));
    assert!(body["description"].as_str().unwrap().contains(description), "{body}");
}

#[tokio::test]
async fn token_methods_and_required_parameters() {
    let fake = FakeTelegram::builder().rates(TelegramRates::unlimited()).start().await;
    let wrong = post_json(&format!("{}bot1:wrong/sendMessage", fake.base_url()), None, &json!({})).await;
    refused(&(wrong.0, wrong.2), "Unauthorized");
    assert_eq!(wrong.0, 401);
    refused(&call(&fake, "sendSticker", json!({})).await, "Not Found");
    for method in ["sendMessage", "SendMessage", "sendmessage"] {
        let (status, body) = call(&fake, method, json!({"chat_id": 42, "text": "hi"})).await;
        assert_eq!((status, &body["ok"]), (200, &json!(true)), "{method}: {body}");
    }
    refused(&call(&fake, "sendMessage", json!({"text": "hi"})).await, "chat_id is empty");
    refused(&call(&fake, "sendMessage", json!({"chat_id": 42})).await, "message text is empty");
    refused(
        &call(&fake, "sendMessage", json!({"chat_id": 42, "text": "🎉".repeat(2_049)})).await,
        "message is too long",
    );
    let fits = call(&fake, "sendMessage", json!({"chat_id": 42, "text": "🎉".repeat(2_048)})).await;
    assert_eq!(fits.0, 200, "4,096 UTF-16 units fit");
    let outside = json!({"chat_id": 42, "text": "abc", "entities": [{"type": "code", "offset": 2, "length": 2}]});
    refused(&call(&fake, "sendMessage", outside).await, "can't parse entities");
    let thread = json!({"chat_id": 42, "text": "x", "message_thread_id": "five"});
    refused(&call(&fake, "sendMessage", thread).await, "message_thread_id");
}

#[tokio::test]
async fn keyboards_edits_and_form_bodies() {
    let fake = FakeTelegram::builder().rates(TelegramRates::unlimited()).start().await;
    let keyboard = |data: &str| json!({"inline_keyboard": [[{"text": "Approve", "callback_data": data}]]});
    let too_long = json!({"chat_id": 42, "text": "x", "reply_markup": keyboard(&"é".repeat(33))});
    refused(&call(&fake, "sendMessage", too_long).await, "BUTTON_DATA_INVALID");
    let plain = json!({"chat_id": 42, "text": "x", "reply_markup": {"inline_keyboard": [[{"text": "?"}]]}});
    refused(&call(&fake, "sendMessage", plain).await, "text buttons are unallowed");
    // python-telegram-bot style: form fields, nested objects as JSON strings.
    let markup = keyboard("approve:3f2a9c1d").to_string();
    let url = format!("{}bot{}/sendMessage", fake.base_url(), fake.token());
    let fields =
        [("chat_id", "-100123"), ("text", "Approve?"), ("reply_markup", markup.as_str()), ("message_thread_id", "5")];
    let (status, _, body) = post_form(&url, None, &fields).await;
    assert_eq!(status, 200, "{body}");
    let id = body["result"]["message_id"].as_i64().unwrap();
    assert_eq!(fake.messages_in(-100_123, Some(5)).len(), 1);
    let same = json!({"chat_id": -100_123, "message_id": id, "text": "Approve?", "reply_markup": keyboard("approve:3f2a9c1d")});
    refused(&call(&fake, "editMessageText", same).await, "message is not modified");
    let edit = json!({"chat_id": -100_123, "message_id": id, "text": "Approved"});
    assert_eq!(call(&fake, "editMessageText", edit).await.0, 200);
    assert_eq!(fake.message(-100_123, id).unwrap().reply_markup, None, "an edit without markup removes it");
    refused(&call(&fake, "editMessageText", json!({"chat_id": -100_123, "text": "x"})).await, "message identifier");
    refused(&call(&fake, "sendMessageDraft", json!({"chat_id": 42, "draft_id": 0, "text": "x"})).await, "non-zero");
    refused(&call(&fake, "answerCallbackQuery", json!({"callback_query_id": "nope"})).await, "query is too old");
    let query = fake.callback_query(42, id);
    refused(
        &call(&fake, "answerCallbackQuery", json!({"callback_query_id": query, "text": "x".repeat(201)})).await,
        "MESSAGE_TOO_LONG",
    );
}

#[tokio::test]
async fn groups_are_limited_to_twenty_a_minute_with_the_real_429() {
    let rates = TelegramRates { per_group: Rate::per_minute(20, 20), ..TelegramRates::unlimited() };
    let fake = FakeTelegram::builder().rates(rates).start().await;
    for i in 0..20 {
        assert_eq!(call(&fake, "sendMessage", json!({"chat_id": -1_005, "text": format!("m{i}")})).await.0, 200);
    }
    let (status, body) = call(&fake, "sendMessage", json!({"chat_id": -1_005, "text": "one more"})).await;
    assert_eq!(status, 429);
    assert_eq!(body["error_code"], 429);
    assert_eq!(body["description"], "Too Many Requests: retry after 3");
    assert_eq!(body["parameters"], json!({"retry_after": 3}));
    assert_eq!(call(&fake, "sendMessage", json!({"chat_id": 42, "text": "private chats are not groups"})).await.0, 200);
    let per_chat = TelegramRates {
        per_chat: Rate { burst: 1, every: Duration::from_millis(1_500) },
        ..TelegramRates::unlimited()
    };
    let fake = FakeTelegram::builder().rates(per_chat).start().await;
    assert_eq!(call(&fake, "sendMessage", json!({"chat_id": 7, "text": "a"})).await.0, 200);
    let (status, body) = call(&fake, "sendMessage", json!({"chat_id": 7, "text": "b"})).await;
    assert_eq!((status, body["parameters"]["retry_after"].as_u64()), (429, Some(2)), "waits round up to whole seconds");
}
