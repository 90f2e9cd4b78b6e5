//! Scenario 3: a replica is killed (SIGKILL) while its outbound webhook deliveries are in flight. A subscription
//! (created with `cynode subs add` through the load balancer) sends `task.created` and `approval.requested` to a
//! real receiver that verifies every request with two independent Standard Webhooks verifiers and answers slowly,
//! so each replica's deliverer always has requests open there. Slack events keep arriving through HAProxy before,
//! during and after the kill. The victim is the replica with the most requests open at the receiver (found from the
//! connections' owners); it is frozen for the instant it takes to note which deliveries it has in flight, then
//! killed. Its claims lapse (the deliverer's 15 s timeout + 10 s margin, the production values) and the other
//! replicas send those deliveries again.
//!
//! Checked at the receiver and in the database, never by the code under test: every event has exactly one delivery
//! row, `delivered`, with nothing left pending or claimed; every one reached the receiver, signed validly under
//! both verifiers, with the row's `webhook-id`, type and data; a `webhook-id` arrives more than once only if it was
//! in flight on the killed replica, then always with the same body, and each of those did arrive again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cynode_tests::fakes::FakeSlack;
use cynode_tests::process::run_to_end;
use cynode_tests::webhooks::{Hit, WebhookReceiver};
use serde_json::Value;
use uuid::Uuid;

use crate::support::{APPROVER, Deployment, eventually, mention_by};

/// Slack events (each: a task and an approval request, so two deliveries). Sized for a 2-core CI machine.
const EVENTS: usize = 40;
/// Pause between events: 10 a second, before, during and after the kill.
const EVERY: Duration = Duration::from_millis(100);
/// How long the receiver takes to answer: the window in which a killed replica leaves a delivery unanswered.
const SLOW: Duration = Duration::from_millis(1_500);
/// The victim must have at least this many requests open at the receiver when it is killed.
const IN_FLIGHT: usize = 3;

fn channel(n: usize) -> String {
    format!("CHOOK{n:03}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_with_deliveries_in_flight_leaves_them_to_the_others_under_the_same_webhook_id() {
    let _serial = crate::support::serial().await;
    let rx = WebhookReceiver::start().await;
    rx.set_delay(SLOW);
    // The jobs wait for an approval nobody gives: each event makes a task and an approval request, nothing runs.
    let policy = format!("policy:\n  - {{when: {{template: [busybox]}}, approvers: ['{APPROVER}']}}\n");
    let env = [("CYNODE__OUTBOUND__ALLOW_CIDRS", "127.0.0.0/8")];
    let mut d = Deployment::start(FakeSlack::start().await, &policy, &env, false).await;
    let lb = d.cluster.lb_url();

    // An admin token from the CLI, then the subscription through the load balancer.
    let db_env = [("DATABASE_URL", d.cluster.db.url.as_str())];
    let (code, token, err) =
        run_to_end("cynode", &["admin", "token", "create", "ops", "--role", "admin"], &db_env).await;
    assert_eq!(code, 0, "{err}");
    let cli = [("CYNODE_TOKEN", token.trim()), ("CYNODE_URL", lb.as_str())];
    let events = "task.created,approval.requested";
    let (code, secret, err) =
        run_to_end("cynode", &["subs", "add", &rx.url(), "--events", events, "--name", "sink"], &cli).await;
    assert_eq!(code, 0, "{err}");
    rx.set_secret(secret.trim());

    // The flow: one event every EVERY through HAProxy, each acknowledged (retried as Slack would until it is).
    let deliverer = d.deliverer();
    let lb_flow = lb.clone();
    let sent = Arc::new(AtomicUsize::new(0));
    let sent_flow = sent.clone();
    let flow = tokio::spawn(async move {
        let mut unacked = Vec::new();
        for n in 0..EVENTS {
            let body = mention_by(
                &format!("UHOOK{n:03}"),
                &format!("EvHOOK{n:04}"),
                &channel(n),
                "1700300000.000100",
                "run echo hook",
            );
            let mut status = 0;
            for retry in 0..4 {
                status = deliverer.deliver(&lb_flow, &body, retry).await;
                if status == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if status != 200 {
                unacked.push(n);
            }
            sent_flow.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(EVERY).await;
        }
        unacked
    });

    // The victim: the first replica with IN_FLIGHT requests open at the receiver.
    let cluster = &d.cluster;
    let victim = eventually(
        Duration::from_secs(60),
        "a replica with deliveries in flight",
        || async {
            let mut open: HashMap<usize, usize> = HashMap::new();
            for hit in rx.in_flight() {
                if let Some(i) = cluster.replica_of_peer(hit.peer) {
                    *open.entry(i).or_default() += 1;
                }
            }
            open.into_iter().filter(|(_, n)| *n >= IN_FLIGHT).max_by_key(|(_, n)| *n).map(|(i, _)| i)
        },
        || format!("in flight: {:?}\n{}", rx.in_flight().len(), cluster.all_output()),
    )
    .await;
    // Frozen, it sends and records nothing more. A moment for what it already wrote to reach the receiver; then
    // the deliveries it interrupts are those it sent whose rows are still pending (it never records them now).
    d.cluster.pause(victim);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pending: HashSet<String> = sqlx::query_scalar("SELECT msg_id FROM deliveries WHERE state = 'pending'")
        .fetch_all(&d.cluster.db.pool)
        .await
        .expect("pending deliveries")
        .into_iter()
        .collect();
    let interrupted: HashSet<String> = rx
        .hits()
        .into_iter()
        .filter(|h| pending.contains(&h.webhook_id) && d.cluster.replica_of_peer(h.peer) == Some(victim))
        .map(|h| h.webhook_id)
        .collect();
    let killed_at = Instant::now();
    let before_kill = sent.load(Ordering::SeqCst);
    d.cluster.kill(victim).await;
    assert!(!interrupted.is_empty(), "the killed replica had deliveries in flight");
    eprintln!(
        "webhooks: replica {victim} killed with {} deliveries in flight, after {before_kill} of {EVENTS} events",
        interrupted.len()
    );

    let unacked = flow.await.expect("the flow");
    assert!(unacked.is_empty(), "events never acknowledged: {unacked:?}\n{}", d.cluster.all_output());

    // Every delivery settles; the interrupted ones after their claims lapse.
    let pool = &d.cluster.db.pool;
    let expected = i64::try_from(2 * EVENTS).expect("small");
    eventually(
        Duration::from_secs(90),
        "every delivery delivered",
        || async {
            // A copy of a delivery that was not interrupted is wrong whenever it comes: fail at once.
            let copied = copied_without_a_kill(&rx.hits(), &interrupted);
            assert!(copied.is_empty(), "sent again though not in flight on the killed replica: {copied:?}");
            let (all, delivered): (i64, i64) =
                sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE state = 'delivered') FROM deliveries")
                    .fetch_one(pool)
                    .await
                    .ok()?;
            (all == expected && delivered == all).then_some(())
        },
        || format!("receiver hits {}, in flight {}\n{}", rx.hits().len(), rx.in_flight().len(), d.cluster.all_output()),
    )
    .await;
    // A moment more for anything sent twice by mistake to arrive.
    tokio::time::sleep(SLOW + Duration::from_millis(500)).await;

    check(&d, &rx, &interrupted, killed_at).await;
    // The killed replica comes back and sends nothing again.
    let before = rx.hits().len();
    d.cluster.restart(victim).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rx.hits().len(), before, "the restarted replica sent nothing again");
}

/// The `webhook-id`s received more than once that were not in flight on the killed replica.
fn copied_without_a_kill(hits: &[Hit], interrupted: &HashSet<String>) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for h in hits {
        *seen.entry(h.webhook_id.as_str()).or_default() += 1;
    }
    let mut copied: Vec<String> =
        seen.into_iter().filter(|(id, n)| *n > 1 && !interrupted.contains(*id)).map(|(id, _)| id.to_owned()).collect();
    copied.sort();
    copied
}

/// A delivery row: (msg_id, event_type, subject, payload, state, attempts, claimed).
type Row = (String, String, Option<Uuid>, Value, String, i32, bool);

async fn check(d: &Deployment, rx: &WebhookReceiver, interrupted: &HashSet<String>, killed_at: Instant) {
    let pool = &d.cluster.db.pool;
    assert!(rx.refused().is_empty(), "refused by the receiver: {:?}", rx.refused());
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT msg_id, event_type, subject, payload, state, attempts, claim_token IS NOT NULL FROM deliveries",
    )
    .fetch_all(pool)
    .await
    .expect("deliveries");
    // One delivery per event: per task, and per approval request.
    let tasks: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM tasks").fetch_all(pool).await.expect("tasks");
    let approvals: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM approvals").fetch_all(pool).await.expect("approvals");
    assert_eq!((tasks.len(), approvals.len()), (EVENTS, EVENTS), "(tasks, approvals)");
    let subjects = |kind: &str| -> Vec<Uuid> {
        let mut v: Vec<Uuid> = rows.iter().filter(|r| r.1 == kind).filter_map(|r| r.2).collect();
        v.sort();
        v
    };
    let (mut tasks, mut approvals) = (tasks, approvals);
    tasks.sort();
    approvals.sort();
    assert_eq!(subjects("task.created"), tasks, "one task.created delivery per task");
    assert_eq!(subjects("approval.requested"), approvals, "one approval.requested delivery per approval");
    let unsettled: Vec<&Row> = rows.iter().filter(|r| r.4 != "delivered" || r.6).collect();
    assert!(unsettled.is_empty(), "deliveries not settled: {unsettled:#?}");
    let ids: HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "every delivery has a webhook-id of its own");

    // At the receiver: every delivery, with its row's id, type and data; copies only of the interrupted ones.
    let hits = rx.hits();
    let mut by_id: BTreeMap<&str, Vec<&Hit>> = BTreeMap::new();
    for h in &hits {
        by_id.entry(h.webhook_id.as_str()).or_default().push(h);
    }
    let unknown: Vec<&&str> = by_id.keys().filter(|id| !ids.contains(**id)).collect();
    assert!(unknown.is_empty(), "webhook-ids no delivery row has (an id that changed between attempts?): {unknown:?}");
    for (msg_id, kind, _, payload, _, attempts, _) in &rows {
        let copies = by_id.get(msg_id.as_str()).unwrap_or_else(|| panic!("{msg_id} ({kind}) never arrived"));
        let json = copies[0].json();
        assert_eq!((&json["type"], &json["data"]), (&Value::from(kind.as_str()), payload), "{msg_id}");
        assert!(copies.iter().all(|c| c.body == copies[0].body), "{msg_id}: every copy has the same body");
        if interrupted.contains(msg_id) {
            assert!(copies.len() >= 2 && *attempts >= 2, "{msg_id} was in flight on the killed replica: sent again");
        } else {
            assert_eq!(copies.len(), 1, "{msg_id} was not in flight on the killed replica: sent once");
        }
    }
    let resent: Vec<Duration> = interrupted
        .iter()
        .filter_map(|id| by_id.get(id.as_str())?.get(1).map(|h| h.at.saturating_duration_since(killed_at)))
        .collect();
    eprintln!(
        "webhooks: {} deliveries ({} hits), {} interrupted, sent again {:?}–{:?} after the kill",
        rows.len(),
        hits.len(),
        interrupted.len(),
        resent.iter().min().copied().unwrap_or_default(),
        resent.iter().max().copied().unwrap_or_default()
    );
}
