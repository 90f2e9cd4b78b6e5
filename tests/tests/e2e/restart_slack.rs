//! Restarting the gateway mid-stream: a long Docker job streams into a Slack thread, `cynode serve` is killed with
//! SIGKILL while the output is arriving, and a new process on the same database continues the stream in the same
//! message — without posting anything twice. The output streams with Slack's streaming methods: the new process
//! continues appending from the offset in the stream record (or, after an append whose fate is unknown, replaces
//! the message), so no line shows twice.

use std::time::Duration;

use cynode_tests::fakes::FakeSlack;
use cynode_tests::fakes::slack::Message;

use crate::chat::{Chat, REQUESTER, eventually, slack_install};

const CHANNEL: &str = "C0RESTART";
const THREAD: &str = "1700000200.000100";
const LIMIT: Duration = Duration::from_secs(90);

fn thread(fake: &FakeSlack) -> Vec<Message> {
    fake.messages_in(CHANNEL, Some(THREAD))
}

fn thread_text(fake: &FakeSlack) -> String {
    thread(fake).iter().map(Message::shown).collect::<Vec<_>>().join("\n---\n")
}

#[tokio::test]
async fn a_stream_continues_in_the_same_message_after_the_gateway_is_killed() {
    let fake = FakeSlack::start().await;
    // A long lease, so the job itself survives the outage: this test is about the stream, not about re-queueing.
    let env = [("CYNODE__DISPATCH__LEASE_TTL_MS", "30000")];
    let mut chat = Chat::start(&slack_install(&fake.base_url(), fake.token()), "", &env).await;
    let command = "run for i in $(seq 1 60); do echo tick-$i; sleep 0.25; done";
    chat.slack_mention("Ev0RESTART1", REQUESTER, CHANNEL, THREAD, command).await;

    let before = eventually(
        LIMIT,
        "live output in the thread",
        || thread(&fake).into_iter().find(|m| m.shown().contains("tick-3\n")),
        || format!("{}\nserver:\n{}", thread_text(&fake), chat.server_output()),
    )
    .await;
    assert!(!before.shown().contains("tick-60\n"), "the job is still running when the gateway dies");

    assert!(before.streaming, "live output is streamed (chat.startStream/appendStream)");
    chat.crash_and_restart().await;

    let after = eventually(
        LIMIT,
        "the whole output after the restart, stream stopped",
        || fake.message(CHANNEL, &before.ts).filter(|m| !m.streaming && m.shown().contains("tick-60\n")),
        || format!("{}\nserver:\n{}\nnode:\n{}", thread_text(&fake), chat.server_output(), chat.node_output()),
    )
    .await;
    eventually(
        LIMIT,
        "the final status in the header",
        || thread(&fake).into_iter().find(|m| m.shown().contains("Succeeded · exit 0")),
        || thread_text(&fake),
    )
    .await;
    let shown = after.shown();
    let expected: String = (1..=60).map(|i| format!("tick-{i}\n")).collect();
    assert!(shown.contains(&expected), "all output, in order, in the same message:\n{shown}");
    for i in 1..=60 {
        assert_eq!(shown.matches(&format!("tick-{i}\n")).count(), 1, "tick-{i} exactly once:\n{shown}");
    }
    assert!(after.edits > before.edits, "the new process continued the message the old one started");
    let messages = thread(&fake);
    assert_eq!(messages.len(), 2, "a header and the streamed output, no duplicate post:\n{}", thread_text(&fake));
    let ok = |method: &str| fake.calls_to(method).into_iter().filter(|c| c.status == 200).count();
    assert_eq!(ok("chat.postMessage"), 1, "the header posted once");
    assert_eq!(ok("chat.startStream"), 1, "the stream started once");
    assert_eq!(fake.count_429(), 0);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}
