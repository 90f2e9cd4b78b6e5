//! Restarts of real `cynode serve` processes on the same database: a live SSE client resumes with
//! `Last-Event-ID` on the restarted gateway and gets every later event exactly once; webhook events committed
//! while no deliverer runs, or in flight when the gateway is killed, are delivered after the restart with
//! exactly one `webhook-id` per event (verified with the independent `standardwebhooks` crate).

use std::collections::BTreeMap;
use std::time::Duration;

use cynode_gateway::commands::client::SseEvent;
use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::commands::Commands;
use cynode_orchestrator::dispatch::Dispatcher;
use cynode_orchestrator::tasks::Origin;
use cynode_protocol::FinishStatus;
use cynode_tests::{BinProcess, TestDb};
use serde_json::{Value, json};

use crate::api_events::{outputs, read_until};
use crate::api_support::*;
use crate::receiver::Receiver;
use crate::support::MASTER_KEY;

/// A `cynode serve` on `db`; long leases so the test's own node keeps its job across restarts.
async fn serve(db: &TestDb) -> (BinProcess, String) {
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("CYNODE__SECURITY__MASTER_KEY", MASTER_KEY),
        ("CYNODE__OUTBOUND__ALLOW_CIDRS", "127.0.0.0/8"),
        ("CYNODE__DISPATCH__LEASE_TTL_MS", "300000"),
    ];
    let mut p = BinProcess::spawn("cynode", &["serve", "--listen", "127.0.0.1:0"], &env);
    let line = p.wait_for("serving on http://", Duration::from_secs(60)).await;
    let url = line[line.find("http://").expect("url")..].trim().to_string();
    (p, url)
}

async fn kill(mut p: BinProcess) {
    p.signal("KILL");
    assert_eq!(p.wait_exit(Duration::from_secs(30)).await, None, "killed by the signal");
}

async fn call(url: &str, method: &str, path: &str, token: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .request(method.parse().expect("method"), format!("{url}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    r.json().await.expect("json")
}

async fn events(url: &str, task: &str, token: &str, last: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{url}/v1/tasks/{task}/events")).bearer_auth(token);
    if let Some(id) = last {
        req = req.header("last-event-id", id);
    }
    let r = req.send().await.expect("connect");
    assert_eq!(r.status(), 200);
    r
}

#[tokio::test]
async fn sse_resumes_on_a_restarted_gateway_without_gaps_or_duplicates() {
    let db = TestDb::new().await;
    seed(&db.pool).await;
    let token = token(&db.pool, "op", Role::Operator, None).await;
    let (first, url) = serve(&db).await;
    let d = Dispatcher::new(db.pool.clone(), Default::default());
    let node = sandbox_node(&db.pool).await;
    let task = call(&url, "POST", "/v1/tasks", &token, json!({ "text": "run seq 7" })).await;
    let task = task["task_id"].as_str().expect("task").to_string();
    let l = lease(&d, node).await;
    for i in 0..3u64 {
        output(&d, node, &l, i, &format!("{}\n", i + 1)).await;
    }

    // A client reads the first events, then the gateway dies under it.
    let mut stream = events(&url, &task, &token, None).await;
    let mut seen: Vec<SseEvent> = Vec::new();
    read_until(&mut stream, &mut seen, |e| outputs(e) == "1\n2\n3\n").await;
    let last = seen.last().and_then(|e| e.id.clone()).expect("an id");
    kill(first).await;
    drop(stream);

    // The node keeps working while no gateway runs.
    for i in 3..5u64 {
        output(&d, node, &l, i, &format!("{}\n", i + 1)).await;
    }

    // A new gateway on the same database: resume, then more events arrive live, then the end.
    let (second, url) = serve(&db).await;
    let mut stream = events(&url, &task, &token, Some(&last)).await;
    let mut rest: Vec<SseEvent> = Vec::new();
    read_until(&mut stream, &mut rest, |e| outputs(e) == "4\n5\n").await;
    for i in 5..7u64 {
        output(&d, node, &l, i, &format!("{}\n", i + 1)).await;
    }
    finish(&d, node, &l, FinishStatus::Succeeded, 0).await;
    read_until(&mut stream, &mut rest, |e| e.iter().any(|e| e.event == "end")).await;

    let all: Vec<SseEvent> = seen.into_iter().chain(rest).filter(|e| e.id.is_some()).collect();
    let ids: Vec<i64> = all.iter().map(|e| e.id.as_deref().expect("id").parse().expect("number")).collect();
    let expected: Vec<i64> = (1..=i64::try_from(ids.len()).expect("len")).collect();
    assert_eq!(ids, expected, "every event exactly once across the restart");
    assert_eq!(outputs(&all), "1\n2\n3\n4\n5\n6\n7\n");
    kill(second).await;
}

/// Every hit verifies, and the hits group into exactly one `webhook-id` per event: returns id → event type.
fn by_webhook_id(rx: &Receiver, secret: &str) -> BTreeMap<String, (String, String)> {
    let mut ids: BTreeMap<String, (String, String)> = BTreeMap::new();
    for hit in rx.hits() {
        assert!(hit.verifies_with(secret), "signature verifies independently");
        let data = hit.json()["data"].clone();
        let key = (hit.event_type(), data["task_id"].as_str().unwrap_or("").to_string());
        let previous = ids.insert(hit.webhook_id(), key.clone());
        assert!(previous.is_none_or(|p| p == key), "one webhook-id is one event");
    }
    let events: std::collections::BTreeSet<&(String, String)> = ids.values().collect();
    assert_eq!(events.len(), ids.len(), "one event has one webhook-id: {ids:?}");
    ids
}

/// Waits until `n` deliveries are recorded as delivered (the receiver's answer is recorded shortly after it
/// arrives; a gateway killed in between would rightly send the message again).
async fn recorded(db: &TestDb, n: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
            .fetch_one(&db.pool)
            .await
            .expect("count");
        if done >= n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{done} of {n} deliveries recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn webhook_events_survive_gateway_kills_with_one_webhook_id_each() {
    let db = TestDb::new().await;
    seed(&db.pool).await;
    let admin = token(&db.pool, "admin", Role::Admin, None).await;
    let rx = Receiver::start().await;
    let (first, url) = serve(&db).await;
    let body = json!({ "name": "sink", "url": rx.url("sink"), "event_types": ["task.created"] });
    let created = call(&url, "POST", "/v1/subscriptions", &admin, body).await;
    let secret = created["secret"].as_str().expect("secret").to_string();
    call(&url, "POST", "/v1/tasks", &admin, json!({ "text": "run echo one" })).await;
    rx.wait("the first event", |h| h.len() == 1).await;
    recorded(&db, 1).await;

    // 1. Committed while no gateway (no deliverer) runs anywhere: nothing is sent until one starts again.
    kill(first).await;
    let commands =
        Commands::new(db.pool.clone(), Dispatcher::new(db.pool.clone(), Default::default()), Default::default());
    let origin = Origin { requester: "cron".into(), source: "api".into(), ..Origin::default() };
    commands.handle(&origin, "run echo two").await.expect("committed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.hits().len(), 1, "no deliverer, no delivery");
    let (second, url) = serve(&db).await;
    rx.wait("the event committed while down", |h| h.len() == 2).await;
    recorded(&db, 2).await;

    // 2. Killed while the receiver holds the request (claimed, sent, never answered): retried after the claim
    //    expires, on the next gateway, with the same webhook-id.
    rx.hang(true);
    call(&url, "POST", "/v1/tasks", &admin, json!({ "text": "run echo three" })).await;
    rx.wait("the attempt that hangs", |h| h.len() == 3).await;
    kill(second).await;
    rx.hang(false);
    let (third, _) = serve(&db).await;
    let hits = rx.wait("the retry after the claim expired", |h| h.len() == 4).await;
    assert_eq!(hits[3].webhook_id(), hits[2].webhook_id(), "the retry keeps the webhook-id");
    assert_eq!(hits[3].body, hits[2].body);

    recorded(&db, 3).await;
    let ids = by_webhook_id(&rx, &secret);
    assert_eq!(ids.len(), 3, "three events, three webhook-ids: {ids:?}");
    let states: Vec<(String, i32)> = sqlx::query_as("SELECT state, attempts FROM deliveries ORDER BY created_at")
        .fetch_all(&db.pool)
        .await
        .expect("rows");
    assert_eq!(states, [("delivered".to_string(), 1), ("delivered".to_string(), 1), ("delivered".to_string(), 2)]);
    kill(third).await;
}
