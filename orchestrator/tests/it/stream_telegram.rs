//! Telegram through the real stream worker and Telegram sink against the rule-enforcing fake: in private chats
//! live output is shown as drafts and each message is posted once (at page rollover and at the end, with the
//! final status); groups post and edit and never draft; a server without drafts gets posts and edits; a replica taking a stream over drafts the same draft
//! and never posts a message twice.

use std::sync::Arc;
use std::time::Duration;

use cynode_adapters::telegram::{ChatTarget, TelegramClient, TelegramMessage};
use cynode_adapters::{PlatformError, Reply};
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::stream::{StreamSettings, TelegramRates, TelegramSink};
use cynode_tests::TestDb;
use cynode_tests::fakes::FakeTelegram;
use cynode_tests::fakes::telegram::Message;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::stream_live::{LiveJob, wait};

/// A private chat (the user's id).
const PRIVATE: i64 = 4_242;
/// A supergroup.
const GROUP: i64 = -1_001_234_567_890;
/// The bot's install key (its username).
const BOT: &str = "cynode_bot";

async fn install(pool: &PgPool, secrets: &SecretBox, tg: &FakeTelegram) -> Uuid {
    let sealed = secrets.seal(
        &format!("install:telegram:{BOT}"),
        serde_json::json!({ "bot_token": tg.token() }).to_string().as_bytes(),
    );
    let install = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO installs (id, platform, external_id, name, settings, secrets)
         VALUES ($1, 'telegram', $2, 'bot', $3, $4)",
    )
    .bind(install)
    .bind(BOT)
    .bind(serde_json::json!({ "api_base_url": tg.base_url() }))
    .bind(sealed)
    .execute(pool)
    .await
    .unwrap();
    install
}

/// A task asked in Telegram chat `chat` with a host job: `(task, job)`.
async fn chat_task(pool: &PgPool, install: Uuid, chat: i64) -> (Uuid, Uuid) {
    let thread_ref = serde_json::json!({"platform": "telegram", "install": BOT, "channel": chat.to_string(),
                                        "thread": null, "reply_to": null});
    crate::support::chat_task(pool, install, thread_ref, "4242", "lines").await
}

async fn setup(tg: &FakeTelegram, chat: i64) -> LiveJob {
    let db = TestDb::new().await;
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
    let install = install(&db.pool, &secrets, tg).await;
    let (task, job) = chat_task(&db.pool, install, chat).await;
    LiveJob::lease(db, secrets, task, job).await
}

/// Starts a stream worker with the Telegram sink (`drafts`: live output as drafts in private chats).
fn worker(s: &LiveJob, drafts: bool) -> watch::Sender<bool> {
    let sink = TelegramSink::new(reqwest::Client::new(), s.installs(), TelegramRates::default());
    s.worker(Arc::new(sink), StreamSettings { drafts, ..StreamSettings::default() })
}

/// Lines `line 0000` … of fixed width, so one never contains another.
fn lines(from: usize, to: usize) -> String {
    (from..to).map(|i| format!("line {i:04}\n")).collect()
}

/// Waits until a draft in `chat` shows `needle`.
async fn drafted(tg: &FakeTelegram, chat: i64, needle: &str) {
    wait(needle, || async { tg.drafts().iter().any(|d| d.chat_id == chat && d.text.contains(needle)) }).await;
}

/// Every line `0..n` shows exactly once across `messages`, in order.
fn each_line_once(messages: &[Message], n: usize) {
    let all: String = messages.iter().map(|m| m.text.as_str()).collect::<Vec<_>>().join("\n");
    let mut at = 0;
    for i in 0..n {
        let line = format!("line {i:04}\n");
        assert_eq!(all.matches(&line).count(), 1, "{line:?} exactly once");
        let found = all.find(&line).unwrap();
        assert!(found >= at, "{line:?} in order");
        at = found;
    }
}

fn client(tg: &FakeTelegram) -> TelegramClient {
    let url = reqwest::Url::parse(&tg.base_url()).unwrap();
    TelegramClient::new(reqwest::Client::new(), url, SecretString::from(tg.token().to_owned()))
}

#[tokio::test]
async fn private_chats_show_live_output_as_drafts_and_post_each_message_once() {
    let tg = FakeTelegram::start().await;
    let s = setup(&tg, PRIVATE).await;
    let _stop = worker(&s, true);
    s.output(0, &lines(0, 150)).await;
    drafted(&tg, PRIVATE, "line 0149").await;
    assert!(tg.messages_in(PRIVATE, None).is_empty(), "nothing posted while the first page grows");
    s.output(1, &lines(150, 300)).await;
    drafted(&tg, PRIVATE, "line 0299").await;
    // Past one page (about 3,200 characters): the first page is posted, the second is drafted.
    s.output(2, &lines(300, 450)).await;
    drafted(&tg, PRIVATE, "line 0449").await;
    wait("the first page is posted", || async { tg.messages_in(PRIVATE, None).len() == 1 }).await;
    s.finish().await;
    s.closed().await;

    let messages = tg.messages_in(PRIVATE, None);
    assert_eq!(messages.len(), 2, "one message per page");
    assert_eq!(tg.calls_to("sendMessage").len(), 2, "each posted once");
    each_line_once(&messages, 450);
    assert!(messages[0].text.contains("✅ Job"), "the first message's status line ends final: {}", messages[0].text);
    assert!(messages[1].text.contains("Succeeded · exit 0 · 2.0 s"), "the final status: {}", messages[1].text);
    let drafts = tg.drafts();
    assert!(drafts.len() >= 3, "drafts while output flowed: {}", drafts.len());
    assert!(drafts.iter().all(|d| d.chat_id == PRIVATE && d.thread_id.is_none()));
    let mut ids: Vec<i64> = drafts.iter().map(|d| d.draft_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 2, "one draft per message, updated in place: {ids:?}");
    let last_draft = tg.calls_to("sendMessageDraft").last().unwrap().at;
    let final_post = tg.calls_to("sendMessage").last().unwrap().at;
    assert!(last_draft < final_post, "the final message comes after the last draft");
    assert_eq!(tg.count_429(), 0);
    assert!(tg.rejections().is_empty(), "{:?}", tg.rejections());
}

#[tokio::test]
async fn groups_post_and_edit_and_never_draft() {
    let tg = FakeTelegram::start().await;
    let s = setup(&tg, GROUP).await;
    let _stop = worker(&s, true);
    s.output(0, &lines(0, 20)).await;
    wait("output is posted", || async {
        tg.messages_in(GROUP, None).first().is_some_and(|m| m.text.contains("line 0019"))
    })
    .await;
    s.output(1, &lines(20, 40)).await;
    s.finish().await;
    s.closed().await;

    let messages = tg.messages_in(GROUP, None);
    assert_eq!(messages.len(), 1);
    assert!(messages[0].edits > 0, "edited as output grew");
    each_line_once(&messages, 40);
    assert!(messages[0].text.contains("Succeeded"));
    assert!(tg.calls_to("sendMessageDraft").is_empty(), "no drafts in groups");
    assert!(tg.rejections().is_empty(), "{:?}", tg.rejections());
    // The fake still refuses drafts outside private chats, so the check above means something.
    let refused = client(&tg).send_message_draft(GROUP, None, 7, &TelegramMessage::plain("x")).await;
    assert!(matches!(refused, Err(PlatformError::InvalidRequest(ref d)) if d.contains("private chats")), "{refused:?}");
}

#[tokio::test]
async fn drafts_switched_off_post_and_edit_in_private_chats() {
    let tg = FakeTelegram::start().await;
    let s = setup(&tg, PRIVATE).await;
    let _stop = worker(&s, false);
    s.output(0, &lines(0, 20)).await;
    wait("output is posted", || async {
        tg.messages_in(PRIVATE, None).first().is_some_and(|m| m.text.contains("line 0019"))
    })
    .await;
    s.finish().await;
    s.closed().await;
    assert!(tg.calls_to("sendMessageDraft").is_empty());
    let messages = tg.messages_in(PRIVATE, None);
    assert_eq!(messages.len(), 1);
    assert!(messages[0].text.contains("Succeeded") && messages[0].edits > 0);
}

#[tokio::test]
async fn a_bot_api_server_without_drafts_gets_posts_and_edits() {
    let tg = FakeTelegram::builder().without_drafts().start().await;
    let s = setup(&tg, PRIVATE).await;
    let _stop = worker(&s, true);
    s.output(0, &lines(0, 20)).await;
    wait("output is posted", || async {
        tg.messages_in(PRIVATE, None).first().is_some_and(|m| m.text.contains("line 0019"))
    })
    .await;
    s.output(1, &lines(20, 40)).await;
    s.finish().await;
    s.closed().await;
    assert_eq!(tg.calls_to("sendMessageDraft").len(), 1, "tried once, then posted and edited");
    let messages = tg.messages_in(PRIVATE, None);
    assert_eq!(messages.len(), 1);
    each_line_once(&messages, 40);
    assert!(messages[0].text.contains("Succeeded") && messages[0].edits > 0);
}

#[tokio::test]
async fn another_worker_continues_the_same_draft_and_posts_the_final_message_once() {
    let tg = FakeTelegram::start().await;
    let s = setup(&tg, PRIVATE).await;
    let first = worker(&s, true);
    s.output(0, &lines(0, 20)).await;
    drafted(&tg, PRIVATE, "line 0019").await;
    first.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.output(1, &lines(20, 40)).await;
    let _second = worker(&s, true);
    drafted(&tg, PRIVATE, "line 0039").await;
    s.finish().await;
    s.closed().await;

    let messages = tg.messages_in(PRIVATE, None);
    assert_eq!(messages.len(), 1, "one message");
    assert_eq!(tg.calls_to("sendMessage").len(), 1, "posted once");
    each_line_once(&messages, 40);
    assert!(messages[0].text.contains("Succeeded"));
    let ids: std::collections::HashSet<i64> = tg.drafts().iter().map(|d| d.draft_id).collect();
    assert_eq!(ids.len(), 1, "both workers updated the same draft");
    assert!(tg.rejections().is_empty(), "{:?}", tg.rejections());
}

#[tokio::test]
async fn a_final_post_interrupted_by_a_crash_is_not_repeated_by_the_next_worker() {
    let tg = FakeTelegram::start().await;
    let s = setup(&tg, PRIVATE).await;
    let first = worker(&s, true);
    s.output(0, &lines(0, 20)).await;
    drafted(&tg, PRIVATE, "line 0019").await;
    first.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // As if the first worker recorded the final post, sent it, and crashed before saving its id.
    s.finish().await;
    let recorded = sqlx::query("UPDATE stream_records SET pending_post = 0 WHERE task_id = $1 AND message_ids = '[]'")
        .bind(s.task)
        .execute(&s.pool)
        .await
        .unwrap();
    assert_eq!(recorded.rows_affected(), 1, "nothing was posted before");
    let target = ChatTarget { chat_id: PRIVATE, thread_id: None, reply_to: None };
    let sent = cynode_adapters::telegram::render_tail(&Reply::new(format!("```\n{}```", lines(0, 20))));
    client(&tg).send_message(&target, &sent).await.unwrap();
    let _second = worker(&s, true);
    s.closed().await;

    assert_eq!(tg.messages_in(PRIVATE, None).len(), 1, "not posted a second time");
    assert_eq!(tg.calls_to("sendMessage").len(), 1);
}

#[tokio::test]
async fn a_post_interrupted_by_a_crash_is_posted_anew_once_the_task_shows_something_else() {
    let tg = FakeTelegram::start().await;
    let s = setup(&tg, GROUP).await;
    // As if a worker recorded its first post ("working on it", of another content than the final one), sent
    // it, and crashed before saving its id: the post is in the thread, stale.
    let recorded = sqlx::query(
        "UPDATE stream_records SET pending_post = 0, pages = '[\"an-older-view\"]' WHERE task_id = $1 AND message_ids = '[]'",
    )
    .bind(s.task)
    .execute(&s.pool)
    .await
    .unwrap();
    assert_eq!(recorded.rows_affected(), 1, "nothing was posted before");
    let target = ChatTarget { chat_id: GROUP, thread_id: None, reply_to: None };
    client(&tg)
        .send_message(&target, &cynode_adapters::telegram::render_tail(&Reply::new("⏳ working on it")))
        .await
        .unwrap();
    s.output(0, &lines(0, 3)).await;
    s.finish().await;
    let _second = worker(&s, false);
    s.closed().await;

    let messages = tg.messages_in(GROUP, None);
    assert_eq!(messages.len(), 2, "the stale post stays; the final state is posted once: {messages:?}");
    assert!(messages[1].text.contains("Succeeded") && messages[1].text.contains("line 0002"), "{messages:?}");
}
