//! Slack's streaming methods through the real stream worker and Slack sink against the rule-enforcing fake:
//! only new text is appended, a second worker continues a stream from the record's offset without repeating
//! text, an interrupted append is never repeated (the message is replaced instead), and a refused
//! `chat.startStream` falls back to `chat.postMessage`.

use std::sync::Arc;
use std::time::Duration;

use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::stream::{SlackRates, SlackSink, StreamSettings};
use cynode_tests::TestDb;
use cynode_tests::fakes::FakeSlack;
use cynode_tests::fakes::slack::Message;
use tokio::sync::watch;

use crate::stream_live::{LiveJob, wait};
use crate::support::{slack_install, slack_thread_task};

const THREAD: &str = "1700000000.000100";

async fn setup(slack: &FakeSlack) -> LiveJob {
    let db = TestDb::new().await;
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
    let install = slack_install(&db.pool, &secrets, slack.token(), &slack.base_url()).await;
    let (task, job) = slack_thread_task(&db.pool, install, THREAD, "lines").await;
    LiveJob::lease(db, secrets, task, job).await
}

/// Starts a stream worker with the Slack sink (`streaming`: its streaming methods).
fn worker(s: &LiveJob, streaming: bool) -> watch::Sender<bool> {
    let sink = SlackSink::new(reqwest::Client::new(), s.installs(), SlackRates::default()).with_streaming(streaming);
    s.worker(Arc::new(sink), StreamSettings::default())
}

fn lines(from: usize, to: usize) -> String {
    (from..to).map(|i| format!("line {i}\n")).collect()
}

fn thread(slack: &FakeSlack) -> Vec<Message> {
    slack.messages_in("C1", Some(THREAD))
}

/// Waits until the second message (the streamed output) shows `needle`.
async fn streamed_shows(slack: &FakeSlack, needle: &str) {
    wait(needle, || async { thread(slack).get(1).is_some_and(|m| m.streaming && m.shown().contains(needle)) }).await;
}

fn appended(slack: &FakeSlack) -> Vec<String> {
    slack.calls_to("chat.appendStream").iter().map(|c| c.params["markdown_text"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn slack_output_is_streamed_by_appending_only_new_text() {
    let slack = FakeSlack::start().await;
    let s = setup(&slack).await;
    let _stop = worker(&s, true);
    s.output(0, &lines(0, 5)).await;
    streamed_shows(&slack, "line 4").await;
    s.output(1, &lines(5, 10)).await;
    streamed_shows(&slack, "line 9").await;
    s.output(2, &lines(10, 15)).await;
    streamed_shows(&slack, "line 14").await;
    s.finish().await;
    s.closed().await;

    let messages = thread(&slack);
    assert_eq!(messages.len(), 2, "a header and one streamed output message");
    assert!(messages[0].shown().contains("Succeeded"), "the header carries the final status");
    let out = &messages[1];
    assert!(!out.streaming, "the stream was stopped");
    assert_eq!(out.markdown.as_deref(), Some(format!("```\n{}```", lines(0, 15)).as_str()), "each line exactly once");
    let starts = slack.calls_to("chat.startStream");
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].params["recipient_user_id"], "U1");
    assert_eq!(starts[0].params["recipient_team_id"], "T1");
    assert_eq!(appended(&slack), vec![lines(5, 10), lines(10, 15)], "only what is new since the last append");
    assert_eq!(slack.calls_to("chat.stopStream").len(), 1);
    assert!(slack.calls_to("chat.update").iter().all(|c| c.params["ts"] != out.ts.as_str()), "never edited");
    assert_eq!(slack.count_429(), 0);
    assert!(slack.rejections().is_empty(), "{:?}", slack.rejections());
}

#[tokio::test]
async fn a_job_that_ended_before_its_first_reply_shows_its_output_before_its_final_status() {
    let slack = FakeSlack::start().await;
    let s = setup(&slack).await;
    s.output(0, &lines(0, 5)).await;
    s.finish().await;
    let _stop = worker(&s, true);
    s.closed().await;

    let calls: Vec<_> = slack.calls().into_iter().filter(|c| c.status < 300).collect();
    let shows = |needle: &str| calls.iter().position(|c| c.params.to_string().contains(needle));
    let output = shows("line 4").expect("the output");
    let status = shows("Succeeded").expect("the final status");
    assert!(shows("✅").is_some_and(|i| i > output) && status > output, "output first: {calls:?}");
    let messages = thread(&slack);
    assert!(messages[0].shown().contains("Succeeded"), "the header ends with the final status");
    assert!(messages.iter().any(|m| m.shown().contains("line 4")));
    assert!(slack.rejections().is_empty(), "{:?}", slack.rejections());
}

#[tokio::test]
async fn another_worker_continues_a_slack_stream_from_the_recorded_offset() {
    let slack = FakeSlack::start().await;
    let s = setup(&slack).await;
    let first = worker(&s, true);
    s.output(0, &lines(0, 5)).await;
    streamed_shows(&slack, "line 4").await;
    s.output(1, &lines(5, 10)).await;
    streamed_shows(&slack, "line 9").await;
    first.send(true).unwrap();
    s.output(2, &lines(10, 15)).await;
    let _second = worker(&s, true);
    streamed_shows(&slack, "line 14").await;
    s.finish().await;
    s.closed().await;

    let messages = thread(&slack);
    assert_eq!(messages.len(), 2, "continued in the same message");
    assert_eq!(slack.calls_to("chat.startStream").len(), 1, "the stream was not started again");
    assert_eq!(messages[1].markdown.as_deref(), Some(format!("```\n{}```", lines(0, 15)).as_str()));
    assert_eq!(appended(&slack), vec![lines(5, 10), lines(10, 15)]);
    assert!(slack.rejections().is_empty(), "{:?}", slack.rejections());
}

#[tokio::test]
async fn an_interrupted_append_is_never_repeated_the_message_is_replaced() {
    let slack = FakeSlack::start().await;
    let s = setup(&slack).await;
    let first = worker(&s, true);
    s.output(0, &lines(0, 5)).await;
    streamed_shows(&slack, "line 4").await;
    first.send(true).unwrap();
    // As if the first worker crashed after recording an append and before it knew whether Slack took it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pending = sqlx::query(
        "UPDATE stream_records SET pages = jsonb_set(pages, '{1}', to_jsonb(replace(pages->>1, 'stream:', 'stream?:')))
         WHERE task_id = $1 AND pages->>1 LIKE 'stream:%'",
    )
    .bind(s.task)
    .execute(&s.pool)
    .await
    .unwrap();
    assert_eq!(pending.rows_affected(), 1, "the record held a stream mark");
    s.output(1, &lines(5, 10)).await;
    let _second = worker(&s, true);
    s.finish().await;
    s.closed().await;

    let messages = thread(&slack);
    assert_eq!(messages.len(), 2);
    let out = &messages[1];
    assert!(!out.streaming);
    assert!(appended(&slack).is_empty(), "nothing appended after the interruption");
    assert!(slack.calls_to("chat.update").iter().any(|c| c.params["ts"] == out.ts.as_str()), "replaced");
    let shown = out.shown();
    for i in 0..10 {
        assert_eq!(shown.matches(&format!("line {i}\n")).count(), 1, "line {i} once in {shown}");
    }
    assert!(slack.rejections().is_empty(), "{:?}", slack.rejections());
}

#[tokio::test]
async fn a_refused_stream_start_falls_back_to_posting_and_editing() {
    let slack = FakeSlack::builder().refuse_streams("method_not_supported_for_channel_type").start().await;
    let s = setup(&slack).await;
    let _stop = worker(&s, true);
    s.output(0, &lines(0, 5)).await;
    wait("output is posted", || async { thread(&slack).get(1).is_some_and(|m| m.shown().contains("line 4")) }).await;
    s.output(1, &lines(5, 10)).await;
    s.finish().await;
    s.closed().await;

    let messages = thread(&slack);
    assert_eq!(messages.len(), 2);
    assert!(messages[1].shown().contains("line 9"), "edited with chat.update");
    assert!(messages[0].shown().contains("Succeeded"));
    assert!(!slack.calls_to("chat.startStream").is_empty(), "a stream was tried");
    assert!(slack.calls_to("chat.appendStream").is_empty());
    assert!(slack.calls_to("chat.update").iter().any(|c| c.params["ts"] == messages[1].ts.as_str()));
}
