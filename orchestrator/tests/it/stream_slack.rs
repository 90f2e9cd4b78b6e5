//! The real Slack sink over a socket against the rule-enforcing fake Slack: a 10,000-line output streams into
//! the thread with zero 429s, every message within limits, and a final message pointing to the full output.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::installs::Installs;
use cynode_orchestrator::stream::{Sinks, SlackRates, SlackSink, StreamSettings, spawn_stream_worker};
use cynode_protocol::{FinishRequest, LeaseRef, OutputBatch, OutputChunk, Stream};
use cynode_tests::TestDb;
use cynode_tests::fakes::FakeSlack;

use crate::support::{dispatcher, host_caps, node, slack_install, slack_thread_task};

/// Starts a stream worker with the real Slack sink; it stops when the returned sender is dropped.
fn worker(pool: &sqlx::PgPool, secrets: SecretBox, settings: StreamSettings) -> tokio::sync::watch::Sender<bool> {
    let installs = Arc::new(Installs::new(pool.clone(), secrets, Duration::from_secs(30)));
    let sink = SlackSink::new(reqwest::Client::new(), installs, SlackRates::default());
    let (stop, rx) = tokio::sync::watch::channel(false);
    spawn_stream_worker(pool.clone(), Sinks::new().with(Arc::new(sink)), settings, rx);
    stop
}

/// Whether the task's stream closes within `limit`.
async fn closed(pool: &sqlx::PgPool, task: uuid::Uuid, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        let state: String = sqlx::query_scalar("SELECT state FROM stream_records WHERE task_id = $1")
            .bind(task)
            .fetch_one(pool)
            .await
            .unwrap();
        if state == "closed" {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn ten_thousand_lines_stream_into_a_slack_thread_without_a_429() {
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let slack = FakeSlack::start().await;
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
    let install = slack_install(&pool, &secrets, slack.token(), &slack.base_url()).await;
    let (task, job) = slack_thread_task(&pool, install, "1700000000.000100", "seq 10000").await;

    let settings = StreamSettings { poll: Duration::from_millis(50), ..StreamSettings::default() };
    let _stop = worker(&pool, secrets, settings);

    let d = dispatcher(&pool);
    let n = node(&pool, "n1", host_caps()).await;
    let lease = d.lease(n, 1, Duration::from_secs(2)).await.unwrap().remove(0);
    let lref = LeaseRef { job_id: job, attempt: lease.attempt, lease_token: lease.lease_token };
    for batch in 0..50u64 {
        let data: String = (batch * 200..(batch + 1) * 200).map(|i| format!("output line {i}\n")).collect();
        d.output(
            n,
            &OutputBatch { lease: lref, chunks: vec![OutputChunk { stream: Stream::Stdout, seq: batch, data }] },
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let outcome = crate::support::succeeded(2000);
    d.finish(n, &FinishRequest { lease: lref, outcome }).await.unwrap();
    assert!(closed(&pool, task, Duration::from_secs(60)).await, "stream did not close");
    assert_eq!(slack.count_429(), 0, "zero 429s");
    assert!(slack.rejections().is_empty(), "{:?}", slack.rejections());
    let messages = slack.messages_in("C1", Some("1700000000.000100"));
    assert_eq!(messages.len(), 4, "a header and output rolled over to the cap, in the same thread");
    assert!(messages.iter().all(|m| !m.streaming), "every stream was stopped");
    let last = messages.last().unwrap().shown();
    assert!(last.contains("output line 9999"));
    let header = messages[0].shown();
    assert!(header.contains("Succeeded"), "the header carries the final status");
    assert!(header.contains(&format!("/v1/jobs/{job}/output")));
    assert!(messages[1].shown().contains("output line 0"));
}

/// A replica crashed while its first post was in flight (the post is in the thread, its id never saved), and the
/// lookup that would find it (`conversations.replies`) keeps failing with 503: the stream does not wait for the
/// lookup forever. After `lookup_patience` the post is settled as lost, never repeated, and the final status is
/// posted anew, so the thread ends with it. (With the patience set to an hour the stream never closes: the
/// stale header stays the thread's only status.)
#[tokio::test]
async fn an_interrupted_post_that_cannot_be_looked_up_still_ends_the_thread_with_the_final_status() {
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let slack = FakeSlack::builder().unavailable("conversations.replies").start().await;
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
    let install = slack_install(&pool, &secrets, slack.token(), &slack.base_url()).await;
    let thread = "1700000000.000300";
    let (task, job) = slack_thread_task(&pool, install, thread, "echo hi").await;
    let recorded = sqlx::query(
        "UPDATE stream_records SET pending_post = 0, pages = '[\"an-older-view\"]'
         WHERE task_id = $1 AND message_ids = '[]'",
    )
    .bind(task)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(recorded.rows_affected(), 1, "nothing was posted before");
    let stale = reqwest::Client::new()
        .post(format!("{}chat.postMessage", slack.base_url()))
        .bearer_auth(slack.token())
        .json(&serde_json::json!({"channel": "C1", "thread_ts": thread, "text": "⏳ working on it"}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(stale["ok"], true, "{stale}");

    let d = dispatcher(&pool);
    let n = node(&pool, "n1", host_caps()).await;
    let lease = d.lease(n, 1, Duration::from_secs(2)).await.unwrap().remove(0);
    let lref = LeaseRef { job_id: job, attempt: lease.attempt, lease_token: lease.lease_token };
    let data = "hi from the job\n".to_owned();
    let chunk = OutputChunk { stream: Stream::Stdout, seq: 0, data };
    d.output(n, &OutputBatch { lease: lref, chunks: vec![chunk] }).await.unwrap();
    d.finish(n, &FinishRequest { lease: lref, outcome: crate::support::succeeded(10) }).await.unwrap();

    let settings = StreamSettings {
        poll: Duration::from_millis(50),
        cadence: Duration::from_millis(200),
        lookup_patience: Duration::from_secs(2),
        ..StreamSettings::default()
    };
    let _stop = worker(&pool, secrets, settings);
    let done = closed(&pool, task, Duration::from_secs(30)).await;
    assert!(done, "the stream waited for the lookup: {:?}", slack.calls());
    let lookups = slack.calls_to("conversations.replies");
    assert!(lookups.len() >= 2, "the lookup was retried while within its patience: {lookups:?}");
    assert!(lookups.iter().all(|c| c.status == 503));
    // Slack threads keep the status in a header (slot 0) and the output in the messages after it: the stale
    // header stays, the output is posted once, and the final status is posted anew, once, last.
    let messages = slack.messages_in("C1", Some(thread));
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].shown().contains("working on it"));
    assert_eq!(messages.iter().filter(|m| m.shown().contains("hi from the job")).count(), 1, "{messages:?}");
    assert!(messages[2].shown().contains("Succeeded"), "{messages:?}");
    assert!(slack.rejections().iter().all(|c| c.method == "conversations.replies"), "{:?}", slack.rejections());
}

/// A job that waits for approval: once its card shows, the stream is parked — its claim let go, no replica
/// steps it (its record is not written again) — and the decision wakes it at once through the database
/// triggers, long before the safety net (an hour here), so the thread ends with the output and the final status.
/// (Without the wake-up triggers the stream sleeps through the hour and the test fails.)
#[tokio::test]
async fn a_stream_waiting_for_approval_is_parked_and_woken_by_the_decision() {
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let slack = FakeSlack::start().await;
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
    let install = slack_install(&pool, &secrets, slack.token(), &slack.base_url()).await;
    let thread = "1700000000.000400";
    let (task, job) = slack_thread_task(&pool, install, thread, "echo approved").await;
    sqlx::query("UPDATE jobs SET state = 'awaiting_approval' WHERE id = $1").bind(job).execute(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO approvals (id, job_id, approvers, requested_by, expires_at)
         VALUES ($1, $2, '[\"UBOSS\"]', 'U1', now() + interval '1 hour')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(job)
    .execute(&pool)
    .await
    .unwrap();

    let settings = StreamSettings {
        poll: Duration::from_millis(50),
        cadence: Duration::from_millis(200),
        park_max: Duration::from_secs(3600),
        ..StreamSettings::default()
    };
    let _stop = worker(&pool, secrets, settings);

    type Parked = (bool, bool, chrono::DateTime<chrono::Utc>);
    let parked = || async {
        sqlx::query_as::<_, Parked>(
            "SELECT parked_until IS NOT NULL, claim_token IS NULL, updated_at FROM stream_records WHERE task_id = $1",
        )
        .bind(task)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let started = Instant::now();
    let mut state = parked().await;
    while !(state.0 && state.1) && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        state = parked().await;
    }
    assert!(state.0 && state.1, "the stream did not park");
    let card = slack.messages_in("C1", Some(thread));
    assert_eq!(card.len(), 1, "{card:?}");
    assert!(card[0].shown().to_lowercase().contains("approv"), "the card shows: {}", card[0].shown());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(parked().await, state, "a parked stream is not stepped");

    sqlx::query("UPDATE approvals SET state = 'approved', decided_by = 'UBOSS', decided_at = now() WHERE job_id = $1")
        .bind(job)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET state = 'queued' WHERE id = $1").bind(job).execute(&pool).await.unwrap();
    let d = dispatcher(&pool);
    let n = node(&pool, "n1", host_caps()).await;
    let lease = d.lease(n, 1, Duration::from_secs(2)).await.unwrap().remove(0);
    let lref = LeaseRef { job_id: job, attempt: lease.attempt, lease_token: lease.lease_token };
    let chunk = OutputChunk { stream: Stream::Stdout, seq: 0, data: "approved\n".to_owned() };
    d.output(n, &OutputBatch { lease: lref, chunks: vec![chunk] }).await.unwrap();
    d.finish(n, &FinishRequest { lease: lref, outcome: crate::support::succeeded(10) }).await.unwrap();
    assert!(closed(&pool, task, Duration::from_secs(20)).await, "the decision did not wake the stream");
    let shown: Vec<String> = slack.messages_in("C1", Some(thread)).iter().map(|m| m.shown()).collect();
    assert!(shown.iter().any(|s| s.contains("Succeeded")), "{shown:?}");
    assert!(shown.iter().any(|s| s.contains("approved")), "{shown:?}");
    assert!(slack.rejections().is_empty(), "{:?}", slack.rejections());
}
