//! Live task events over SSE: events arrive while the job runs, and a client that disconnects and resumes with
//! `Last-Event-ID` gets every event exactly once, then `end`.

use std::time::Duration;

use cynode_gateway::commands::client::{SseEvent, parse_block};
use cynode_protocol::FinishStatus;

use crate::api_support::*;

/// Reads SSE events from an open response until `stop` says so or the stream ends.
pub async fn read_until(resp: &mut reqwest::Response, out: &mut Vec<SseEvent>, stop: impl Fn(&[SseEvent]) -> bool) {
    let mut buf = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !stop(out) {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk()).await.expect("events in time").expect("read");
        let Some(chunk) = chunk else { return };
        buf.push_str(std::str::from_utf8(&chunk).expect("utf8"));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            out.extend(parse_block(&block));
        }
    }
}

async fn open(api: &Api, task: &str, last: Option<&str>) -> reqwest::Response {
    let mut req = api.app.client.get(api.app.url(&format!("/v1/tasks/{task}/events"))).bearer_auth(&api.op);
    if let Some(id) = last {
        req = req.header("last-event-id", id);
    }
    let r = req.send().await.expect("connect");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().expect("ct").starts_with("text/event-stream"));
    r
}

pub fn outputs(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.event == "output")
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.data).expect("json")["data"].as_str().expect("d").to_string()
        })
        .collect()
}

#[tokio::test]
async fn events_stream_live_and_resume_without_gaps_or_duplicates() {
    let api = Api::spawn().await;
    let pool = &api.app.db.pool;
    let d = api.app.state.dispatcher.clone();
    let node = sandbox_node(pool).await;
    let sub = api.submit(&api.op, "run seq 6").await;
    let task = sub["task_id"].as_str().expect("task").to_string();

    // Connected before the job starts: the history so far, then live events as the node works.
    let mut first = open(&api, &task, None).await;
    let mut seen = Vec::new();
    read_until(&mut first, &mut seen, |e| e.iter().any(|e| e.event == "job")).await;
    let l = lease(&d, node).await;
    for i in 0..3u64 {
        output(&d, node, &l, i, &format!("{}\n", i + 1)).await;
    }
    read_until(&mut first, &mut seen, |e| outputs(e) == "1\n2\n3\n").await;
    let mid = seen.last().and_then(|e| e.id.clone()).expect("an id");
    drop(first);

    // While nobody listens: more output, and the job finishes.
    for i in 3..6u64 {
        output(&d, node, &l, i, &format!("{}\n", i + 1)).await;
    }
    finish(&d, node, &l, FinishStatus::Succeeded, 0).await;

    let mut again = open(&api, &task, Some(&mid)).await;
    let mut rest = Vec::new();
    read_until(&mut again, &mut rest, |e| e.iter().any(|e| e.event == "end")).await;
    let end = rest.last().expect("end");
    assert_eq!(end.event, "end");
    assert!(end.id.is_none());
    assert_eq!(serde_json::from_str::<serde_json::Value>(&end.data).expect("json")["state"], "succeeded");
    // The stream closes after `end`.
    assert!(tokio::time::timeout(Duration::from_secs(5), again.chunk()).await.expect("closed").expect("ok").is_none());

    let all: Vec<SseEvent> = seen.into_iter().chain(rest).filter(|e| e.id.is_some()).collect();
    let ids: Vec<i64> = all.iter().map(|e| e.id.as_deref().expect("id").parse().expect("number")).collect();
    let expected: Vec<i64> = (1..=i64::try_from(ids.len()).expect("len")).collect();
    assert_eq!(ids, expected, "ids are 1..n: no gap, no duplicate");
    assert_eq!(outputs(&all), "1\n2\n3\n4\n5\n6\n");
    let states: Vec<(String, String)> = all
        .iter()
        .filter(|e| e.event != "output")
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.data).expect("json");
            (e.event.clone(), v["state"].as_str().expect("state").to_string())
        })
        .collect();
    for want in [("job", "queued"), ("job", "leased"), ("job", "running"), ("job", "succeeded"), ("task", "succeeded")]
    {
        assert!(states.iter().any(|(k, s)| (k.as_str(), s.as_str()) == want), "{want:?} in {states:?}");
    }

    // A late reader of a finished task gets the whole history and `end` at once; resuming at the end, only `end`.
    let mut late = Vec::new();
    read_until(&mut open(&api, &task, None).await, &mut late, |e| e.iter().any(|e| e.event == "end")).await;
    assert_eq!(late.iter().filter(|e| e.id.is_some()).count(), ids.len());
    let last = ids.last().expect("last").to_string();
    let mut tail = Vec::new();
    read_until(&mut open(&api, &task, Some(&last)).await, &mut tail, |e| e.iter().any(|e| e.event == "end")).await;
    assert_eq!(tail.len(), 1);
    let (status, _) = api.call("GET", &format!("/v1/tasks/{task}/events"), "bad", None).await;
    assert_eq!(status, 401);
}

/// With the fallback poll practically off (an hour), every event still arrives: the claim, the node's output and
/// its finish are pushed to the open stream by the writers in this process (the old stream only polled).
#[tokio::test]
async fn events_are_pushed_as_they_are_committed_without_waiting_for_a_poll() {
    use cynode_gateway::server::{CoreSettings, RouterSettings};
    use cynode_orchestrator::api_tokens::Role;
    use cynode_orchestrator::dispatch::DispatchSettings;

    let core = CoreSettings {
        dispatch: DispatchSettings { event_poll_fallback: Duration::from_secs(3600), ..DispatchSettings::default() },
        ..CoreSettings::default()
    };
    let router = RouterSettings { max_body_bytes: 1024 * 1024, request_timeout: Duration::from_secs(10) };
    let app = crate::support::TestApp::spawn_full(router, core).await;
    seed(&app.db.pool).await;
    let admin = token(&app.db.pool, "admin", Role::Admin, None).await;
    let op = token(&app.db.pool, "op", Role::Operator, None).await;
    let api = Api { app, admin, op };
    let pool = &api.app.db.pool;
    let d = api.app.state.dispatcher.clone();
    let node = sandbox_node(pool).await;
    let sub = api.submit(&api.op, "run seq 2").await;
    let task = sub["task_id"].as_str().expect("task").to_string();

    let mut stream = open(&api, &task, None).await;
    let mut seen = Vec::new();
    read_until(&mut stream, &mut seen, |e| e.iter().any(|e| e.event == "job")).await;
    let l = lease(&d, node).await;
    read_until(&mut stream, &mut seen, |e| e.iter().any(|e| e.data.contains("\"leased\""))).await;
    output(&d, node, &l, 0, "1\n").await;
    read_until(&mut stream, &mut seen, |e| outputs(e) == "1\n").await;
    output(&d, node, &l, 1, "2\n").await;
    finish(&d, node, &l, FinishStatus::Succeeded, 0).await;
    read_until(&mut stream, &mut seen, |e| e.iter().any(|e| e.event == "end")).await;
    assert_eq!(outputs(&seen), "1\n2\n");
}
