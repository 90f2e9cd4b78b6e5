//! A node killed mid-job: its job is re-queued and finished by another node within seconds, and nothing the
//! dead node (or anyone replaying its writes) sends afterwards lands.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::proxy::Proxy;
use crate::support::{NODE_KEY, Server, code};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_job_is_requeued_finished_elsewhere_and_its_late_writes_are_refused() {
    let server = Server::start(&[]).await;
    let mut a = server.host_node("node-a", &[]).await;
    let mut b = server.host_node("node-b", &[]).await;
    let (task, job) = server.enqueue_host("echo start; sleep 3; echo done").await;

    let first = server.wait_running_with_output(job).await;
    let (old_token, old_node) = (first.lease_token.expect("lease token"), first.node_id.expect("holder"));
    let victim = server.node_name(old_node).await;
    let (dead, survivor) = if victim == "node-a" { (&mut a, &mut b) } else { (&mut b, &mut a) };
    dead.signal("KILL");
    let killed = Instant::now();
    assert_eq!(dead.wait_exit(Duration::from_secs(5)).await, None, "killed by a signal");

    let second = server.wait_job(job, Duration::from_secs(8), |j| j.attempt >= 2).await;
    let requeued_ms = killed.elapsed().as_millis();
    eprintln!("re-queue: attempt 2 leased {requeued_ms} ms after SIGKILL (lease TTL 2000 ms, reaper every 200 ms)");
    assert_eq!(second.attempt, 2);
    assert_ne!(second.node_id, Some(old_node), "the other node took it");
    let done = server.wait_job(job, Duration::from_secs(10), |j| j.state == "succeeded").await;
    eprintln!("finished by the other node {} ms after SIGKILL", killed.elapsed().as_millis());
    assert_eq!(done.attempt, 2);
    assert!(survivor.output().iter().any(|l| l.contains("job finished")), "{}", survivor.output().join("\n"));

    // The dead node "comes back" with its old lease: same key and name, so the same node id, fresh token.
    let token = server.token(NODE_KEY, &victim, &["host"]).await;
    let lease = json!({"job_id": job, "attempt": 1, "lease_token": old_token});
    let chunks = json!([{"stream": "stdout", "seq": 99, "data": "forged\n"}]);
    let (status, body) = server.post("/v1/node/output", Some(&token), &json!({"lease": lease, "chunks": chunks})).await;
    assert_eq!((status, code(&body)), (409, "stale_lease"), "{body}");
    let outcome = json!({"status": "failed", "exit_code": 1, "duration_ms": 5, "message": "from the past"});
    let (status, body) =
        server.post("/v1/node/finish", Some(&token), &json!({"lease": lease, "outcome": outcome})).await;
    assert_eq!((status, code(&body)), (409, "stale_lease"), "{body}");
    let (status, body) = server.post("/v1/node/heartbeat", Some(&token), &json!({"leases": [lease]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lost"], json!([job]), "{body}");

    // What is stored is attempt 2's, and only that.
    let row = server.job(job).await;
    assert_eq!((row.state.as_str(), row.attempt), ("succeeded", 2));
    let result = row.result.expect("result");
    assert_eq!((result["status"].as_str(), result["exit_code"].as_i64()), (Some("succeeded"), Some(0)), "{result}");
    assert_eq!(server.output(job, 2, "stdout").await, "start\ndone\n");
    assert!(!server.output(job, 1, "stdout").await.contains("forged"));
    let finished: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE task_id = $1 AND result IS NOT NULL")
        .bind(task)
        .fetch_one(&server.db.pool)
        .await
        .expect("count");
    assert_eq!(finished, 1, "exactly one finished result for the task");
    assert!(requeued_ms < 5000, "re-queued within seconds, took {requeued_ms} ms");
}

/// A node cut off from the orchestrator keeps its job running and keeps retrying; once it gets through
/// again and learns the lease was lost (the job went to another node meanwhile), it stops the job and
/// writes nothing more about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_stops_the_job_it_lost_once_it_reconnects() {
    let server = Server::start(&[]).await;
    let link = Proxy::start(&server.url).await;
    let cut_off = server.host_node_via(&link.url, "node-a").await;
    let (_, job) = server.enqueue_host("echo start; sleep 5; echo done").await;
    let first = server.wait_running_with_output(job).await;
    assert_eq!(server.node_name(first.node_id.expect("holder")).await, "node-a");

    link.cut();
    let _other = server.host_node("node-b", &[]).await;
    let second = server.wait_job(job, Duration::from_secs(8), |j| j.attempt >= 2).await;
    assert_eq!(server.node_name(second.node_id.expect("holder")).await, "node-b");
    let logs = cut_off.output().join("\n");
    assert!(
        logs.contains("heartbeat failed") && !logs.contains("lease lost"),
        "node-a keeps its job while cut off:\n{logs}"
    );

    link.heal();
    let mut cut_off = cut_off;
    cut_off.wait_for("no longer holds the lease; stopping the job", Duration::from_secs(4)).await;
    let done = server.wait_job(job, Duration::from_secs(10), |j| j.state == "succeeded").await;
    assert_eq!(done.attempt, 2);
    assert_eq!(server.output(job, 2, "stdout").await, "start\ndone\n");
    assert_eq!(server.output(job, 1, "stdout").await, "start\n", "nothing more from attempt 1");
}
