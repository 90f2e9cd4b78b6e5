//! The Stop button of an agent turn, end to end with real processes: while a turn runs, its message in the Slack
//! thread carries a Stop button (Block Kit, accepted by the rule-enforcing fake Slack). A click is a signed
//! interaction that becomes `cancel <turn id>` through the command path: someone who is neither the requester nor
//! an approver gets a private refusal (audited) and the turn goes on; the requester's click stops the turn, its
//! held command is cancelled, and the final message has no button.

use std::time::Duration;

use cynode_tests::fakes::openai::{Answer, FakeModel};
use cynode_tests::fakes::slack::{FakeSlack, Message};
use serde_json::Value;
use uuid::Uuid;

use crate::chat::{APPROVER, Chat, REQUESTER, SlackClick, approval_policy, eventually, slack_install};

const CHANNEL: &str = "C0AGSTOP";
const THREAD: &str = "1700000300.000100";
const LIMIT: Duration = Duration::from_secs(60);
/// Neither the requester nor an approver.
const STRANGER: &str = "U0STRANGER";

fn button_value(m: &Message, action: &str) -> Option<String> {
    m.blocks.as_ref()?.as_array()?.iter().filter(|b| b["type"] == "actions").find_map(|b| {
        let button = b["elements"].as_array()?.iter().find(|e| e["action_id"] == action)?;
        button["value"].as_str().map(str::to_owned)
    })
}

/// The thread's message carrying the Stop button, and the button's value.
fn stop_button(fake: &FakeSlack) -> Option<(Message, String)> {
    fake.messages_in(CHANNEL, Some(THREAD)).into_iter().find_map(|m| {
        let value = button_value(&m, "cancel")?;
        Some((m, value))
    })
}

fn thread_text(fake: &FakeSlack) -> String {
    fake.messages_in(CHANNEL, Some(THREAD)).iter().map(Message::shown).collect::<Vec<_>>().join("\n---\n")
}

async fn turn_state(chat: &Chat) -> (Uuid, String, bool) {
    sqlx::query_as("SELECT id, state, cancel_requested FROM agent_turns")
        .fetch_one(&chat.db.pool)
        .await
        .expect("exactly one turn")
}

fn click<'a>(user: &'a str, message: &'a Message, value: &'a str, url: &'a str) -> SlackClick<'a> {
    SlackClick {
        user,
        channel: CHANNEL,
        thread: THREAD,
        message_ts: &message.ts,
        action_id: "cancel",
        value,
        response_url: url,
    }
}

#[tokio::test]
async fn the_stop_button_stops_a_turn_for_its_requester_and_is_refused_to_others() {
    let fake = FakeSlack::start().await;
    let model = FakeModel::start().await;
    // The model wants a command that policy holds for an approver, so the turn waits until it is stopped.
    model.then(Answer::Calls(vec![("run_command".into(), r#"{"command": "echo never-runs"}"#.into())]));
    let url = model.url();
    let chat = Chat::start_with_node(
        &slack_install(&fake.base_url(), fake.token()),
        &approval_policy(&[APPROVER]),
        &[],
        &["--inference-url", &url],
    )
    .await;
    chat.slack_mention("EvAgStop001", REQUESTER, CHANNEL, THREAD, "please run the thing").await;

    // The command is held for approval and the turn waits for it; its message offers Stop.
    eventually(
        LIMIT,
        "the held command's approval card",
        || fake.messages_in(CHANNEL, Some(THREAD)).into_iter().find(|m| button_value(m, "approve").is_some()),
        || format!("{}\nserver:\n{}", thread_text(&fake), chat.server_output()),
    )
    .await;
    let (message, value) =
        eventually(LIMIT, "the turn's Stop button", || stop_button(&fake), || thread_text(&fake)).await;
    let (turn, state, _) = turn_state(&chat).await;
    assert_eq!((value.as_str(), state.as_str()), (turn.to_string().as_str(), "running"), "the button names the turn");
    assert!(fake.rejections().is_empty(), "the fake Slack refused a message: {:?}", fake.rejections());

    // A stranger clicks: refused privately, audited, and the turn goes on with its button.
    let url = fake.response_url(CHANNEL, STRANGER, Some(&message.ts));
    chat.slack_click(&click(STRANGER, &message, &value, &url)).await;
    let refusal = eventually(
        LIMIT,
        "the private refusal",
        || fake.ephemerals().into_iter().find(|m| m.ephemeral_to.as_deref() == Some(STRANGER)),
        || format!("{:?}\nserver:\n{}", fake.ephemerals(), chat.server_output()),
    )
    .await;
    assert!(refusal.shown().contains("not yours"), "{}", refusal.shown());
    assert_eq!(turn_state(&chat).await, (turn, "running".into(), false), "the turn goes on");
    let refused: Vec<(String, String, Value)> = chat.audit().await;
    assert!(
        refused.iter().any(|(actor, action, _)| actor == STRANGER && action == "turn.cancel.refused"),
        "{refused:?}"
    );
    assert!(
        fake.message(CHANNEL, &message.ts).is_some_and(|m| button_value(&m, "cancel").is_some()),
        "the turn's message still offers Stop"
    );

    // The requester clicks: the turn stops, its held command is cancelled, and no message offers Stop any more.
    let url = fake.response_url(CHANNEL, REQUESTER, Some(&message.ts));
    chat.slack_click(&click(REQUESTER, &message, &value, &url)).await;
    let shown = eventually(
        LIMIT,
        "the stopped turn's final message without a Stop button",
        || {
            let ended = fake.message(CHANNEL, &message.ts).filter(|m| m.shown().contains("Stopped on request"))?;
            let none = fake.messages_in(CHANNEL, Some(THREAD)).iter().all(|m| button_value(m, "cancel").is_none());
            none.then(|| ended.shown())
        },
        || format!("{}\nserver:\n{}", thread_text(&fake), chat.server_output()),
    )
    .await;
    assert!(!shown.contains("never-runs\n"), "{shown}");
    assert_eq!(turn_state(&chat).await.1, "cancelled");
    let job: Uuid = sqlx::query_scalar("SELECT id FROM jobs WHERE executor = 'docker'")
        .fetch_one(&chat.db.pool)
        .await
        .expect("the turn's one command");
    assert_eq!(chat.job_state(job).await.0, "cancelled", "the held command is cancelled with the turn");
    let audit = chat.audit().await;
    assert!(audit.iter().any(|(actor, action, _)| actor == REQUESTER && action == "turn.cancel"), "{audit:?}");
    assert!(fake.rejections().is_empty(), "the fake Slack refused a message: {:?}", fake.rejections());
    assert_eq!(model.requests().len(), 1, "no model step after the stop");
}
