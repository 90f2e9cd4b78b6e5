//! A 10,000-line Docker job streamed into a Slack thread end to end: first reply, rollover into more messages in
//! the same thread, every message within Slack's limits, zero 429s, and a final message that says where the full
//! output is.

use std::time::Duration;

use cynode_tests::fakes::FakeSlack;
use cynode_tests::fakes::slack::{Message, UPDATE_TEXT_LIMIT};

use crate::chat::{Chat, REQUESTER, eventually, slack_install};

const CHANNEL: &str = "C0STREAM";
const THREAD: &str = "1700000300.000100";

fn thread_text(fake: &FakeSlack) -> String {
    fake.messages_in(CHANNEL, Some(THREAD)).iter().map(Message::shown).collect::<Vec<_>>().join("\n---\n")
}

#[tokio::test]
async fn ten_thousand_lines_stream_into_a_slack_thread_without_a_429() {
    let fake = FakeSlack::start().await;
    let chat = Chat::start(&slack_install(&fake.base_url(), fake.token()), "", &[]).await;
    chat.slack_mention("Ev0STREAM1", REQUESTER, CHANNEL, THREAD, "run seq 1 10000").await;
    let all = eventually(
        Duration::from_secs(120),
        "the final message",
        || Some(thread_text(&fake)).filter(|t| t.contains("Succeeded")),
        || format!("{}\nserver:\n{}", thread_text(&fake), chat.server_output()),
    )
    .await;
    let messages = fake.messages_in(CHANNEL, Some(THREAD));
    assert!(messages.len() > 1, "rolled over into more messages in the thread");
    for m in &messages {
        let text = m.text.as_deref().unwrap_or_default();
        assert!(text.chars().count() <= UPDATE_TEXT_LIMIT, "within chat.update's limit: {}", text.len());
        let streamed = m.markdown.as_deref().unwrap_or_default();
        assert!(
            streamed.chars().count() <= UPDATE_TEXT_LIMIT,
            "a streamed page within one message: {}",
            streamed.len()
        );
        assert!(!m.streaming, "every stream stopped");
    }
    assert!(all.contains("\n1\n2\n3\n"), "the start of the output");
    assert!(all.contains("\n10000\n"), "the end of the output");
    let job = chat.only_job().await;
    let short = &job.simple().to_string()[..8];
    let header = messages.first().expect("a message").shown();
    assert!(header.contains(&format!("cynode logs {short}")), "where the full output is: {header}");
    let posts = fake.calls_to("chat.postMessage");
    assert!(posts.iter().all(|c| c.params["thread_ts"] == THREAD), "every post in the thread");
    assert_eq!(fake.count_429(), 0, "zero 429s");
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}
