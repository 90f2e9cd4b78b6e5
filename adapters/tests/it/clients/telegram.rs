use std::time::Duration;

use cynode_adapters::telegram::{self, ChatTarget, TelegramClient, TelegramMessage};
use cynode_adapters::{Actor, ApprovalCard, ApprovalState, Platform, PlatformError, Reply, ThreadRef};
use cynode_tests::fakes::telegram::TelegramRates;
use cynode_tests::fakes::{FakeTelegram, Rate};
use secrecy::SecretString;

use super::{http, output, url};

const GROUP: i64 = -1_001_234_567_890;

fn client(fake: &FakeTelegram) -> TelegramClient {
    TelegramClient::new(http(), url(&fake.base_url()), SecretString::from(fake.token().to_owned()))
}

fn topic() -> ChatTarget {
    let thread = ThreadRef {
        platform: Platform::Telegram,
        install: "cynode_bot".into(),
        channel: GROUP.to_string(),
        thread: Some("5".into()),
        reply_to: Some("77".into()),
    };
    ChatTarget::from_thread(&thread).unwrap()
}

#[tokio::test]
async fn ten_thousand_lines_are_sent_to_the_topic_within_limits() {
    let fake = FakeTelegram::builder().rates(TelegramRates::unlimited()).start().await;
    let client = client(&fake);
    let reply = Reply::new(output(10_000)).with_footer("Full output: `cynode logs 3f2a9c1d`");
    let pages = telegram::render_pages(&reply);
    for page in &pages {
        client.send_message(&topic(), page).await.unwrap();
    }
    let messages = fake.messages_in(GROUP, Some(5));
    assert_eq!(messages.len(), pages.len());
    assert!(messages.iter().all(|m| m.reply_to == Some(77) && m.text.encode_utf16().count() <= 4_096));
    assert!(messages.last().unwrap().text.ends_with("Full output: cynode logs 3f2a9c1d"));
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

#[tokio::test]
async fn edits_keyboards_and_callback_answers() {
    let fake = FakeTelegram::builder().rates(TelegramRates::unlimited()).start().await;
    let client = client(&fake);
    let mut card = ApprovalCard {
        job: "3f2a9c1d".into(),
        command: "curl https://example.com".into(),
        requester: Actor { id: "1234567".into(), name: Some("ada".into()) },
        template: Some("net".into()),
        access: cynode_adapters::Access { network: true, gpu: false },
        reason: None,
        state: ApprovalState::Pending { expires_at: None },
    };
    let msg = telegram::render_tail(&Reply::new("").with_approval(card.clone()));
    let sent = client.send_message(&topic(), &msg).await.unwrap();
    let id: i64 = sent.message.id.parse().unwrap();
    assert!(fake.message(GROUP, id).unwrap().reply_markup.unwrap().to_string().contains("approve:3f2a9c1d"));
    assert_eq!(client.edit_message_text(GROUP, id, &msg).await, Err(PlatformError::NotModified));
    card.state = ApprovalState::Approved { by: Actor { id: "7".into(), name: Some("boss".into()) }, at: 1_750_000_000 };
    let decided = telegram::render_tail(&Reply::new("").with_approval(card));
    client.edit_message_text(GROUP, id, &decided).await.unwrap();
    let shown = fake.message(GROUP, id).unwrap();
    assert!(shown.reply_markup.is_none() && shown.text.contains("✅ Approved by boss at 2025-06-15 15:06 UTC"));
    assert_eq!(client.edit_message_text(GROUP, 999_999, &decided).await, Err(PlatformError::NotFound));

    let query = fake.callback_query(GROUP, id);
    client.answer_callback_query(&query, Some("Only approvers can decide."), true).await.unwrap();
    assert_eq!(fake.callback_answer(&query).unwrap().text.as_deref(), Some("Only approvers can decide."));
    assert_eq!(client.answer_callback_query(&query, None, false).await, Err(PlatformError::Expired));
}

#[tokio::test]
async fn drafts_only_in_private_chats() {
    let fake = FakeTelegram::start().await;
    let client = client(&fake);
    let draft = telegram::render_tail(&Reply::new(output(50)));
    client.send_message_draft(42, None, 7, &draft).await.unwrap();
    assert_eq!(fake.drafts()[0].draft_id, 7);
    let group = client.send_message_draft(GROUP, None, 7, &draft).await;
    assert!(matches!(group, Err(PlatformError::InvalidRequest(ref d)) if d.contains("private chats")));
}

#[tokio::test]
async fn rate_limits_and_auth_errors_never_leak_the_token() {
    let rates =
        TelegramRates { per_chat: Rate { burst: 1, every: Duration::from_secs(20) }, ..TelegramRates::unlimited() };
    let fake = FakeTelegram::builder().rates(rates).start().await;
    let client = client(&fake);
    let target = ChatTarget { chat_id: 42, thread_id: None, reply_to: None };
    client.send_message(&target, &TelegramMessage::plain("one")).await.unwrap();
    let err = client.send_message(&target, &TelegramMessage::plain("two")).await.unwrap_err();
    assert_eq!(err, PlatformError::RateLimited { retry_after: Duration::from_secs(20), global: false });
    assert_eq!(fake.count_429(), 1);

    let token = "987654321:AAsecret-token-that-must-not-leak";
    let wrong = TelegramClient::new(http(), url(&fake.base_url()), SecretString::from(token.to_owned()));
    let err = wrong.send_message(&target, &TelegramMessage::plain("x")).await.unwrap_err();
    assert_eq!(err, PlatformError::Auth);
    let offline = TelegramClient::new(http(), url("http://127.0.0.1:9/"), SecretString::from(token.to_owned()));
    let err = offline.send_message(&target, &TelegramMessage::plain("x")).await.unwrap_err();
    assert!(matches!(err, PlatformError::Transient(_)), "{err:?}");
    for text in [err.to_string(), format!("{err:?}"), format!("{offline:?}")] {
        assert!(!text.contains("AAsecret"), "token leaked: {text}");
    }
}
