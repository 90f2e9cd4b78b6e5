//! Telegram end to end with real processes: a `/run …` in a forum topic is answered in that topic as a reply and
//! streamed live within Telegram's limits; a held job shows an approval card with an inline keyboard, a
//! non-approver's click is answered with `answerCallbackQuery` only, the approver's click runs the job in Docker
//! and the card says who approved.

use std::time::Duration;

use cynode_tests::fakes::FakeTelegram;
use cynode_tests::fakes::telegram::Message;
use serde_json::{Value, json};

use crate::chat::{Chat, approval_policy, eventually};

const SECRET: &str = "tg-secret_0123456789";
const CHAT: i64 = -1_001_234_567_890;
const TOPIC: i64 = 42;
const APPROVER: i64 = 777_001;
const REQUESTER: i64 = 777_002;
const LIMIT: Duration = Duration::from_secs(120);

fn install(fake: &FakeTelegram) -> String {
    // The webhook path segment (`bot`) and the bot's @name differ on purpose: replies must find the install by
    // either.
    format!(
        "  - {{platform: telegram, name: acme-telegram, bot: acme, username: acme_cynode_bot, bot_token: '{}', \
         secret_token: {SECRET}, api_base_url: '{}'}}\n",
        fake.token(),
        fake.base_url()
    )
}

async fn deliver(chat: &Chat, update: &Value) {
    let headers =
        [("content-type", "application/json".to_owned()), ("x-telegram-bot-api-secret-token", SECRET.to_owned())];
    let (status, text) = chat.deliver("/telegram/acme", &headers, update.to_string()).await;
    assert_eq!(status, 200, "{text}");
}

fn user(id: i64) -> Value {
    json!({ "id": id, "is_bot": false, "first_name": "User", "username": format!("user{id}") })
}

/// `/run <command>` by `from` in the topic, as message `message_id`.
async fn run(chat: &Chat, update_id: i64, message_id: i64, from: i64, command: &str) {
    let update = json!({ "update_id": update_id, "message": {
        "message_id": message_id, "from": user(from), "date": 1_700_000_000,
        "chat": { "id": CHAT, "type": "supergroup", "title": "ops", "is_forum": true },
        "message_thread_id": TOPIC, "is_topic_message": true, "text": format!("/run {command}"),
        "entities": [{ "type": "bot_command", "offset": 0, "length": 4 }],
    }});
    deliver(chat, &update).await;
}

/// A click by `from` on the button `data` of message `message_id`; returns the callback query id.
async fn click(chat: &Chat, fake: &FakeTelegram, update_id: i64, from: i64, message_id: i64, data: &str) -> String {
    let id = fake.callback_query(CHAT, message_id);
    let update = json!({ "update_id": update_id, "callback_query": {
        "id": id, "from": user(from), "chat_instance": "-5123", "data": data,
        "message": { "message_id": message_id, "date": 1_700_000_001, "message_thread_id": TOPIC,
                     "chat": { "id": CHAT, "type": "supergroup", "title": "ops", "is_forum": true } },
    }});
    deliver(chat, &update).await;
    id
}

fn callback_data(m: &Message) -> Vec<String> {
    let rows = m.reply_markup.as_ref().and_then(|r| r["inline_keyboard"].as_array().cloned()).unwrap_or_default();
    rows.iter()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
        .collect()
}

fn topic_text(fake: &FakeTelegram) -> String {
    fake.messages_in(CHAT, Some(TOPIC)).iter().map(|m| m.text.clone()).collect::<Vec<_>>().join("\n---\n")
}

#[tokio::test]
async fn a_telegram_approval_is_refused_to_others_and_runs_after_the_approvers_click() {
    let fake = FakeTelegram::start().await;
    let chat = Chat::start(&install(&fake), &approval_policy(&[&APPROVER.to_string()]), &[]).await;
    run(&chat, 1000, 10, REQUESTER, "echo from-telegram; echo second").await;
    let (card, approve) = eventually(
        LIMIT,
        "the approval card",
        || {
            fake.messages_in(CHAT, Some(TOPIC)).into_iter().find_map(|m| {
                let data = callback_data(&m).into_iter().find(|d| d.starts_with("approve:"))?;
                Some((m, data))
            })
        },
        || format!("{}\nserver:\n{}", topic_text(&fake), chat.server_output()),
    )
    .await;
    assert_eq!(card.reply_to, Some(10), "the card answers the request");
    assert!(card.text.contains("Approval needed") && card.text.contains("echo from-telegram"), "{}", card.text);
    assert!(callback_data(&card).iter().any(|d| d.starts_with("deny:")), "a deny button too");
    assert!(card.text.contains(&format!("Requested by user{REQUESTER}")), "by username: {}", card.text);
    let job = chat.only_job().await;

    let refused = click(&chat, &fake, 1001, REQUESTER, card.message_id, &approve).await;
    let answer = eventually(
        LIMIT,
        "the callback answer",
        || fake.callback_answer(&refused),
        || format!("{:?}", fake.calls_to("answerCallbackQuery")),
    )
    .await;
    assert!(answer.text.as_deref().is_some_and(|t| t.contains("not an approver")), "{answer:?}");
    assert!(answer.text.as_deref().is_some_and(|t| !t.contains('`')), "plain text, no Markdown marks: {answer:?}");
    assert_eq!(chat.job_state(job).await, ("awaiting_approval".into(), Some("pending".into())), "still held");

    let approved = click(&chat, &fake, 1002, APPROVER, card.message_id, &approve).await;
    let all = eventually(
        LIMIT,
        "the final status and the output",
        || Some(topic_text(&fake)).filter(|t| t.contains("Succeeded") && t.contains("from-telegram\nsecond")),
        || format!("{}\nserver:\n{}", topic_text(&fake), chat.server_output()),
    )
    .await;
    assert!(all.contains("from-telegram\nsecond"), "output in the topic:\n{all}");
    let answer = fake.callback_answer(&approved).expect("every callback query is answered");
    assert!(answer.text.as_deref().is_some_and(|t| t.contains("approved") && !t.contains('`')), "{answer:?}");
    let card = fake.message(CHAT, card.message_id).expect("card");
    assert!(card.text.contains(&format!("Approved by user{APPROVER}")), "by username: {}", card.text);
    assert!(callback_data(&card).is_empty(), "buttons removed once decided");
    assert_eq!(chat.job_state(job).await, ("succeeded".into(), Some("approved".into())));
    assert_eq!(fake.count_429(), 0);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

#[tokio::test]
async fn ten_thousand_lines_stream_into_a_telegram_topic_without_a_429() {
    let fake = FakeTelegram::start().await;
    let chat = Chat::start(&install(&fake), "", &[]).await;
    run(&chat, 2000, 20, REQUESTER, "seq 1 10000").await;
    let all = eventually(
        LIMIT,
        "the final message",
        || Some(topic_text(&fake)).filter(|t| t.contains("Succeeded")),
        || format!("{}\nserver:\n{}", topic_text(&fake), chat.server_output()),
    )
    .await;
    let messages = fake.messages_in(CHAT, Some(TOPIC));
    assert_eq!(messages[0].reply_to, Some(20), "the first reply answers the request");
    assert!(messages.len() > 1, "rolled over into more messages");
    assert!(messages.iter().all(|m| m.text.encode_utf16().count() <= 4096));
    assert!(all.contains("\n1\n2\n3\n"), "the start of the output:\n{all}");
    assert!(all.contains("\n10000\n"), "the end of the output");
    let job = chat.only_job().await;
    let short = &job.simple().to_string()[..8];
    let last = &messages.last().expect("a message").text;
    assert!(last.contains(&format!("cynode logs {short}")), "where the full output is: {last}");
    assert_eq!(fake.count_429(), 0, "zero 429s");
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}
