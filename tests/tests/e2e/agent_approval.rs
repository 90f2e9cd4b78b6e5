//! An agent turn whose command needs approval, end to end with real processes: the model (the strict fake) asks
//! for `run_command`, policy holds the sandbox job, and the approval card in the thread shows the exact command the
//! model wants to run. A click by someone who is not an approver is refused privately and changes nothing; the
//! approver's click runs it in Docker and the model answers with its output. A denial is told to the model, which
//! answers accordingly, and the command never runs.

use std::time::Duration;

use cynode_tests::fakes::openai::{Answer, FakeModel};
use cynode_tests::fakes::slack::{FakeSlack, Message};

use crate::agent_slack::tool_result;
use crate::chat::{APPROVER, Chat, REQUESTER, SlackClick, approval_policy, eventually, slack_install};

const CHANNEL: &str = "C0AGENTAPP";
const LIMIT: Duration = Duration::from_secs(60);

fn thread_text(fake: &FakeSlack, thread: &str) -> String {
    fake.messages_in(CHANNEL, Some(thread)).iter().map(Message::shown).collect::<Vec<_>>().join("\n---\n")
}

/// The approval card in `thread` and its button value.
fn card(fake: &FakeSlack, thread: &str) -> Option<(Message, String)> {
    fake.messages_in(CHANNEL, Some(thread)).into_iter().find_map(|m| {
        let blocks = m.blocks.as_ref()?.as_array()?.clone();
        let value = blocks.iter().filter(|b| b["type"] == "actions").find_map(|b| {
            let button = b["elements"].as_array()?.iter().find(|e| e["action_id"] == "approve")?;
            button["value"].as_str().map(str::to_owned)
        })?;
        Some((m, value))
    })
}

/// Scripts the model's first step: a call of `run_command` with `command`.
fn first_step(model: &FakeModel, command: &str) {
    let args = serde_json::json!({ "command": command }).to_string();
    model.then(Answer::Calls(vec![("run_command".into(), args)]));
}

/// A turn in `thread` (the model scripted); returns once its approval card is shown.
async fn held(model: &FakeModel, thread: &str) -> (Chat, FakeSlack, Message, String) {
    let fake = FakeSlack::start().await;
    let chat = Chat::start_with_node(
        &slack_install(&fake.base_url(), fake.token()),
        &approval_policy(&[APPROVER]),
        &[],
        &["--inference-url", &model.url()],
    )
    .await;
    chat.slack_mention("EvAgentApp1", REQUESTER, CHANNEL, thread, "could you check the build for me?").await;
    let (card, value) = eventually(
        LIMIT,
        "the approval card of the model's command",
        || card(&fake, thread),
        || format!("{}\n\nserver:\n{}", thread_text(&fake, thread), chat.server_output()),
    )
    .await;
    (chat, fake, card, value)
}

fn click<'a>(
    user: &'a str,
    action: &'a str,
    thread: &'a str,
    card: &'a Message,
    value: &'a str,
    url: &'a str,
) -> SlackClick<'a> {
    SlackClick { user, channel: CHANNEL, thread, message_ts: &card.ts, action_id: action, value, response_url: url }
}

async fn docker_job(chat: &Chat) -> (String, Option<String>) {
    sqlx::query_as(
        "SELECT j.state, a.state FROM jobs j LEFT JOIN approvals a ON a.job_id = j.id WHERE j.executor = 'docker'",
    )
    .fetch_one(&chat.db.pool)
    .await
    .expect("the command's job")
}

#[tokio::test]
async fn the_models_command_waits_for_an_approver_and_then_runs() {
    let model = FakeModel::start().await;
    first_step(&model, "echo build-ok-$((10+7))");
    model.then_with(|req| {
        let result = tool_result(req);
        Answer::Text(if result.contains("exit code 0") && result.contains("build-ok-17") {
            "The build check printed build-ok-17.".into()
        } else {
            format!("unexpected tool result: {result}")
        })
    });
    let thread = "1700000500.000100";
    let (chat, fake, card0, value) = held(&model, thread).await;
    let shown = card0.shown();
    assert!(shown.contains("Approval needed") && shown.contains("echo build-ok-$((10+7))"), "exact command: {shown}");
    assert_eq!(docker_job(&chat).await, ("awaiting_approval".into(), Some("pending".into())));

    // The requester is not an approver: refused privately, still held, the model not called again.
    let url = fake.response_url(CHANNEL, REQUESTER, Some(&card0.ts));
    chat.slack_click(&click(REQUESTER, "approve", thread, &card0, &value, &url)).await;
    let refusal = eventually(
        LIMIT,
        "the private refusal",
        || fake.ephemerals().into_iter().find(|m| m.ephemeral_to.as_deref() == Some(REQUESTER)),
        || format!("{:?}", fake.ephemerals()),
    )
    .await;
    assert!(refusal.shown().contains("not an approver"), "{}", refusal.shown());
    assert_eq!(docker_job(&chat).await, ("awaiting_approval".into(), Some("pending".into())));
    assert_eq!(model.requests().len(), 1);

    // The approver's click runs it; the model gets its output and answers in the thread.
    let url = fake.response_url(CHANNEL, APPROVER, Some(&card0.ts));
    chat.slack_click(&click(APPROVER, "approve", thread, &card0, &value, &url)).await;
    let all = eventually(
        LIMIT,
        "the turn's answer after the approval",
        || Some(thread_text(&fake, thread)).filter(|t| t.contains("The build check printed build-ok-17.")),
        || format!("{}\n\nserver:\n{}", thread_text(&fake, thread), chat.server_output()),
    )
    .await;
    assert!(all.contains("🔧 run_command `echo build-ok-$((10+7))` → exit 0"), "{all}");
    assert_eq!(docker_job(&chat).await, ("succeeded".into(), Some("approved".into())));
    assert_eq!(model.requests().len(), 2);
    assert!(model.rejected().is_empty(), "{:?}", model.rejected());
}

#[tokio::test]
async fn a_denied_command_is_told_to_the_model_and_never_runs() {
    let model = FakeModel::start().await;
    first_step(&model, "rm -rf /tmp/cache");
    model.then_with(|req| {
        let result = tool_result(req);
        Answer::Text(if result.contains("not run: an approver denied") {
            "Understood: the approver said no, so I did not delete anything.".into()
        } else {
            format!("unexpected tool result: {result}")
        })
    });
    let thread = "1700000600.000100";
    let (chat, fake, card0, value) = held(&model, thread).await;
    let url = fake.response_url(CHANNEL, APPROVER, Some(&card0.ts));
    chat.slack_click(&click(APPROVER, "deny", thread, &card0, &value, &url)).await;
    let all = eventually(
        LIMIT,
        "the turn's answer after the denial",
        || Some(thread_text(&fake, thread)).filter(|t| t.contains("the approver said no")),
        || format!("{}\n\nserver:\n{}", thread_text(&fake, thread), chat.server_output()),
    )
    .await;
    assert!(all.contains(&format!("denied by {APPROVER}")), "the tool line says who denied: {all}");
    assert_eq!(docker_job(&chat).await, ("cancelled".into(), Some("denied".into())));
    let attempts: i32 = sqlx::query_scalar("SELECT attempt FROM jobs WHERE executor = 'docker'")
        .fetch_one(&chat.db.pool)
        .await
        .expect("job");
    assert_eq!(attempts, 0, "the denied command was leased");
    assert!(model.rejected().is_empty(), "{:?}", model.rejected());
}
