//! Scenario 1, the retry storm: every Slack event is delivered three times at once — the original and Slack's two
//! retries (`X-Slack-Retry-Num` 1 and 2, reason `http_timeout`) — each to a different replica. Exactly one inbound
//! row, task, job and thread reply per event; every event acknowledged with 200 is stored.
//!
//! Each event comes from a user of its own in a channel of its own, and the install's ingress budget is raised
//! above the storm, so every event is admitted (an event over a rate limit is acknowledged and answered with a
//! notice instead, by design). The jobs need an approval nobody gives, so nothing runs: the reply is the approval card, posted once per thread
//! (one channel per event, so Slack's per-channel post rate is never the bottleneck).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt as _;

use crate::support::{APPROVER, Deployment, eventually, mention_by};
use cynode_tests::fakes::FakeSlack;

/// Events in the storm (each delivered three times). Sized for a 2-core CI machine.
const EVENTS: usize = 1_000;
/// Deliveries in flight at once.
const CONCURRENCY: usize = 48;

fn channel(n: usize) -> String {
    format!("CSTORM{n:04}")
}

fn thread(n: usize) -> String {
    format!("1700100{n:03}.000100")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_storm_over_three_replicas_makes_one_task_one_job_and_one_reply_per_event() {
    let _serial = crate::support::serial().await;
    let policy = format!("policy:\n  - {{when: {{template: [busybox]}}, approvers: ['{APPROVER}']}}\n");
    // One user and one channel per event (the per-user and per-channel limits are not what this is about), and an
    // install budget above the storm's 3,000 deliveries in a few seconds: every event is admitted, so every ack
    // must mean "stored".
    let env =
        [("CYNODE__LIMITS__RATE__INSTALL__PER_MINUTE", "600000"), ("CYNODE__LIMITS__RATE__INSTALL__BURST", "10000")];
    let d = Deployment::start(FakeSlack::start().await, &policy, &env, false).await;
    let urls: Vec<String> = (0..3).map(|i| d.cluster.url(i)).collect();
    let started = std::time::Instant::now();

    let deliveries = (0..EVENTS).flat_map(|n| (0..3u32).map(move |copy| (n, copy)));
    let answers: Vec<(usize, u16)> = futures_util::stream::iter(deliveries)
        .map(|(n, copy)| {
            let (event, user) = (format!("EvSTORM{n:05}"), format!("USTORM{n:04}"));
            let body = mention_by(&user, &event, &channel(n), &thread(n), &format!("run echo storm-{n}"));
            // Copy k of event n goes to replica (n + k) % 3: the three copies land on three different replicas.
            let url = urls[(n + copy as usize) % 3].clone();
            let d = &d;
            async move { (n, d.deliver(&url, &body, copy).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    eprintln!("storm: {} deliveries answered in {:?}", answers.len(), started.elapsed());
    let mut by_event: HashMap<usize, bool> = HashMap::new();
    for (n, status) in &answers {
        *by_event.entry(*n).or_default() |= *status == 200;
    }
    let refused = answers.iter().filter(|(_, s)| *s != 200).count();
    // An event none of whose three copies was acknowledged (a replica answered 503 under load) gets Slack's third
    // retry, through the load balancer, until acknowledged.
    let unacked: Vec<usize> = by_event.iter().filter(|(_, ok)| !**ok).map(|(n, _)| *n).collect();
    for n in &unacked {
        let (event, user) = (format!("EvSTORM{n:05}"), format!("USTORM{n:04}"));
        let body = mention_by(&user, &event, &channel(*n), &thread(*n), &format!("run echo storm-{n}"));
        for _ in 0..5 {
            if d.deliver(&d.cluster.lb_url(), &body, 3).await == 200 {
                by_event.insert(*n, true);
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let acked = by_event.values().filter(|ok| **ok).count();
    eprintln!("storm: {refused} deliveries refused, {} events needed the third retry", unacked.len());
    assert_eq!(acked, EVENTS, "every event acknowledged within Slack's retries");

    // Every acked event is stored, once.
    let stored: Vec<(String, i64)> =
        sqlx::query_as("SELECT delivery_id, count(*) FROM inbound_events GROUP BY delivery_id")
            .fetch_all(&d.cluster.db.pool)
            .await
            .expect("inbound");
    assert_eq!(stored.len(), EVENTS, "one inbound row per event");
    assert!(stored.iter().all(|(_, c)| *c == 1), "no event stored twice");

    // One thread reply per event: wait until every thread has its card, then a little longer for any duplicate.
    let slack = &d.slack;
    eventually(
        Duration::from_secs(120),
        "an approval card in every thread",
        || async { (0..EVENTS).all(|n| !slack.messages_in(&channel(n), Some(&thread(n))).is_empty()).then_some(()) },
        || {
            let missing = (0..EVENTS).filter(|n| slack.messages_in(&channel(*n), Some(&thread(*n))).is_empty()).count();
            format!("{missing} threads without a reply\n{}", d.cluster.all_output())
        },
    )
    .await;
    eprintln!("storm: a reply in every thread {:?} after the first delivery", started.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in 0..EVENTS {
        let replies = slack.messages_in(&channel(n), Some(&thread(n)));
        assert_eq!(replies.len(), 1, "exactly one reply in thread {n}: {replies:#?}");
    }

    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tasks), (SELECT count(DISTINCT inbound_id) FROM tasks),
                (SELECT count(*) FROM jobs), (SELECT count(DISTINCT task_id) FROM jobs)",
    )
    .fetch_one(&d.cluster.db.pool)
    .await
    .expect("counts");
    let events = i64::try_from(EVENTS).expect("small");
    assert_eq!(counts, (events, events, events, events), "(tasks, inbound ids, jobs, tasks with jobs)");
    assert_eq!(slack.count_429(), 0, "no call ran into Slack's rate limits");
    assert!(slack.rejections().is_empty(), "{:?}", slack.rejections());
}
