use std::time::Duration;

use cynode_adapters::slack::{self, ResponseMode, SlackClient, SlackMessage, SlackMessageMetadata, StreamStart};
use cynode_adapters::{Actor, ApprovalCard, ApprovalState, PlatformError, Reply};
use cynode_tests::fakes::slack::SlackRates;
use cynode_tests::fakes::{FakeSlack, Rate};
use secrecy::SecretString;

use super::{http, output, url};

const CHANNEL: &str = "C0OPS";
const THREAD: &str = "1750000000.000100";

fn client(fake: &FakeSlack) -> SlackClient {
    SlackClient::new(http(), url(&fake.base_url()), SecretString::from(fake.token().to_owned()))
        .with_response_url_prefix(fake.response_url_prefix())
}

async fn unlimited() -> FakeSlack {
    FakeSlack::builder().rates(SlackRates::unlimited()).start().await
}

fn card(state: ApprovalState) -> ApprovalCard {
    ApprovalCard {
        job: "3f2a9c1d".into(),
        command: "pytest -x".into(),
        requester: Actor { id: "U0ADA".into(), name: Some("ada".into()) },
        template: Some("python".into()),
        access: cynode_adapters::Access { network: true, gpu: true },
        reason: None,
        state,
    }
}

#[tokio::test]
async fn ten_thousand_lines_are_posted_in_the_thread_within_limits() {
    let fake = unlimited().await;
    let client = client(&fake);
    let reply = Reply::new(output(10_000)).with_status("✅ Finished (exit 0)");
    let pages = slack::render_pages(&reply);
    let first = client.post_message(CHANNEL, Some(THREAD), &slack::render_tail(&reply)).await.unwrap();
    client.update_message(CHANNEL, &first.message.id, &pages[0]).await.unwrap();
    for page in &pages[1..] {
        client.post_message(CHANNEL, Some(THREAD), page).await.unwrap();
    }
    let messages = fake.messages_in(CHANNEL, Some(THREAD));
    assert_eq!(messages.len(), pages.len());
    assert!(fake.rejections().is_empty() && fake.count_429() == 0);
    assert_eq!(messages[0].edits, 1);
    let shown: String = messages.iter().map(|m| m.text.clone().unwrap()).collect();
    assert!(shown.contains("test_0 ... ok &lt;&amp;&gt;") && shown.contains("test_9999 ... ok"));
    assert!(messages.iter().all(|m| m.text.as_ref().unwrap().chars().count() <= slack::render::TEXT_LIMIT));
}

#[tokio::test]
async fn approval_cards_pass_block_kit_checks_and_update_when_decided() {
    let fake = unlimited().await;
    let client = client(&fake);
    let pending = Reply::new("").with_approval(card(ApprovalState::Pending { expires_at: Some(1_750_000_900) }));
    let sent = client.post_message(CHANNEL, Some(THREAD), &slack::render_tail(&pending)).await.unwrap();
    let shown = fake.message(CHANNEL, &sent.message.id).unwrap();
    assert!(shown.blocks.as_ref().unwrap().to_string().contains("\"action_id\":\"approve\""));
    let by = Actor { id: "U0BOSS".into(), name: None };
    let decided = Reply::new("").with_approval(card(ApprovalState::Approved { by, at: 1_750_000_100 }));
    client.update_message(CHANNEL, &sent.message.id, &slack::render_tail(&decided)).await.unwrap();
    let shown = fake.message(CHANNEL, &sent.message.id).unwrap();
    assert!(shown.shown().contains("Approved by <@U0BOSS>"));
    assert!(!shown.blocks.unwrap().to_string().contains("\"actions\""), "buttons are gone");
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}

#[tokio::test]
async fn errors_map_to_platform_errors() {
    let fake = unlimited().await;
    let client = client(&fake);
    let sent = client.post_message(CHANNEL, None, &SlackMessage::plain("hi")).await.unwrap();
    let long = SlackMessage { text: "x".repeat(4_001), blocks: None };
    assert_eq!(client.update_message(CHANNEL, &sent.message.id, &long).await, Err(PlatformError::TooLong));
    let unknown = client.update_message(CHANNEL, "1.2", &SlackMessage::plain("x")).await;
    assert_eq!(unknown, Err(PlatformError::NotFound));
    let bad = SlackClient::new(http(), url(&fake.base_url()), SecretString::from("xoxb-wrong".to_owned()));
    assert_eq!(bad.post_message(CHANNEL, None, &SlackMessage::plain("x")).await, Err(PlatformError::Auth));
    let wrong_channel = client.post_message("not-a-channel", None, &SlackMessage::plain("x")).await;
    assert_eq!(wrong_channel, Err(PlatformError::NotFound));
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let rates =
        SlackRates { post_message: Rate { burst: 1, every: Duration::from_secs(30) }, ..SlackRates::unlimited() };
    let fake = FakeSlack::builder().rates(rates).start().await;
    let client = client(&fake);
    client.post_message(CHANNEL, None, &SlackMessage::plain("one")).await.unwrap();
    let err = client.post_message(CHANNEL, None, &SlackMessage::plain("two")).await.unwrap_err();
    assert_eq!(err, PlatformError::RateLimited { retry_after: Duration::from_secs(30), global: false });
    assert!(err.is_retryable());
    client.post_message("C0OTHER", None, &SlackMessage::plain("other channel")).await.unwrap();
    assert_eq!(fake.count_429(), 1);
}

#[tokio::test]
async fn ephemeral_notices_and_response_urls() {
    let fake = unlimited().await;
    let client = client(&fake);
    let card_msg = client.post_message(CHANNEL, Some(THREAD), &SlackMessage::plain("card")).await.unwrap();
    let notice = SlackMessage::plain("You are not an approver for job 3f2a9c1d.");
    client.post_ephemeral(CHANNEL, "U0EVE", Some(THREAD), &notice).await.unwrap();
    let url = fake.response_url(CHANNEL, "U0EVE", Some(&card_msg.message.id));
    client.respond(&url, &notice, ResponseMode::Ephemeral).await.unwrap();
    assert_eq!(fake.ephemerals().len(), 2);
    assert!(fake.ephemerals().iter().all(|m| m.ephemeral_to.as_deref() == Some("U0EVE")));
    client.respond(&url, &SlackMessage::plain("replaced"), ResponseMode::ReplaceOriginal).await.unwrap();
    assert_eq!(fake.message(CHANNEL, &card_msg.message.id).unwrap().text.as_deref(), Some("replaced"));
    for _ in 0..3 {
        client.respond(&url, &notice, ResponseMode::InChannel).await.unwrap();
    }
    assert_eq!(client.respond(&url, &notice, ResponseMode::Ephemeral).await, Err(PlatformError::Expired));
    let elsewhere = client.respond("https://evil.example/x", &notice, ResponseMode::Ephemeral).await;
    assert!(matches!(elsewhere, Err(PlatformError::InvalidRequest(_))));
    assert_eq!(fake.calls_to("response_url").len(), 6, "the foreign URL was never called");
}

#[tokio::test]
async fn streams_and_status() {
    let fake = unlimited().await;
    let client = client(&fake);
    let mut start = StreamStart {
        channel: CHANNEL,
        thread_ts: THREAD,
        recipient_user_id: None,
        recipient_team_id: None,
        markdown_text: Some("Running…\n"),
    };
    let refused = client.start_stream(&start).await;
    assert_eq!(refused, Err(PlatformError::InvalidRequest("invalid_arguments".into())), "channels need recipients");
    start.recipient_user_id = Some("U0ADA");
    start.recipient_team_id = Some("T0CYNODE");
    let sent = client.start_stream(&start).await.unwrap();
    let ts = &sent.message.id;
    client.append_stream(CHANNEL, ts, "line 1\n").await.unwrap();
    client.append_stream(CHANNEL, ts, "line 2\n").await.unwrap();
    client.stop_stream(CHANNEL, ts, Some("done")).await.unwrap();
    let message = fake.message(CHANNEL, ts).unwrap();
    assert_eq!(message.markdown.as_deref(), Some("Running…\nline 1\nline 2\ndone"));
    assert!(!message.streaming);
    let late = client.append_stream(CHANNEL, ts, "late").await;
    assert_eq!(late, Err(PlatformError::InvalidRequest("message_not_in_streaming_state".into())));
    client.set_status(CHANNEL, THREAD, "is running pytest…").await.unwrap();
    client.set_status(CHANNEL, THREAD, "").await.unwrap();
    let statuses: Vec<String> = fake.statuses().into_iter().map(|s| s.status).collect();
    assert_eq!(statuses, ["is running pytest…", ""]);
}

#[tokio::test]
async fn a_marked_post_is_found_in_its_thread_by_its_metadata_across_pages() {
    let fake = unlimited().await;
    let client = client(&fake);
    let marker = |i: usize| SlackMessageMetadata {
        event_type: "cynode_stream_message".into(),
        event_payload: Some([("index".to_owned(), i.to_string())].into_iter().collect()),
    };
    // More than one page of `conversations.replies` (200 messages each) before the one looked for.
    for i in 0..230 {
        client.post_marked(CHANNEL, THREAD, &SlackMessage::plain(&format!("m{i}")), &marker(i)).await.unwrap();
    }
    let found = client.find_marked(CHANNEL, THREAD, &marker(215)).await.unwrap();
    let expected = fake.messages_in(CHANNEL, Some(THREAD))[215].ts.clone();
    assert_eq!(found, Some(expected), "found on the second page");
    assert_eq!(client.find_marked(CHANNEL, THREAD, &marker(999)).await.unwrap(), None, "surely not there");
    assert_eq!(client.find_marked(CHANNEL, "1750000999.000100", &marker(1)).await.unwrap(), None, "other thread");
    let pages = fake.calls_to("conversations.replies");
    assert!(pages.iter().all(|c| c.params["include_all_metadata"] == "true"), "metadata asked for: {pages:?}");
    assert!(fake.rejections().is_empty() && fake.count_429() == 0, "{:?}", fake.rejections());
}

#[tokio::test]
async fn malformed_metadata_is_refused_as_slack_does() {
    let fake = unlimited().await;
    let client = client(&fake);
    let bad = SlackMessageMetadata { event_type: "Has Spaces".into(), event_payload: Some(Default::default()) };
    let err = client.post_marked(CHANNEL, THREAD, &SlackMessage::plain("x"), &bad).await.unwrap_err();
    assert_eq!(err, PlatformError::InvalidRequest("invalid_metadata_format".into()));
    assert!(fake.messages_in(CHANNEL, Some(THREAD)).is_empty());
}

#[tokio::test]
async fn another_apps_metadata_of_any_shape_in_the_thread_does_not_hide_the_marked_post() {
    let fake = unlimited().await;
    let client = client(&fake);
    // Another app's message in the same thread, with numbers and nesting in its payload (Slack keeps any JSON).
    let other = serde_json::json!({
        "channel": CHANNEL, "thread_ts": THREAD, "text": "deploy finished",
        "metadata": {"event_type": "deploy_done", "event_payload": {"build": 42, "tags": {"green": true}}}
    });
    let answer: serde_json::Value = http()
        .post(format!("{}chat.postMessage", fake.base_url()))
        .bearer_auth(fake.token())
        .json(&other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["ok"], true, "{answer}");
    let marker = SlackMessageMetadata {
        event_type: "cynode_stream_message".into(),
        event_payload: Some([("index".to_owned(), "0".to_owned())].into_iter().collect()),
    };
    let posted = client.post_marked(CHANNEL, THREAD, &SlackMessage::plain("ours"), &marker).await.unwrap();
    let found = client.find_marked(CHANNEL, THREAD, &marker).await.unwrap();
    assert_eq!(found, Some(posted.message.id));
}
