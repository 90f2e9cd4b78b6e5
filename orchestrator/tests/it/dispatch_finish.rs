//! Group-committed finishes and protocol 2's output carried in the finish.

use std::time::Duration;

use cynode_orchestrator::dispatch::DispatchError;
use cynode_orchestrator::tasks::{self, Origin};
use cynode_protocol::{
    FinishRequest, FinishStatus, FinishWithOutput, Lease, LeaseRef, Outcome, OutputBatch, OutputChunk, Stream,
};
use cynode_tests::TestDb;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::*;

fn outcome(status: FinishStatus, exit_code: i64) -> Outcome {
    Outcome { exit_code: Some(exit_code), output_bytes: 6, ..Outcome::new(status, 7) }
}

fn lease_ref(l: &Lease) -> LeaseRef {
    LeaseRef { job_id: l.job_id, attempt: l.attempt, lease_token: l.lease_token }
}

fn chunk(stream: Stream, seq: u64, data: &str) -> OutputChunk {
    OutputChunk { stream, seq, data: data.into() }
}

fn with_output(l: &Lease, status: FinishStatus, output: Vec<OutputChunk>) -> FinishWithOutput {
    let code = if status == FinishStatus::Succeeded { 0 } else { 1 };
    FinishWithOutput { finish: FinishRequest { lease: lease_ref(l), outcome: outcome(status, code) }, output }
}

async fn output_of(pool: &PgPool, job: Uuid) -> Vec<(i32, String, i64, String)> {
    let rows: Vec<(i32, String, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT attempt, stream, seq, data FROM job_output_chunks WHERE job_id = $1 ORDER BY stream, seq",
    )
    .bind(job)
    .fetch_all(pool)
    .await
    .expect("chunks");
    rows.into_iter().map(|(a, s, q, d)| (a, s, q, String::from_utf8(d).expect("utf-8"))).collect()
}

async fn task_state_of_job(pool: &PgPool, job: Uuid) -> String {
    sqlx::query_scalar("SELECT t.state FROM tasks t JOIN jobs j ON j.task_id = t.id WHERE j.id = $1")
        .bind(job)
        .fetch_one(pool)
        .await
        .expect("task")
}

#[tokio::test]
async fn finish_with_output_stores_the_tail_once_and_refuses_a_different_retry() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let n = node(&db.pool, "carrier", host_caps()).await;
    let id = enqueue(&db.pool, &host_job("echo hi")).await;
    let lease = d.lease(n, 1, Duration::ZERO).await.expect("lease").remove(0);
    // Part of the output was uploaded while the job ran; the rest comes with the finish.
    let early = OutputBatch { lease: lease_ref(&lease), chunks: vec![chunk(Stream::Stdout, 0, "hel")] };
    d.output(n, &early).await.expect("output");
    let tail =
        vec![chunk(Stream::Stdout, 1, "lo\n"), chunk(Stream::Stderr, 2, "warn\n"), chunk(Stream::Stdout, 0, "x")];
    let req = with_output(&lease, FinishStatus::Succeeded, tail);
    let ack = d.finish_with_output(n, req.clone()).await.expect("finish");
    assert_eq!((ack.state.as_str(), ack.duplicate), ("succeeded", false));
    let stored = vec![
        (1, "stderr".to_string(), 2, "warn\n".to_string()),
        (1, "stdout".to_string(), 0, "hel".to_string()), // the earlier chunk 0 is kept: chunks are idempotent
        (1, "stdout".to_string(), 1, "lo\n".to_string()),
    ];
    assert_eq!(output_of(&db.pool, id).await, stored);
    assert_eq!(task_state_of_job(&db.pool, id).await, "succeeded");
    // Output events come before the job's final state in the task's event stream.
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM task_events WHERE job_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .expect("events");
    assert_eq!(kinds.last().map(String::as_str), Some("job"), "{kinds:?}");

    // The identical retry is acknowledged again and stores nothing twice.
    let again = d.finish_with_output(n, req.clone()).await.expect("retry");
    assert!(again.duplicate);
    assert_eq!(output_of(&db.pool, id).await, stored);
    // A retry with a different outcome is refused, and its output is not stored.
    let mut different = with_output(&lease, FinishStatus::Failed, vec![chunk(Stream::Stdout, 9, "late")]);
    different.finish.lease = req.finish.lease;
    assert!(matches!(d.finish_with_output(n, different).await, Err(DispatchError::ConflictingFinish)));
    assert_eq!(output_of(&db.pool, id).await, stored);
}

#[tokio::test]
async fn carried_output_over_the_limits_is_refused_before_anything_is_written() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let n = node(&db.pool, "greedy", host_caps()).await;
    let id = enqueue(&db.pool, &host_job("yes")).await;
    let lease = d.lease(n, 1, Duration::ZERO).await.expect("lease").remove(0);
    let big = vec![chunk(Stream::Stdout, 0, &"y".repeat(300 * 1024))];
    let err = d.finish_with_output(n, with_output(&lease, FinishStatus::Succeeded, big)).await.expect_err("big");
    assert!(matches!(err, DispatchError::Invalid(ref m) if m.contains("bytes")), "{err}");
    let many = (0..300).map(|i| chunk(Stream::Stdout, i, "y")).collect();
    let err = d.finish_with_output(n, with_output(&lease, FinishStatus::Succeeded, many)).await.expect_err("many");
    assert!(matches!(err, DispatchError::Invalid(ref m) if m.contains("chunks")), "{err}");
    assert_eq!(job_state(&db.pool, id).await.0, "leased", "nothing recorded");
    assert!(output_of(&db.pool, id).await.is_empty());
}

/// Many finishes at once end up in shared transactions; a stale one among them is refused without affecting
/// the others, and stores none of its output.
#[tokio::test]
async fn a_stale_finish_in_a_batch_is_refused_and_the_others_recorded() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let n = node(&db.pool, "busy", host_caps()).await;
    let thief = node(&db.pool, "thief", host_caps()).await;
    for i in 0..40 {
        enqueue(&db.pool, &host_job(&format!("echo {i}"))).await;
    }
    let mut leases = Vec::new();
    while leases.len() < 40 {
        leases.extend(d.lease(n, 32, Duration::ZERO).await.expect("lease"));
    }
    let victim = leases[17].job_id;
    let mut handles = Vec::new();
    for (i, l) in leases.iter().enumerate() {
        let d = d.clone();
        let mut req = with_output(l, FinishStatus::Succeeded, vec![chunk(Stream::Stdout, 0, &format!("out {i}\n"))]);
        let mut who = n;
        if i == 17 {
            req.finish.lease.lease_token = Uuid::new_v4(); // a forged or outdated token
        }
        if i == 23 {
            who = thief; // the right token from the wrong node
        }
        handles.push(tokio::spawn(async move { (i, d.finish_with_output(who, req).await) }));
    }
    for h in handles {
        let (i, r) = h.await.expect("join");
        match i {
            17 | 23 => assert!(matches!(r, Err(DispatchError::StaleLease)), "finish {i}: {r:?}"),
            _ => assert_eq!(r.expect("finish").state, "succeeded", "finish {i}"),
        }
    }
    let states: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, state FROM jobs").fetch_all(&db.pool).await.expect("jobs");
    for (id, state) in states {
        let expected = if id == victim || id == leases[23].job_id { "leased" } else { "succeeded" };
        assert_eq!(state, expected, "job {id}");
    }
    let chunks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_output_chunks").fetch_one(&db.pool).await.expect("count");
    assert_eq!(chunks, 38, "one chunk per recorded finish, none for the refused ones");
    assert!(output_of(&db.pool, victim).await.is_empty());
    // The rightful holder can still finish the victim.
    let ok = with_output(&leases[17], FinishStatus::Succeeded, vec![chunk(Stream::Stdout, 0, "mine\n")]);
    d.finish_with_output(n, ok).await.expect("rightful finish");
    assert_eq!(output_of(&db.pool, victim).await, vec![(1, "stdout".to_string(), 0, "mine\n".to_string())]);
}

/// Two jobs of one task finishing at the same moment through two replicas (two dispatchers, so two concurrent
/// transactions) settle the task from both results.
#[tokio::test]
async fn jobs_of_one_task_finishing_together_settle_it() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let replica = dispatcher(&db.pool);
    let n = node(&db.pool, "pair", host_caps()).await;
    for round in 0..10 {
        let mut tx = db.pool.begin().await.expect("tx");
        let origin = Origin { requester: "U1".into(), source: "test".into(), ..Origin::default() };
        let task = tasks::create_task(&mut tx, &origin, "run", "x", &serde_json::json!({})).await.expect("task");
        tasks::create_job(&mut tx, task, &host_job("a")).await.expect("job a");
        tasks::create_job(&mut tx, task, &host_job("b")).await.expect("job b");
        tx.commit().await.expect("commit");
        let leases = d.lease(n, 2, Duration::ZERO).await.expect("lease");
        assert_eq!(leases.len(), 2);
        let status = if round % 2 == 0 { FinishStatus::Succeeded } else { FinishStatus::Failed };
        let (a, b) = tokio::join!(
            d.finish_with_output(n, with_output(&leases[0], FinishStatus::Succeeded, vec![])),
            replica.finish_with_output(n, with_output(&leases[1], status, vec![])),
        );
        a.expect("a");
        b.expect("b");
        let state: String = sqlx::query_scalar("SELECT state FROM tasks WHERE id = $1")
            .bind(task)
            .fetch_one(&db.pool)
            .await
            .expect("t");
        let expected = if status == FinishStatus::Succeeded { "succeeded" } else { "failed" };
        assert_eq!(state, expected, "round {round}");
    }
}

/// A heartbeat that starts a node's jobs (leased → running, which writes `task_events` rows referencing the
/// tasks) racing a batch of finishes for the same jobs must not deadlock: both succeed.
#[tokio::test]
async fn heartbeats_and_finish_batches_of_the_same_jobs_do_not_deadlock() {
    let db = TestDb::new().await;
    let d = dispatcher(&db.pool);
    let n = node(&db.pool, "racer", host_caps()).await;
    for round in 0..15 {
        for i in 0..4 {
            enqueue(&db.pool, &host_job(&format!("echo {round}.{i}"))).await;
        }
        let leases = d.lease(n, 4, Duration::ZERO).await.expect("lease");
        assert_eq!(leases.len(), 4);
        let refs: Vec<LeaseRef> = leases.iter().map(lease_ref).collect();
        let beat = {
            let d = d.clone();
            tokio::spawn(async move { d.heartbeat(n, &refs).await })
        };
        let mut finishes = Vec::new();
        for l in &leases {
            let d = d.clone();
            let req = with_output(l, FinishStatus::Succeeded, vec![chunk(Stream::Stdout, 0, "ok\n")]);
            finishes.push(tokio::spawn(async move { d.finish_with_output(n, req).await }));
        }
        let hb = beat.await.expect("join");
        assert!(hb.is_ok(), "round {round}: heartbeat failed: {hb:?}");
        for f in finishes {
            assert_eq!(f.await.expect("join").expect("finish").state, "succeeded", "round {round}");
        }
    }
}
