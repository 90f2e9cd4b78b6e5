//! Host jobs through the whole path: lease, run, output, finish; cancel; graceful stop.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_job_runs_and_its_output_and_exit_code_are_stored() {
    let server = Server::start(&[]).await;
    let node = server.host_node("host-1", &[]).await;
    let (task, ok) = server.enqueue_host("echo hi").await;
    let (_, failing) = server.enqueue_host("echo 'bad things' >&2; exit 7").await;

    let row = server.wait_job(ok, Duration::from_secs(10), |j| j.state == "succeeded").await;
    let result = row.result.expect("result");
    assert_eq!((result["status"].as_str(), result["exit_code"].as_i64()), (Some("succeeded"), Some(0)), "{result}");
    assert_eq!(row.attempt, 1);
    assert_eq!(server.output(ok, 1, "stdout").await, "hi\n");
    let task_state: String = sqlx::query_scalar("SELECT state FROM tasks WHERE id = $1")
        .bind(task)
        .fetch_one(&server.db.pool)
        .await
        .expect("task");
    assert_eq!(task_state, "succeeded");

    let row = server.wait_job(failing, Duration::from_secs(10), |j| j.state == "failed").await;
    let result = row.result.expect("result");
    assert_eq!((result["status"].as_str(), result["exit_code"].as_i64()), (Some("failed"), Some(7)), "{result}");
    assert_eq!(result["message"].as_str(), Some("exited with code 7"));
    assert_eq!(server.output(failing, 1, "stderr").await, "bad things\n");
    assert_eq!(server.output(failing, 1, "stdout").await, "");

    // Protocol 2 was negotiated, so each short job's output rode in its finish request.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = node.output();
        let plain: Vec<String> = lines.iter().map(|l| strip_ansi(l)).collect();
        let carried = |l: &&String| {
            l.contains("job finished") && (l.contains("carried_chunks=1") || l.contains("\"carried_chunks\":1"))
        };
        if plain.iter().filter(carried).count() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no finish carried the output:\n{}", lines.join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Also runs with 2 s node tokens, so the agent must renew its token while the job runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_is_stopped_and_finished_as_cancelled() {
    let server = Server::start(&[("CYNODE__DISPATCH__TOKEN_TTL_S", "2")]).await;
    let node = server.host_node("host-1", &[]).await;
    let (_, job) = server.enqueue_host("echo started; sleep 30; echo not-reached").await;
    server.wait_running_with_output(job).await;

    // Outlive the token: heartbeats must keep working (renewed token), or the lease would be re-queued.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let row = server.job(job).await;
    assert_eq!((row.state.as_str(), row.attempt), ("running", 1), "still held by the same attempt");

    sqlx::query("UPDATE jobs SET cancel_requested = true WHERE id = $1")
        .bind(job)
        .execute(&server.db.pool)
        .await
        .expect("request cancel");
    let asked = Instant::now();
    let row = server.wait_job(job, Duration::from_secs(8), |j| j.state == "cancelled").await;
    eprintln!("cancel took {} ms from request to recorded result", asked.elapsed().as_millis());
    let result = row.result.expect("result");
    assert_eq!(result["status"].as_str(), Some("cancelled"));
    assert_eq!(result["message"].as_str(), Some("cancelled on request"));
    assert!(!server.output(job, 1, "stdout").await.contains("not-reached"));
    let logs = node.output().join("\n");
    assert!(!logs.contains(crate::support::NODE_KEY), "the node key must never be logged");
    assert!(!logs.contains("refused the node token"), "the token is renewed before it expires:\n{logs}");
}

/// Graceful stop cancels running jobs and reports them as cancelled (there is no way to hand a lease
/// back, and silently re-running a command elsewhere could repeat its side effects).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_node_promptly_and_its_job_ends_cancelled() {
    let server = Server::start(&[]).await;
    let mut node = server.host_node("host-1", &[]).await;
    let (_, job) = server.enqueue_host("echo started; sleep 30").await;
    server.wait_running_with_output(job).await;

    let asked = Instant::now();
    node.signal("TERM");
    assert_eq!(node.wait_exit(Duration::from_secs(10)).await, Some(0), "{}", node.output().join("\n"));
    let took = asked.elapsed();
    eprintln!("graceful stop took {} ms", took.as_millis());
    assert!(took < Duration::from_secs(5), "{took:?}");
    let row = server.job(job).await;
    assert_eq!(row.state, "cancelled", "{row:?}");
    let message = row.result.as_ref().and_then(|r| r["message"].as_str()).unwrap_or_default().to_owned();
    assert!(message.contains("node agent was stopped"), "{message}");
}

/// `line` without terminal colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_escape = false;
    for c in line.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (false, c) => out.push(c),
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    out
}
