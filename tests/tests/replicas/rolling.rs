//! Scenario 6, a rolling restart under load: Slack events arrive through HAProxy at a steady rate (retried as Slack
//! does when not acknowledged) while each replica in turn is stopped with SIGTERM (a graceful shutdown) and
//! started again on its port. No acknowledged event is lost, none is answered twice.
//!
//! The rate is sized for a 2-core CI machine running three debug-build replicas and the test itself (40 events a
//! second, not the 500 of a production-sized machine); the invariants do not depend on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cynode_tests::fakes::FakeSlack;

use crate::support::{APPROVER, Deployment, eventually, mention_by};

/// 40 events a second for 20 s: the roll of three replicas fits inside.
const EVENTS: usize = 800;
const GAP: Duration = Duration::from_millis(25);

fn channel(n: usize) -> String {
    format!("CROLL{n:04}")
}

fn thread(n: usize) -> String {
    format!("1700400{n:04}.000100")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_no_acknowledged_event_and_answers_none_twice() {
    let _serial = crate::support::serial().await;
    let policy = format!("policy:\n  - {{when: {{template: [busybox]}}, approvers: ['{APPROVER}']}}\n");
    let env =
        [("CYNODE__LIMITS__RATE__INSTALL__PER_MINUTE", "600000"), ("CYNODE__LIMITS__RATE__INSTALL__BURST", "10000")];
    let mut d = Deployment::start(FakeSlack::start().await, &policy, &env, false).await;
    let lb = d.cluster.lb_url();
    let deliverer = d.deliverer();
    let acked: Arc<Mutex<HashMap<usize, u16>>> = Arc::default();
    let t0 = Instant::now();

    let sender = {
        let (deliverer, acked, lb) = (deliverer.clone(), acked.clone(), lb.clone());
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for n in 0..EVENTS {
                let (deliverer, acked, lb) = (deliverer.clone(), acked.clone(), lb.clone());
                tasks.push(tokio::spawn(async move {
                    let body = mention_by(
                        &format!("UROLL{n:04}"),
                        &format!("EvROLL{n:05}"),
                        &channel(n),
                        &thread(n),
                        &format!("run echo roll-{n}"),
                    );
                    let mut last = 0;
                    for retry in 0..4 {
                        last = deliverer.deliver(&lb, &body, retry).await;
                        if last == 200 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    acked.lock().expect("acked").insert(n, last);
                }));
                tokio::time::sleep(GAP).await;
            }
            for t in tasks {
                t.await.expect("delivery");
            }
        })
    };
    // Roll: each replica in turn, gracefully, while events arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..3 {
        let code = d.cluster.terminate(i).await;
        assert_eq!(code, Some(0), "replica {i} shut down cleanly:\n{}", d.cluster.output(i));
        d.cluster.restart(i).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    let rolled = t0.elapsed();
    sender.await.expect("sender");

    let acked = acked.lock().expect("acked").clone();
    let statuses: HashMap<u16, usize> = acked.values().fold(HashMap::new(), |mut m, s| {
        *m.entry(*s).or_default() += 1;
        m
    });
    let ok: Vec<usize> = acked.iter().filter(|(_, s)| **s == 200).map(|(n, _)| *n).collect();
    assert_eq!(ok.len(), EVENTS, "every event acknowledged within Slack's retries: {statuses:?}");
    let stored: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT i.delivery_id, count(DISTINCT i.id), count(t.id) FROM inbound_events i
         LEFT JOIN tasks t ON t.inbound_id = i.id GROUP BY i.delivery_id",
    )
    .fetch_all(&d.cluster.db.pool)
    .await
    .expect("inbound");
    assert_eq!(stored.len(), EVENTS, "every acknowledged event stored");
    assert!(stored.iter().all(|(_, rows, tasks)| (*rows, *tasks) == (1, 1)), "one row and one task per event");

    let slack = &d.slack;
    eventually(
        Duration::from_secs(120),
        "a reply in every thread",
        || async { (0..EVENTS).all(|n| !slack.messages_in(&channel(n), Some(&thread(n))).is_empty()).then_some(()) },
        || d.cluster.all_output(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in 0..EVENTS {
        let replies = slack.messages_in(&channel(n), Some(&thread(n)));
        assert_eq!(replies.len(), 1, "exactly one reply in thread {n}: {replies:#?}");
    }
    assert_eq!(slack.count_429(), 0);
    assert!(slack.rejections().is_empty(), "{:?}", slack.rejections());
    eprintln!("rolling restart: {EVENTS} events over {:?} (all three replicas rolled by {rolled:?})", t0.elapsed());
}
