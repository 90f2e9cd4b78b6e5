//! The outbox wired into the gateway: a command and its job's result reach a subscribed receiver as signed
//! Standard Webhooks events, verified with an independent implementation (the `standardwebhooks` crate).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use cynode_orchestrator::bootstrap::{BootstrapFile, import};
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::nodes;
use cynode_orchestrator::tasks::Origin;
use cynode_protocol::{
    Capabilities, ExecutorKind, FinishRequest, FinishStatus, LeaseRef, Outcome, OutputBatch, OutputChunk,
    RegisterRequest, Stream,
};
use secrecy::SecretString;

use crate::support::{MASTER_KEY, TestApp};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NODE_KEY: &str = "outbox-test-node-key-0123456789";

type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("lock").push((headers, body));
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, got)
}

#[tokio::test]
async fn commands_and_results_are_delivered_as_signed_events() {
    let app = TestApp::spawn().await;
    let (url, got) = receiver().await;
    let (output_url, output_got) = receiver().await;
    let yaml = format!(
        "templates:\n  - {{name: busybox, image: 'cynode/busybox:latest'}}\n\
         node_keys:\n  - {{name: n, key: {NODE_KEY}, executors: [docker]}}\n\
         subscriptions:\n  - {{name: sink, url: '{url}', secrets: [{WHSEC}]}}\n  \
         - {{name: output, url: '{output_url}', events: [job.output], secrets: [{WHSEC}]}}\n"
    );
    let file = BootstrapFile::parse(&yaml, "t").expect("bootstrap");
    let sb = SecretBox::from_base64(&SecretString::from(MASTER_KEY)).expect("key");
    import(&app.db.pool, &sb, &file, "t").await.expect("import");

    let origin = Origin { requester: "U1".into(), source: "api".into(), ..Origin::default() };
    let reply = app.state.commands.handle(&origin, "run echo hi").await.expect("run");
    let job = reply.job_id.expect("job");

    // Play the node: register, lease, finish.
    let caps = Capabilities {
        executors: vec![ExecutorKind::Docker],
        templates: vec!["busybox".into()],
        ..Capabilities::default()
    };
    let req =
        RegisterRequest { protocol_versions: vec![1], name: "n1".into(), capabilities: caps, agent_version: None };
    let node = nodes::register(&app.db.pool, NODE_KEY, &req).await.expect("register").node_id;
    let lease = app.state.dispatcher.lease(node, 1, Duration::from_secs(2)).await.expect("lease").remove(0);
    assert_eq!(lease.job_id, job);
    let lr = LeaseRef { job_id: lease.job_id, attempt: lease.attempt, lease_token: lease.lease_token };
    let chunk = OutputChunk { stream: Stream::Stdout, seq: 0, data: "hi\n".into() };
    let batch = OutputBatch { lease: lr, chunks: vec![chunk] };
    app.state.dispatcher.output(node, &batch).await.expect("output");
    app.state.dispatcher.output(node, &batch).await.expect("a retried upload is accepted");
    let outcome = Outcome { exit_code: Some(0), output_bytes: 3, ..Outcome::new(FinishStatus::Succeeded, 12) };
    app.state.dispatcher.finish(node, &FinishRequest { lease: lr, outcome }).await.expect("finish");

    let mut types = Vec::new();
    for _ in 0..50 {
        types = got
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, b)| {
                serde_json::from_str::<serde_json::Value>(b).expect("json")["type"].as_str().unwrap_or("").to_string()
            })
            .collect::<Vec<_>>();
        if types.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    types.sort();
    assert_eq!(
        types,
        vec!["job.finished", "job.queued", "job.started", "node.registered", "task.created", "task.finished"],
        "job.output is opt-in: not sent to a subscription that names no event types"
    );
    let verifier = standardwebhooks::Webhook::new(WHSEC).expect("verifier");
    for (headers, body) in got.lock().expect("lock").iter() {
        verifier.verify(body.as_bytes(), headers).expect("signature verifies with an independent implementation");
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        if v["type"] == "job.finished" {
            assert_eq!(v["data"]["job_id"], job.to_string());
            assert_eq!(v["data"]["state"], "succeeded");
        }
        if v["type"] == "job.started" {
            assert_eq!(
                (v["data"]["job_id"].as_str(), v["data"]["attempt"].as_i64()),
                (Some(&*job.to_string()), Some(1))
            );
            assert_eq!(v["data"]["node_id"], node.to_string());
        }
    }

    // The output subscription gets each stored chunk once (the retried upload stored nothing new), and only that.
    for _ in 0..50 {
        if !output_got.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outputs = output_got.lock().expect("lock").clone();
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    verifier.verify(outputs[0].1.as_bytes(), &outputs[0].0).expect("signed");
    let v: serde_json::Value = serde_json::from_str(&outputs[0].1).expect("json");
    assert_eq!(v["type"], "job.output");
    assert_eq!((v["data"]["stream"].as_str(), v["data"]["seq"].as_i64()), (Some("stdout"), Some(0)));
    let data = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        v["data"]["data_base64"].as_str().expect("data"),
    )
    .expect("base64");
    assert_eq!(data, b"hi\n");
}
