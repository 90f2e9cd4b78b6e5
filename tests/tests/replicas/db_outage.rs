//! Scenario 7, PostgreSQL going away under load: every replica's connections to the database are cut and new ones
//! refused for a few seconds (what a database restart looks like from the replicas; the shared test server itself
//! is not restarted, other test processes use it), while Slack events keep arriving through HAProxy and are retried
//! as Slack does. While the database is away, ingress answers 503 inside Slack's 3-second deadline and `/readyz`
//! says so; within seconds of its return every replica is ready again without a restart, and every event ever
//! acknowledged with 200 is stored, once, with its task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cynode_tests::fakes::FakeSlack;
use cynode_tests::tcp_proxy::Link;

use crate::support::{APPROVER, Deployment, eventually, mention_by};

/// Events sent, about 25 a second.
const EVENTS: usize = 300;
const GAP: Duration = Duration::from_millis(40);
/// When the database goes away, and for how long.
const OUTAGE_AT: Duration = Duration::from_secs(3);
const OUTAGE: Duration = Duration::from_secs(5);
/// Slack's deadline for an answer.
const DEADLINE: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct Log {
    /// Per event: every (status, latency, sent at) of its deliveries.
    answers: HashMap<usize, Vec<(u16, Duration, Duration)>>,
}

async fn ready(d: &Deployment, i: usize) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/readyz", d.cluster.url(i)))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_answers_503_while_the_database_is_away_and_loses_no_acknowledged_event() {
    let _serial = crate::support::serial().await;
    let policy = format!("policy:\n  - {{when: {{template: [busybox]}}, approvers: ['{APPROVER}']}}\n");
    let d = Arc::new(Deployment::start(FakeSlack::start().await, &policy, &[], false).await);
    let log = Arc::new(Mutex::new(Log::default()));
    let t0 = Instant::now();

    let mut senders = Vec::new();
    let (mut phase, mut down_at, mut up_at) = (0, Duration::ZERO, Duration::ZERO);
    for n in 0..EVENTS {
        let (dep, log) = (d.clone(), log.clone());
        senders.push(tokio::spawn(async move {
            let body = mention_by(
                &format!("UOUT{n:04}"),
                &format!("EvOUT{n:05}"),
                &format!("COUT{n:04}"),
                &format!("1700300{n:03}.000100"),
                &format!("run echo outage-{n}"),
            );
            // Slack retries three times (after 1 min, 5 min and 30 min; compressed here to 2 s apart).
            for retry in 0..4 {
                let sent = t0.elapsed();
                let start = Instant::now();
                let status = dep.deliver(&dep.cluster.lb_url(), &body, retry).await;
                log.lock().expect("log").answers.entry(n).or_default().push((status, start.elapsed(), sent));
                if status == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }));
        tokio::time::sleep(GAP).await;
        let now = t0.elapsed();
        if phase == 0 && now >= OUTAGE_AT {
            d.cluster.db_links(Link::Down);
            down_at = now;
            phase = 1;
        }
        if phase == 1 && now >= down_at + Duration::from_secs(2) {
            for i in 0..3 {
                assert_eq!(ready(&d, i).await, 503, "replica {i} not ready while the database is away");
            }
            phase = 2;
        }
        if phase == 2 && now >= down_at + OUTAGE {
            d.cluster.db_links(Link::Up);
            up_at = now;
            phase = 3;
        }
    }
    assert_eq!(phase, 3, "the outage began and ended while events were sent");
    for s in senders {
        s.await.expect("sender");
    }
    let restored = up_at;
    // Every replica ready again by itself.
    for i in 0..3 {
        eventually(
            Duration::from_secs(15),
            &format!("replica {i} ready again"),
            || async { (ready(&d, i).await == 200).then_some(()) },
            || d.cluster.all_output(),
        )
        .await;
    }

    let log = std::mem::take(&mut *log.lock().expect("log"));
    let all: Vec<(u16, Duration, Duration)> = log.answers.values().flatten().copied().collect();
    let slow: Vec<_> = all.iter().filter(|(_, took, _)| *took > DEADLINE).collect();
    assert!(slow.is_empty(), "every answer inside Slack's deadline: {slow:?}");
    let during = |at: &Duration| *at > down_at + Duration::from_millis(500) && *at < restored;
    let unavailable = all.iter().filter(|(s, _, at)| during(at) && *s == 503).count();
    let acked_during = all.iter().filter(|(s, _, at)| during(at) && *s == 200).count();
    assert!(unavailable > 0, "the outage was seen as 503s");
    assert_eq!(acked_during, 0, "nothing acknowledged while the database was away");
    let odd: Vec<_> = all.iter().filter(|(s, _, _)| ![200, 503].contains(s)).collect();
    assert!(odd.is_empty(), "answers are 200 or 503 only: {odd:?}");
    // Recovered: the deliveries sent a few seconds after the return are acknowledged.
    let late_refusals = all.iter().filter(|(s, _, at)| *at > restored + Duration::from_secs(5) && *s != 200).count();
    assert_eq!(late_refusals, 0, "ingress recovered within 5 s of the database's return");

    let acked: Vec<String> = (0..EVENTS)
        .filter(|n| log.answers.get(n).is_some_and(|a| a.iter().any(|(s, _, _)| *s == 200)))
        .map(|n| format!("EvOUT{n:05}"))
        .collect();
    let stored: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT i.delivery_id, count(DISTINCT i.id), count(t.id) FROM inbound_events i
         LEFT JOIN tasks t ON t.inbound_id = i.id GROUP BY i.delivery_id",
    )
    .fetch_all(&d.cluster.db.pool)
    .await
    .expect("inbound");
    let stored: HashMap<String, (i64, i64)> = stored.into_iter().map(|(k, a, b)| (k, (a, b))).collect();
    let lost: Vec<&String> = acked.iter().filter(|e| !stored.contains_key(*e)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(stored.values().all(|c| *c == (1, 1)), "one row and one task per stored event");
    eprintln!(
        "db outage: {} deliveries, {unavailable} answered 503 during the outage, {} of {EVENTS} events acked, worst answer {:?}",
        all.len(),
        acked.len(),
        all.iter().map(|(_, took, _)| *took).max().unwrap_or_default()
    );
}
