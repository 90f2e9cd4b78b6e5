//! Model providers end to end with real processes: no node serves a model, so `cynode serve`'s in-process
//! provider node runs the turn's model steps against an external OpenAI-compatible provider (the strict fake
//! model, requiring its API key as a hosted provider does) while the command the model asks for runs in a real
//! Docker sandbox on a real `cynode-node`. The key goes only into the provider's `Authorization` header: it is
//! in no log line, no job, no message, no thread, no audit row. A key the provider refuses ends the turn with a
//! clear message that repeats nothing of the key.

use std::time::Duration;

use cynode_tests::fakes::openai::{Answer, FakeModel};
use cynode_tests::fakes::slack::FakeSlack;

use crate::chat::{Chat, eventually, slack_install};

const CHANNEL: &str = "C0PROVIDER";
/// The provider's key: must reach the provider's `Authorization` header and nothing else.
const KEY: &str = "sk-E2E-PROVIDER-SECRET-4b7d21c9";

fn thread_text(slack: &FakeSlack, thread: &str) -> String {
    slack.messages_in(CHANNEL, Some(thread)).iter().map(|m| m.shown()).collect::<Vec<_>>().join("\n---\n")
}

/// A gateway whose bootstrap configures the fake as provider `cloud` with `key`, a Docker node without inference,
/// and — since the fake listens on loopback — loopback allowed for outbound requests. Returns once a provider
/// node is registered.
async fn start(model: &FakeModel, slack: &FakeSlack, key: &str) -> Chat {
    let providers = format!(
        "providers:\n  - {{name: cloud, base_url: '{}', api_key: '{key}', models: [fake-tool-model]}}\n",
        model.url()
    );
    let chat = Chat::start(
        &slack_install(&slack.base_url(), slack.token()),
        &providers,
        &[("CYNODE__OUTBOUND__ALLOW_CIDRS", "127.0.0.0/8")],
    )
    .await;
    let pool = chat.db.pool.clone();
    for _ in 0..200 {
        let online: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM nodes WHERE name LIKE 'provider-cloud@%' AND capabilities->'executors' ? 'provider'",
        )
        .fetch_one(&pool)
        .await
        .expect("nodes");
        if online == 1 {
            return chat;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no provider node registered:\n{}", chat.server_output());
}

/// Every stored row of the tables a key could leak into, as text.
async fn store_dump(chat: &Chat) -> String {
    cynode_orchestrator::audit::flush(&chat.db.pool).await.expect("link the audit entries");
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(x)::text FROM jobs x
         UNION ALL SELECT row_to_json(x)::text FROM job_output_chunks x
         UNION ALL SELECT row_to_json(x)::text FROM conversation_messages x
         UNION ALL SELECT row_to_json(x)::text FROM audit_log x
         UNION ALL SELECT row_to_json(x)::text FROM nodes x
         UNION ALL SELECT row_to_json(x)::text FROM providers x
         UNION ALL SELECT row_to_json(x)::text FROM agent_turns x",
    )
    .fetch_all(&chat.db.pool)
    .await
    .expect("dump");
    rows.join("\n")
}

#[tokio::test]
async fn a_turn_runs_on_the_provider_when_no_node_serves_the_model() {
    let slack = FakeSlack::start().await;
    let model = FakeModel::start().await;
    model.require_key(KEY).with_usage();
    model.then(Answer::Calls(vec![("run_command".into(), r#"{"command": "echo via-$((40+2))"}"#.into())]));
    model.then_with(|req| {
        let seen = req.to_string();
        Answer::Text(if seen.contains("via-42") { "The provider saw via-42.".into() } else { format!("odd: {seen}") })
    });
    let chat = start(&model, &slack, KEY).await;
    let thread = "1700000300.000100";
    chat.slack_mention("EvProv00001", "U0ALICE", CHANNEL, thread, "what does the sandbox print?").await;

    let shown = eventually(
        Duration::from_secs(60),
        "the provider-run turn's answer in the thread",
        || {
            let t = thread_text(&slack, thread);
            (t.contains("The provider saw via-42.") && t.contains("2 steps")).then_some(t)
        },
        || format!("{}\n\nserver:\n{}", thread_text(&slack, thread), chat.server_output()),
    )
    .await;
    assert!(shown.contains("🔧 run_command `echo via-$((40+2))` → exit 0"), "{shown}");
    assert!(model.rejected().is_empty(), "the provider refused: {:?}", model.rejected());
    let auth = model.authorizations();
    assert_eq!(auth.len(), 2, "{auth:?}");
    assert!(auth.iter().all(|a| a.as_deref() == Some(&*format!("Bearer {KEY}"))), "{auth:?}");

    // Model steps ran on the provider executor, the command on Docker; the ledger names the provider.
    let pool = &chat.db.pool;
    let kinds: Vec<(String, i64)> =
        sqlx::query_as("SELECT executor, count(*) FROM jobs GROUP BY executor ORDER BY executor")
            .fetch_all(pool)
            .await
            .expect("jobs");
    assert_eq!(kinds, [("docker".to_string(), 1), ("provider".to_string(), 2)]);
    let ledger: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT p.name FROM usage_ledger u LEFT JOIN providers p ON p.id = u.provider_id ORDER BY u.at",
    )
    .fetch_all(pool)
    .await
    .expect("ledger");
    assert_eq!(ledger, [Some("cloud".to_string()), Some("cloud".to_string())]);

    // The key is nowhere but in the provider's requests.
    let dump = store_dump(&chat).await;
    assert!(!dump.contains(KEY), "the key is stored in the clear");
    assert!(!chat.server_output().contains(KEY), "the key is in the gateway's output");
    assert!(!chat.node_output().contains(KEY), "the key reached the sandbox node");
    assert!(!thread_text(&slack, thread).contains(KEY));
    let prompts = model.requests().iter().map(ToString::to_string).collect::<String>();
    assert!(!prompts.contains(KEY), "the key is in a prompt");
}

#[tokio::test]
async fn a_refused_key_ends_the_turn_with_a_clear_message_and_no_trace_of_the_key() {
    let slack = FakeSlack::start().await;
    let model = FakeModel::start().await;
    model.require_key(KEY);
    let wrong = "sk-WRONG-provider-key-0000aaaa";
    let chat = start(&model, &slack, wrong).await;
    let thread = "1700000400.000100";
    chat.slack_mention("EvProv00002", "U0ALICE", CHANNEL, thread, "please summarise the day").await;
    let shown = eventually(
        Duration::from_secs(60),
        "the failed turn's message",
        || {
            let t = thread_text(&slack, thread);
            t.contains("refused the API key").then_some(t)
        },
        || format!("{}\n\nserver:\n{}", thread_text(&slack, thread), chat.server_output()),
    )
    .await;
    // OpenAI-style 401s repeat the key's head and tail; none of it reaches the thread, the store or the log.
    let tail = &wrong[wrong.len() - 4..];
    assert!(!shown.contains(wrong) && !shown.contains(tail) && !shown.contains("sk-"), "{shown}");
    let dump = store_dump(&chat).await;
    assert!(!dump.contains(wrong) && !dump.contains(&format!("****{tail}")), "the key's trace is stored");
    assert!(!chat.server_output().contains(wrong));
    let state: String =
        sqlx::query_scalar("SELECT state FROM agent_turns").fetch_one(&chat.db.pool).await.expect("turn");
    assert_eq!(state, "failed");
}
