//! The headline path, end to end with real processes: a signed Slack `app_mention` in a thread reaches
//! `cynode serve`, becomes a sandbox job that a real `cynode-node` runs in Docker, and the reply — first
//! "working on it", then the output, then the final status — lands in the same thread of a rule-enforcing
//! fake Slack, with no 429 and no rejected call.

use std::time::Duration;

use cynode_adapters::slack;
use cynode_node_agent::executor::docker::connect_to;
use cynode_node_agent::images::build_busybox_image;
use cynode_tests::fakes::slack::FakeSlack;
use cynode_tests::{BinProcess, TestDb};

use crate::support::{E2E_IMAGE, MASTER_KEY, NODE_KEY};

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

#[tokio::test]
async fn a_slack_mention_is_answered_in_its_thread() {
    let engine = connect_to(None).await.expect("the container engine must be reachable (this test never skips)");
    build_busybox_image(&engine, E2E_IMAGE).await.expect("busybox image");
    let fake = FakeSlack::start().await;
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap = dir.path().join("cynode.yaml");
    std::fs::write(
        &bootstrap,
        format!(
            "installs:\n  - {{platform: slack, name: acme, team_id: T1DC2JH3J, api_app_id: A1, \
             signing_secret: {SECRET}, bot_token: {token}, api_base_url: '{base}'}}\n\
             node_keys:\n  - {{name: e2e, key: {NODE_KEY}, executors: [docker]}}\n\
             templates:\n  - {{name: busybox, image: \"{E2E_IMAGE}\"}}\n",
            token = fake.token(),
            base = fake.base_url(),
        ),
    )
    .expect("bootstrap");
    let env = [("DATABASE_URL", db.url.as_str()), ("CYNODE__SECURITY__MASTER_KEY", MASTER_KEY)];
    let boot = bootstrap.to_str().expect("utf-8");
    let mut server = BinProcess::spawn("cynode", &["serve", "--listen", "127.0.0.1:0", "--bootstrap", boot], &env);
    let line = server.wait_for("serving on http://", Duration::from_secs(60)).await;
    let url = line[line.find("http://").expect("url")..].trim().to_string();
    let template = format!("busybox={E2E_IMAGE}");
    let mut node = BinProcess::spawn(
        "cynode-node",
        &["run", "--name", "chat-slack", "--orchestrator", &url, "--template", &template],
        &[("CYNODE_NODE_KEY", NODE_KEY)],
    );
    node.wait_for("node registered", Duration::from_secs(30)).await;

    let thread = "1700000000.000100";
    let body = serde_json::json!({
        "token": "unused", "team_id": "T1DC2JH3J", "api_app_id": "A1", "type": "event_callback",
        "event_id": "Ev0E2E0001", "event_time": 1_700_000_000,
        "event": { "type": "app_mention", "user": "U2CERLKJA", "text": "<@UBOT> run seq 1 3; echo done",
                   "ts": "1700000001.000200", "thread_ts": thread, "channel": "C0E2E", "event_ts": "1700000001.000200" }
    })
    .to_string();
    let ts = chrono::Utc::now().timestamp();
    let signature = slack::sign(SECRET.as_bytes(), ts, body.as_bytes()).expect("sign");
    let resp = reqwest::Client::new()
        .post(format!("{url}/slack/events"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await
        .expect("deliver");
    assert_eq!(resp.status(), 200);

    let mut shown = String::new();
    for _ in 0..150 {
        let messages = fake.messages_in("C0E2E", Some(thread));
        shown = messages.iter().map(|m| m.shown()).collect::<Vec<_>>().join("\n---\n");
        // A job that ends before the stream's first step is answered in one go; wait for the whole answer.
        if shown.contains("Succeeded") && shown.contains("1\n2\n3\ndone") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(shown.contains("1\n2\n3\ndone"), "output in the thread:\n{shown}\nserver: {:?}", server.output());
    assert!(shown.contains("Succeeded · exit 0"), "final status in the thread:\n{shown}");
    let posts = fake.calls_to("chat.postMessage");
    assert!(!posts.is_empty() && posts.iter().all(|c| c.params["thread_ts"] == thread), "every post in the thread");
    assert_eq!(fake.count_429(), 0);
    assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
}
