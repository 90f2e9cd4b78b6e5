//! An agent turn's Stop button through the real stream worker and the Telegram and Discord sinks, against the
//! rule-enforcing fakes: while the turn runs its message carries the button (`cancel:<turn id>` within
//! Telegram's `callback_data` and Discord's `custom_id` limits, accepted by the fakes); when the turn ends the
//! message is edited to the answer and the button is gone. (Slack: `tests/e2e/agent_stop.rs`, with clicks.)

use std::sync::Arc;
use std::time::Duration;

use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::installs::Installs;
use cynode_orchestrator::stream::{
    DiscordRates, DiscordSink, Sinks, StreamSettings, TelegramRates, TelegramSink, ThreadSink, spawn_stream_worker,
};
use cynode_orchestrator::tasks::{self, Origin};
use cynode_tests::TestDb;
use cynode_tests::fakes::{FakeDiscord, FakeTelegram};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::stream_live::wait;

const GROUP: i64 = -1_001_234_567_891;
const BOT: &str = "cynode_bot";
const DISCORD_CHANNEL: &str = "990000000000000001";

async fn install(pool: &PgPool, secrets: &SecretBox, platform: &str, key: &str, token: &str, url: &str) -> Uuid {
    let sealed =
        secrets.seal(&format!("install:{platform}:{key}"), json!({ "bot_token": token }).to_string().as_bytes());
    let install = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO installs (id, platform, external_id, name, settings, secrets) VALUES ($1, $2, $3, 'bot', $4, $5)",
    )
    .bind(install)
    .bind(platform)
    .bind(key)
    .bind(json!({ "api_base_url": url }))
    .bind(sealed)
    .execute(pool)
    .await
    .unwrap();
    install
}

/// A running agent turn in the thread `thread_ref`, as `agent_turn` leaves it: the task (`agent`, `running`,
/// thinking) and its turn row. Returns `(task, turn)`.
async fn running_turn(pool: &PgPool, install: Uuid, thread_ref: Value) -> (Uuid, Uuid) {
    let conversation = Uuid::now_v7();
    sqlx::query("INSERT INTO conversations (id, install_id, channel, thread, thread_ref) VALUES ($1, $2, $3, '', $4)")
        .bind(conversation)
        .bind(install)
        .bind(thread_ref["channel"].as_str().unwrap())
        .bind(&thread_ref)
        .execute(pool)
        .await
        .unwrap();
    let origin = Origin {
        install_id: Some(install),
        conversation_id: Some(conversation),
        requester: "4242".into(),
        source: "chat".into(),
        ..Origin::default()
    };
    let mut tx = pool.begin().await.unwrap();
    let task = tasks::create_task(&mut tx, &origin, "agent", "why is CI red?", &json!({})).await.unwrap();
    sqlx::query("UPDATE tasks SET state = 'running', reply = '🤔 Thinking…' WHERE id = $1")
        .bind(task)
        .execute(&mut *tx)
        .await
        .unwrap();
    let steps_origin = Origin { conversation_id: None, source: "agent".into(), ..origin.clone() };
    let steps = tasks::create_task(&mut tx, &steps_origin, "agent.steps", "", &json!({})).await.unwrap();
    let turn = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO agent_turns (id, task_id, steps_task_id, conversation_id, install_id, requester, max_steps,
                                  max_output_tokens, deadline)
         VALUES ($1, $2, $3, $4, $5, '4242', 8, 1000, now() + interval '10 minutes')",
    )
    .bind(turn)
    .bind(task)
    .bind(steps)
    .bind(conversation)
    .bind(install)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (task, turn)
}

/// Ends the turn with an answer, as the engine does.
async fn answer(pool: &PgPool, task: Uuid, turn: Uuid) {
    sqlx::query("UPDATE agent_turns SET state = 'succeeded', finished_at = now() WHERE id = $1")
        .bind(turn)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE tasks SET state = 'answered', reply = 'CI is red: two tests fail.' WHERE id = $1")
        .bind(task)
        .execute(pool)
        .await
        .unwrap();
}

fn worker(pool: &PgPool, sink: Arc<dyn ThreadSink>) -> watch::Sender<bool> {
    let (stop, rx) = watch::channel(false);
    let settings = StreamSettings { poll: Duration::from_millis(50), ..StreamSettings::default() };
    spawn_stream_worker(pool.clone(), Sinks::new().with(sink), settings, rx);
    stop
}

#[tokio::test]
async fn telegram_a_running_turns_message_offers_stop_until_the_turn_ends() {
    let db = TestDb::new().await;
    let tg = FakeTelegram::start().await;
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
    let install = install(&db.pool, &secrets, "telegram", BOT, tg.token(), &tg.base_url()).await;
    let thread_ref = json!({"platform": "telegram", "install": BOT, "channel": GROUP.to_string(),
                            "thread": null, "reply_to": null});
    let (task, turn) = running_turn(&db.pool, install, thread_ref).await;
    let installs = Arc::new(Installs::new(db.pool.clone(), secrets, Duration::from_secs(30)));
    let _stop =
        worker(&db.pool, Arc::new(TelegramSink::new(reqwest::Client::new(), installs, TelegramRates::default())));

    let want = format!("cancel:{turn}");
    let stop = |m: &cynode_tests::fakes::telegram::Message| {
        m.reply_markup.as_ref().is_some_and(|k| k["inline_keyboard"][0][0]["callback_data"] == want.as_str())
    };
    wait("the Stop button", || async { tg.messages_in(GROUP, None).iter().any(stop) }).await;
    let messages = tg.messages_in(GROUP, None);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let button = &messages[0].reply_markup.as_ref().unwrap()["inline_keyboard"][0][0];
    assert_eq!(button["text"], "Stop");
    assert!(want.len() <= cynode_adapters::telegram::CALLBACK_DATA_LIMIT);

    answer(&db.pool, task, turn).await;
    wait("the answer without the button", || async {
        tg.messages_in(GROUP, None).iter().any(|m| m.text.contains("two tests fail") && m.reply_markup.is_none())
    })
    .await;
    assert_eq!(tg.messages_in(GROUP, None).len(), 1, "the same message is edited");
    assert!(tg.rejections().is_empty(), "the fake refused: {:?}", tg.rejections());
}

#[tokio::test]
async fn discord_a_running_turns_message_offers_stop_until_the_turn_ends() {
    let db = TestDb::new().await;
    let dc = FakeDiscord::start().await;
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
    let app = dc.application_id().to_owned();
    let install = install(&db.pool, &secrets, "discord", &app, dc.bot_token(), &dc.base_url()).await;
    let thread_ref = json!({"platform": "discord", "install": app, "channel": DISCORD_CHANNEL,
                            "thread": null, "reply_to": null});
    let (task, turn) = running_turn(&db.pool, install, thread_ref).await;
    let installs = Arc::new(Installs::new(db.pool.clone(), secrets, Duration::from_secs(30)));
    let _stop = worker(&db.pool, Arc::new(DiscordSink::new(reqwest::Client::new(), installs, DiscordRates::default())));

    let want = format!("cancel:{turn}");
    let stop =
        |m: &cynode_tests::fakes::discord::Message| m.components[0]["components"][0]["custom_id"] == want.as_str();
    wait("the Stop button", || async { dc.messages_in(DISCORD_CHANNEL).iter().any(stop) }).await;
    let messages = dc.messages_in(DISCORD_CHANNEL);
    assert_eq!(messages.len(), 1, "{messages:?}");
    let button = &messages[0].components[0]["components"][0];
    assert_eq!((button["label"].as_str(), button["style"].as_u64()), (Some("Stop"), Some(4)));
    assert!(want.chars().count() <= cynode_adapters::discord::render::CUSTOM_ID_LIMIT);

    answer(&db.pool, task, turn).await;
    wait("the answer without the button", || async {
        dc.messages_in(DISCORD_CHANNEL)
            .iter()
            .any(|m| m.content.contains("two tests fail") && m.components.as_array().is_none_or(Vec::is_empty))
    })
    .await;
    assert_eq!(dc.messages_in(DISCORD_CHANNEL).len(), 1, "the same message is edited");
    assert!(dc.rejections().is_empty(), "the fake refused: {:?}", dc.rejections());
}

#[tokio::test]
async fn telegram_private_chats_post_the_running_turn_so_its_stop_button_shows() {
    // Drafts (on by default) carry no buttons: a message with buttons is posted, not drafted.
    const PRIVATE: i64 = 4_243;
    let db = TestDb::new().await;
    let tg = FakeTelegram::start().await;
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
    let install = install(&db.pool, &secrets, "telegram", BOT, tg.token(), &tg.base_url()).await;
    let thread_ref = json!({"platform": "telegram", "install": BOT, "channel": PRIVATE.to_string(),
                            "thread": null, "reply_to": null});
    let (task, turn) = running_turn(&db.pool, install, thread_ref).await;
    let installs = Arc::new(Installs::new(db.pool.clone(), secrets, Duration::from_secs(30)));
    let sink = TelegramSink::new(reqwest::Client::new(), installs, TelegramRates::default());
    let _stop = worker(&db.pool, Arc::new(sink));

    let want = format!("cancel:{turn}");
    wait("the Stop button in the private chat", || async {
        tg.messages_in(PRIVATE, None).iter().any(|m| {
            m.reply_markup.as_ref().is_some_and(|k| k["inline_keyboard"][0][0]["callback_data"] == want.as_str())
        })
    })
    .await;
    answer(&db.pool, task, turn).await;
    wait("the answer without the button", || async {
        tg.messages_in(PRIVATE, None).iter().any(|m| m.text.contains("two tests fail") && m.reply_markup.is_none())
    })
    .await;
    assert_eq!(tg.messages_in(PRIVATE, None).len(), 1, "the same message is edited");
    assert!(tg.rejections().is_empty(), "the fake refused: {:?}", tg.rejections());
}
