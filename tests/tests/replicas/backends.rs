//! Scenario 8: every replica's database connections are killed (`pg_terminate_backend`), then the ingress writers'
//! connections are all held up (a lock on `inbound_events`, so every write waits and the pool has nothing free)
//! while Slack events keep arriving through HAProxy and are retried as Slack does. The errors are clear and
//! bounded — a request that cannot be recorded is answered 503 with `Retry-After` inside Slack's 3-second deadline,
//! never hung and never 200 — and the replicas recover by themselves: same processes, `/readyz` 200, every event
//! acknowledged within Slack's retries, stored once and answered once.
//!
//! Sized for CI: three waves of 12, 12 and 6 events (about 30 s in all).

use std::time::{Duration, Instant};

use cynode_tests::fakes::FakeSlack;
use futures_util::StreamExt as _;

use crate::support::{APPROVER, Deployment, eventually, mention_by};

/// Events in each of the first two waves.
const WAVE: usize = 12;
/// Events that arrive while the writers' pool is exhausted.
const HELD: usize = 6;
/// Slack's deadline for an answer.
const DEADLINE: Duration = Duration::from_secs(3);

fn channel(n: usize) -> String {
    format!("CBACK{n:03}")
}

fn thread(n: usize) -> String {
    format!("17004000{n:02}.000100")
}

fn body(n: usize) -> String {
    mention_by(&format!("UBACK{n:03}"), &format!("EvBACK{n:03}"), &channel(n), &thread(n), "run echo hi")
}

/// Delivers event `n` as Slack does from retry `first` on (a second apart, up to the third retry); every answer's
/// status and latency.
async fn deliver(d: &Deployment, n: usize, first: u32) -> Vec<(u16, Duration)> {
    let mut answers = Vec::new();
    for retry in first..4 {
        let asked = Instant::now();
        let status = d.deliver(&d.cluster.lb_url(), &body(n), retry).await;
        answers.push((status, asked.elapsed()));
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    answers
}

/// Delivers events `range` at once; panics unless each was acknowledged and every answer came inside the deadline.
async fn wave(d: &Deployment, range: std::ops::Range<usize>, first: u32) -> usize {
    let all: Vec<(usize, Vec<(u16, Duration)>)> = futures_util::stream::iter(range)
        .map(|n| async move { (n, deliver(d, n, first).await) })
        .buffer_unordered(WAVE)
        .collect()
        .await;
    for (n, answers) in &all {
        assert_eq!(
            answers.last().map(|a| a.0),
            Some(200),
            "event {n} acknowledged: {answers:?}\n{}",
            d.cluster.all_output()
        );
        assert!(answers.iter().all(|(_, t)| *t < DEADLINE), "event {n} answered within {DEADLINE:?}: {answers:?}");
        assert!(answers.iter().all(|(s, _)| matches!(s, 200 | 503)), "event {n}: only 200 or 503: {answers:?}");
    }
    all.iter().map(|(_, a)| a.len() - 1).sum()
}

async fn ready(d: &Deployment, i: usize) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/readyz", d.cluster.url(i)))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn cards(d: &Deployment, upto: usize) {
    let slack = &d.slack;
    eventually(
        Duration::from_secs(60),
        "a card in every thread",
        || async { (0..upto).all(|n| !slack.messages_in(&channel(n), Some(&thread(n))).is_empty()).then_some(()) },
        || d.cluster.all_output(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backends_and_an_exhausted_pool_give_clear_bounded_errors_and_recover_without_a_restart() {
    let _serial = crate::support::serial().await;
    let policy = format!("policy:\n  - {{when: {{template: [busybox]}}, approvers: ['{APPROVER}']}}\n");
    let d = Deployment::start(FakeSlack::start().await, &policy, &[], false).await;
    let pids: Vec<Option<u32>> = (0..3).map(|i| d.cluster.pid(i)).collect();
    let db = &d.cluster.db.pool;
    assert_eq!(wave(&d, 0..WAVE, 0).await, 0, "a quiet start needs no retry");
    cards(&d, WAVE).await;

    // Every connection of every replica is killed by the server.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend') k",
    )
    .fetch_one(db)
    .await
    .expect("terminate");
    assert!(killed >= 3, "the replicas' connections were killed: {killed}");
    let retried = wave(&d, WAVE..2 * WAVE, 0).await;
    cards(&d, 2 * WAVE).await;
    eprintln!("backends: {killed} connections killed; the next {WAVE} events needed {retried} retries");

    // The writers' pool exhausted: every write waits on the lock, and the requests behind it on a connection.
    let mut lock = db.begin().await.expect("begin");
    sqlx::query("LOCK TABLE inbound_events IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.expect("lock");
    let held: Vec<(u16, Duration)> = futures_util::stream::iter(2 * WAVE..2 * WAVE + HELD)
        .map(|n| {
            let d = &d;
            async move {
                let asked = Instant::now();
                (d.deliver(&d.cluster.lb_url(), &body(n), 0).await, asked.elapsed())
            }
        })
        .buffer_unordered(HELD)
        .collect()
        .await;
    assert!(held.iter().all(|(s, t)| *s == 503 && *t < DEADLINE), "503 inside the deadline while held: {held:?}");
    lock.rollback().await.expect("unlock");
    // Slack retries them; now they are recorded.
    wave(&d, 2 * WAVE..2 * WAVE + HELD, 1).await;
    cards(&d, 2 * WAVE + HELD).await;

    // Recovered by themselves: the same processes, ready, and everything once.
    assert_eq!((0..3).map(|i| d.cluster.pid(i)).collect::<Vec<_>>(), pids, "no replica restarted");
    for i in 0..3 {
        assert_eq!(ready(&d, i).await, 200, "replica {i} ready again");
    }
    let (events, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT delivery_id) FROM inbound_events")
            .fetch_one(db)
            .await
            .expect("rows");
    let all = i64::try_from(2 * WAVE + HELD).expect("small");
    assert_eq!((events, distinct), (all, all), "every acknowledged event stored once");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in 0..2 * WAVE + HELD {
        assert_eq!(d.slack.messages_in(&channel(n), Some(&thread(n))).len(), 1, "one card in thread {n}");
    }
    let logs = d.cluster.all_output();
    assert!(logs.contains("answering 503"), "the refusals are logged with their reason");
    assert!(!logs.contains("xoxb-"), "no token in the logs");
}
