use std::time::Duration;

use cynode_adapters::discord::{self, DiscordClient, DiscordMessage, InteractionToken};
use cynode_adapters::{Actor, ApprovalCard, ApprovalState, PlatformError, Reply};
use cynode_tests::fakes::discord::DiscordRates;
use cynode_tests::fakes::{FakeDiscord, Window};
use secrecy::SecretString;

use super::{http, output, url};

const CHANNEL: &str = "1110000000000000000";

fn client(fake: &FakeDiscord) -> DiscordClient {
    DiscordClient::new(http(), url(&fake.base_url()), SecretString::from(fake.bot_token().to_owned()))
}

fn interaction<'a>(fake: &'a FakeDiscord, token: &'a str) -> InteractionToken<'a> {
    InteractionToken { application_id: fake.application_id(), token }
}

#[tokio::test]
async fn deferred_interaction_is_edited_and_followed_up() {
    let fake = FakeDiscord::builder().rates(DiscordRates::unlimited()).start().await;
    let client = client(&fake);
    let token = fake.interaction(CHANNEL);
    let reply = Reply::new(output(10_000)).with_status("✅ Finished");
    let pages = discord::render_pages(&reply);
    let first = client.edit_original(interaction(&fake, &token), &discord::render_tail(&reply)).await.unwrap();
    assert_eq!(first.message.channel, CHANNEL);
    client.edit_original(interaction(&fake, &token), &pages[0]).await.unwrap();
    for page in &pages[1..] {
        client.follow_up(interaction(&fake, &token), page).await.unwrap();
    }
    let messages = fake.messages_in(CHANNEL);
    assert_eq!(messages.len(), pages.len());
    assert!(messages.iter().all(|m| !m.deferred && m.content.chars().count() <= 2_000));
    assert!(fake.original(&token).unwrap().content.starts_with("✅ Finished"));
    let notice = DiscordMessage::plain("You are not an approver.").ephemeral();
    client.follow_up(interaction(&fake, &token), &notice).await.unwrap();
    assert_eq!(fake.ephemerals().len(), 1);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

#[tokio::test]
async fn rate_limit_headers_let_a_caller_pace_itself() {
    let window = Window::new(3, Duration::from_millis(400));
    let fake = FakeDiscord::builder()
        .rates(DiscordRates { create_message: window, ..DiscordRates::unlimited() })
        .start()
        .await;
    let client = client(&fake);
    for i in 0..7 {
        let sent = client.create_message(CHANNEL, &DiscordMessage::plain(&format!("update {i}"))).await.unwrap();
        let limit = sent.rate_limit.unwrap();
        assert_eq!(limit.limit, Some(3));
        assert!(limit.bucket.is_some());
        tokio::time::sleep(limit.wait_before_next()).await;
    }
    assert_eq!(fake.count_429(), 0, "pacing by the headers never hits a 429");
    for _ in 0..3 {
        let _ = client.create_message(CHANNEL, &DiscordMessage::plain("burst")).await;
    }
    let err = client.create_message(CHANNEL, &DiscordMessage::plain("over")).await.unwrap_err();
    let PlatformError::RateLimited { retry_after, global } = err else { panic!("{err:?}") };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(400), "{retry_after:?}");
    assert!(!global);
}

#[tokio::test]
async fn expired_interaction_tokens_fall_back_to_the_bot_token() {
    let fake = FakeDiscord::builder().interaction_lifetime(Duration::from_millis(100)).start().await;
    let client = client(&fake);
    let token = fake.interaction(CHANNEL);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let msg = DiscordMessage::plain("late result");
    assert_eq!(client.edit_original(interaction(&fake, &token), &msg).await, Err(PlatformError::Expired));
    let sent = client.create_message(CHANNEL, &msg).await.unwrap();
    client.edit_message(CHANNEL, &sent.message.id, &DiscordMessage::plain("edited")).await.unwrap();
    assert_eq!(fake.message(&sent.message.id).unwrap().content, "edited");
    let unknown_app = InteractionToken { application_id: "42", token: &token };
    assert_eq!(client.follow_up(unknown_app, &msg).await, Err(PlatformError::Expired));
}

#[tokio::test]
async fn approval_components_are_accepted_and_removed_when_decided() {
    let fake = FakeDiscord::start().await;
    let client = client(&fake);
    let mut card = ApprovalCard {
        job: "3f2a9c1d".into(),
        command: "nvidia-smi".into(),
        requester: Actor { id: "1000000000000000001".into(), name: Some("Ada".into()) },
        template: None,
        access: cynode_adapters::Access { network: false, gpu: true },
        reason: Some("GPU time needs an approver".into()),
        state: ApprovalState::Pending { expires_at: None },
    };
    let sent = client.create_message(CHANNEL, &discord::render_tail(&Reply::new("").with_approval(card.clone()))).await;
    let sent = sent.unwrap();
    let shown = fake.message(&sent.message.id).unwrap();
    assert_eq!(shown.components[0]["components"][0]["custom_id"], "approve:3f2a9c1d");
    card.state =
        ApprovalState::Denied { by: Actor { id: "1000000000000000002".into(), name: None }, at: 1_750_000_000 };
    let decided = discord::render_tail(&Reply::new("").with_approval(card));
    client.edit_message(CHANNEL, &sent.message.id, &decided).await.unwrap();
    let shown = fake.message(&sent.message.id).unwrap();
    assert_eq!(shown.components, serde_json::json!([]));
    assert!(shown.content.contains("❌ Denied by <@1000000000000000002> at <t:1750000000:f>"));
}

#[tokio::test]
async fn errors_map_to_platform_errors() {
    let fake = FakeDiscord::start().await;
    let client = client(&fake);
    let mut long = DiscordMessage::plain("x");
    long.content = "x".repeat(2_001);
    assert_eq!(client.create_message(CHANNEL, &long).await, Err(PlatformError::TooLong));
    let missing = client.edit_message(CHANNEL, "1", &DiscordMessage::plain("x")).await;
    assert_eq!(missing, Err(PlatformError::NotFound));
    let bad = DiscordClient::new(http(), url(&fake.base_url()), SecretString::from("wrong".to_owned()));
    assert_eq!(bad.create_message(CHANNEL, &DiscordMessage::plain("x")).await, Err(PlatformError::Auth));
    let ephemeral_in_channel = client.create_message(CHANNEL, &DiscordMessage::plain("x").ephemeral()).await;
    assert!(matches!(ephemeral_in_channel, Err(PlatformError::InvalidRequest(ref c)) if c.starts_with("50035")));
}
