//! Agent turns end to end with real processes: a signed Slack mention with free text reaches `cynode serve`,
//! the turn's model steps run on a real `cynode-node` whose inference upstream is the strict fake model server,
//! the model's `run_command` runs in a real Docker sandbox on the same node, its result goes back to the model,
//! and the answer lands in the same thread of the rule-enforcing fake Slack. A gateway killed with SIGKILL in the
//! middle of a turn is resumed by the next process, with no second run of the command and no second answer.

use std::time::Duration;

use cynode_tests::fakes::openai::{Answer, FakeModel};
use cynode_tests::fakes::slack::FakeSlack;
use serde_json::Value;

use crate::chat::{Chat, eventually, slack_install};

const CHANNEL: &str = "C0AGENT";

/// The content of the request's tool messages, if any.
pub(crate) fn tool_result(req: &Value) -> String {
    req["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "tool")
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn start(model: &FakeModel, slack: &FakeSlack) -> Chat {
    let url = model.url();
    Chat::start_with_node(&slack_install(&slack.base_url(), slack.token()), "", &[], &["--inference-url", &url]).await
}

fn thread_text(slack: &FakeSlack, thread: &str) -> String {
    slack.messages_in(CHANNEL, Some(thread)).iter().map(|m| m.shown()).collect::<Vec<_>>().join("\n---\n")
}

#[tokio::test]
async fn free_text_becomes_a_tool_using_turn_answered_in_its_thread() {
    let slack = FakeSlack::start().await;
    let model = FakeModel::start().await;
    model.with_usage();
    model.then(Answer::Calls(vec![("run_command".into(), r#"{"command": "echo agent-$((6*7))"}"#.into())]));
    model.then_with(|req| {
        let result = tool_result(req);
        if result.contains("exit code 0") && result.contains("agent-42") {
            Answer::Text("The sandbox printed agent-42.".into())
        } else {
            Answer::Text(format!("unexpected tool result: {result}"))
        }
    });
    let chat = start(&model, &slack).await;
    let thread = "1700000100.000100";
    chat.slack_mention("EvAgent0001", "U0ALICE", CHANNEL, thread, "what does the sandbox say?").await;

    let shown = eventually(
        Duration::from_secs(60),
        "the turn's answer in the thread",
        || {
            let t = thread_text(&slack, thread);
            (t.contains("The sandbox printed agent-42.") && t.contains("2 steps")).then_some(t)
        },
        || {
            format!(
                "{}\n\nserver:\n{}\n\nnode:\n{}",
                thread_text(&slack, thread),
                chat.server_output(),
                chat.node_output()
            )
        },
    )
    .await;
    assert!(shown.contains("🔧 run_command `echo agent-$((6*7))` → exit 0"), "{shown}");
    assert!(shown.contains("agent-42"), "the command's own job streams in the thread: {shown}");
    assert!(model.rejected().is_empty(), "the model server refused: {:?}", model.rejected());
    let requests = model.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0]["tool_choice"], "auto");
    assert!(requests[0]["messages"][1]["content"].as_str().unwrap_or_default().contains("what does the sandbox say?"));
    let calls = slack.calls();
    assert!(calls.iter().all(|c| !c.is_rate_limited() && !c.is_rejected()), "{calls:?}");
    let tokens: (i64, i64) =
        sqlx::query_as("SELECT tokens_in, tokens_out FROM agent_turns").fetch_one(&chat.db.pool).await.expect("turn");
    assert_eq!(tokens, (100, 14), "usage of both steps is counted");
}

#[tokio::test]
async fn a_gateway_killed_mid_turn_is_resumed_without_a_second_run_or_answer() {
    let slack = FakeSlack::start().await;
    let model = FakeModel::start().await;
    model.then(Answer::Calls(vec![("run_command".into(), r#"{"command": "sleep 4; echo slow-done"}"#.into())]));
    model.then_with(|req| {
        let result = tool_result(req);
        Answer::Text(if result.contains("slow-done") {
            "Finished: slow-done.".into()
        } else {
            format!("odd: {result}")
        })
    });
    let mut chat = start(&model, &slack).await;
    let thread = "1700000200.000100";
    chat.slack_mention("EvAgent0002", "U0ALICE", CHANNEL, thread, "could you do the slow thing for me?").await;
    // Kill the gateway while the sandbox command runs.
    let pool = chat.db.pool.clone();
    for _ in 0..300 {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE executor = 'docker' AND state IN ('leased', 'running')",
        )
        .fetch_one(&pool)
        .await
        .expect("jobs");
        if running == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    chat.crash_and_restart().await;

    let shown = eventually(
        Duration::from_secs(90),
        "the resumed turn's answer",
        || {
            let t = thread_text(&slack, thread);
            (t.contains("Finished: slow-done.") && t.contains("2 steps")).then_some(t)
        },
        || format!("{}\n\nserver:\n{}", thread_text(&slack, thread), chat.server_output()),
    )
    .await;
    assert_eq!(shown.matches("Finished: slow-done.").count(), 1, "the answer was posted twice: {shown}");
    let docker: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE executor = 'docker'").fetch_one(&pool).await.expect("jobs");
    assert_eq!(docker, 1, "the command ran twice");
    assert_eq!(model.requests().len(), 2, "a model step was repeated");
    assert!(model.rejected().is_empty(), "{:?}", model.rejected());
}

#[tokio::test]
async fn malformed_calls_go_back_to_the_model_and_a_looping_model_stops_at_the_step_limit() {
    let slack = FakeSlack::start().await;
    let model = FakeModel::start().await;
    // Broken JSON, then a tool that does not exist, then the same harmless call again and again.
    model.then(Answer::Calls(vec![("run_command".into(), r#"{"command": "echo hi""#.into())]));
    model.then(Answer::Calls(vec![("frobnicate".into(), "{}".into())]));
    for _ in 0..3 {
        model.then(Answer::Calls(vec![("list_jobs".into(), "{}".into())]));
    }
    let url = model.url();
    let chat = Chat::start_with_node(
        &slack_install(&slack.base_url(), slack.token()),
        "",
        &[("CYNODE__AGENT__MAX_STEPS", "3")],
        &["--inference-url", &url],
    )
    .await;
    let thread = "1700000700.000100";
    chat.slack_mention("EvAgent0007", "U0ALICE", CHANNEL, thread, "keep checking the jobs forever").await;
    let shown = eventually(
        Duration::from_secs(60),
        "the step limit's message",
        || {
            let t = thread_text(&slack, thread);
            t.contains("reached the limit of 3 steps").then_some(t)
        },
        || format!("{}\n\nserver:\n{}", thread_text(&slack, thread), chat.server_output()),
    )
    .await;
    assert!(shown.contains("⚠️ Stopped"), "{shown}");
    let requests = model.requests();
    assert_eq!(requests.len(), 3, "the limit let a fourth step run");
    assert!(tool_result(&requests[1]).contains("the arguments are not valid JSON"), "{}", tool_result(&requests[1]));
    assert!(tool_result(&requests[2]).contains("there is no tool `frobnicate`"), "{}", tool_result(&requests[2]));
    assert!(model.rejected().is_empty(), "every request followed the rules: {:?}", model.rejected());
    let docker: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE executor = 'docker'")
        .fetch_one(&chat.db.pool)
        .await
        .expect("jobs");
    assert_eq!(docker, 0, "a malformed call ran a command");
    let (state, error): (String, Option<String>) =
        sqlx::query_as("SELECT state, error FROM agent_turns").fetch_one(&chat.db.pool).await.expect("turn");
    assert_eq!(
        (state.as_str(), error.as_deref()),
        ("failed", Some("reached the limit of 3 steps without a final answer"))
    );
}
