//! The happy paths: transactional emit, exactly-one delivery per claim, restarts, racing replicas, rotation.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cynode_orchestrator::outbox::{self, DelivererSettings, EventType};
use serde_json::json;
use uuid::Uuid;

use super::receiver::Receiver;
use super::{emit, env, eventually, fast, rows, start, subscribe};

#[tokio::test]
async fn rollback_delivers_nothing_and_commit_delivers_once_signed() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (sub, secret) = subscribe(&env, "audit", &rx.url(), &["task.created"]).await;
    rx.trust(&secret);
    let running = start(&env, fast());

    let mut tx = env.db.pool.begin().await.expect("tx");
    let n =
        outbox::emit(&mut tx, EventType::TaskCreated, Uuid::now_v7(), &json!({"task_id": "t1"})).await.expect("emit");
    assert_eq!(n, 1);
    tx.rollback().await.expect("rollback");
    running.deliverer.announce();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(rx.hits().is_empty(), "a rolled-back event was delivered");
    assert!(rows(&env.db.pool).await.is_empty());

    let subject = Uuid::now_v7();
    let mut tx = env.db.pool.begin().await.expect("tx");
    outbox::emit(&mut tx, EventType::TaskCreated, subject, &json!({"task_id": "t2"})).await.expect("emit");
    tx.commit().await.expect("commit");
    running.deliverer.announce();
    rx.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "exactly one request");
    let hit = &hits[0];
    assert!(hit.verified, "signature must verify with the standardwebhooks crate");
    assert_eq!(hit.header("content-type"), "application/json");
    assert!(hit.header("user-agent").starts_with("CyNode-Webhooks/"), "{}", hit.header("user-agent"));
    let (msg_id, state, attempts, stored_subject): (String, String, i32, Option<Uuid>) =
        sqlx::query_as("SELECT msg_id, state, attempts, subject FROM deliveries WHERE subscription_id = $1")
            .bind(sub.id)
            .fetch_one(&env.db.pool)
            .await
            .expect("row");
    assert!(msg_id.starts_with("msg_"));
    assert_eq!(hit.msg_id(), msg_id);
    assert_eq!((state.as_str(), attempts, stored_subject), ("delivered", 1, Some(subject)));
    assert_eq!(hit.body["type"], "task.created");
    assert_eq!(hit.body["data"], json!({"task_id": "t2"}));
    let ts = hit.body["timestamp"].as_str().expect("timestamp");
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
}

#[tokio::test]
async fn emitted_before_a_crash_is_delivered_after_restart_and_stale_claims_are_retried() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (_, secret) = subscribe(&env, "s", &rx.url(), &[]).await;
    rx.trust(&secret);
    // Committed while no deliverer runs (the gateway died right after the commit).
    assert_eq!(emit(&env.db.pool, EventType::JobFinished, json!({"n": 1})).await, 1);
    assert_eq!(emit(&env.db.pool, EventType::JobFinished, json!({"n": 2})).await, 1);
    // The second was claimed by a replica that crashed mid-send: its claim runs for another 600 ms.
    sqlx::query(
        "UPDATE deliveries SET claim_token = gen_random_uuid(), attempts = 1,
             next_attempt_at = now() + interval '600 milliseconds'
         WHERE payload->>'n' = '2'",
    )
    .execute(&env.db.pool)
    .await
    .expect("stale claim");
    let t0 = Instant::now();
    let _running = start(&env, fast());
    let hits = rx.wait_for(2, Duration::from_secs(5)).await;
    let late = hits.iter().find(|h| h.body["data"]["n"] == 2).expect("the stale claim was retried");
    assert!(late.at - t0 >= Duration::from_millis(450), "retried only after the claim expired");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 2, "each delivered once");
    assert!(hits.iter().all(|h| h.verified));
    let attempts: Vec<i32> = rows(&env.db.pool).await.iter().map(|r| r.1).collect();
    assert_eq!(attempts, [1, 2]);
}

#[tokio::test]
async fn two_racing_deliverers_send_each_delivery_exactly_once() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (_, a) = subscribe(&env, "a", &rx.url(), &[]).await;
    let (_, b) = subscribe(&env, "b", &format!("{}?b", rx.url()), &[]).await;
    rx.trust(&a);
    rx.trust(&b);
    // A long claim, so only SKIP LOCKED keeps the two apart (an expired claim is retried by design).
    let settings = DelivererSettings { claim_margin: Duration::from_secs(30), ..fast() };
    let one = start(&env, settings.clone());
    let two = start(&env, settings);
    let events = 150;
    let pool = env.db.pool.clone();
    let emitters: Vec<_> = (0..3)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for i in 0..events / 3 {
                    emit(&pool, EventType::JobStarted, json!({"w": w, "i": i})).await;
                }
            })
        })
        .collect();
    for e in emitters {
        e.await.expect("emitter");
        one.deliverer.announce();
        two.deliverer.announce();
    }
    let hits = rx.wait_for(2 * events, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits = if rx.hits().len() > hits.len() { rx.hits() } else { hits };
    let ids: HashSet<&str> = hits.iter().map(|h| h.msg_id()).collect();
    assert_eq!(hits.len(), 2 * events, "no delivery sent twice");
    assert_eq!(ids.len(), 2 * events);
    assert!(hits.iter().all(|h| h.verified));
    let r = rows(&env.db.pool).await;
    assert!(r.iter().all(|(state, attempts, ..)| state == "delivered" && *attempts == 1), "{r:?}");
}

#[tokio::test]
async fn rotation_signs_with_both_secrets_until_the_grace_period_ends() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (sub, old) = subscribe(&env, "rot", &rx.url(), &[]).await;
    let rotated = env.subs.rotate_secret("test", sub.id, None, Duration::from_secs(3)).await.expect("rotate");
    let new = secrecy::ExposeSecret::expose_secret(&rotated.secret).to_string();
    assert_ne!(new, old);
    let shown = env.subs.get(sub.id).await.expect("get");
    assert_eq!(shown.rotation_ends_at, Some(rotated.previous_valid_until));
    rx.trust(&old);
    rx.trust(&new);
    let running = start(&env, fast());

    emit(&env.db.pool, EventType::TaskCreated, json!({"during": "grace"})).await;
    running.deliverer.announce();
    let hit = rx.wait_for(1, Duration::from_secs(5)).await.remove(0);
    let sigs = hit.signatures();
    assert_eq!(sigs.len(), 2, "one signature per current secret: {sigs:?}");
    assert!(hit.verifies_with(&new, &sigs[0]), "the new secret's signature comes first and verifies");
    assert!(hit.verifies_with(&old, &sigs[1]), "the old secret still verifies during the grace period");
    assert!(!hit.verifies_with(&old, &sigs[0]));

    eventually(Duration::from_secs(5), "grace period over", || async {
        env.subs.get(sub.id).await.expect("get").rotation_ends_at.is_none()
    })
    .await;
    emit(&env.db.pool, EventType::TaskCreated, json!({"during": "after"})).await;
    running.deliverer.announce();
    let hit = rx.wait_for(2, Duration::from_secs(5)).await.remove(1);
    let sigs = hit.signatures();
    assert_eq!(sigs.len(), 1, "{sigs:?}");
    assert!(hit.verifies_with(&new, &sigs[0]));
    assert!(!hit.verifies_with(&old, &sigs[0]));
}

#[tokio::test]
async fn bootstrapped_subscriptions_deliver_with_their_secret() {
    use cynode_orchestrator::bootstrap::{BootstrapFile, import};
    let env = env().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rx = Receiver::start().await;
    rx.trust(secret);
    let yaml = format!(
        "subscriptions:\n  - name: from-file\n    url: {}\n    events: [job.finished]\n    secrets: [{secret}]\n",
        rx.url()
    );
    let file = BootstrapFile::parse(&yaml, "test.yaml").expect("parse");
    import(&env.db.pool, &env.sb, &file, "test.yaml").await.expect("import");
    let _running = start(&env, fast());
    assert_eq!(emit(&env.db.pool, EventType::JobFinished, json!({"ok": true})).await, 1);
    let hit = rx.wait_for(1, Duration::from_secs(5)).await.remove(0);
    assert!(hit.verified);
}

/// job.started is raised by the lease itself (a trigger) for subscriptions that name it or take every event, and
/// for nobody else; with no such subscription, leasing writes no delivery.
#[tokio::test]
async fn a_lease_raises_job_started_for_the_subscriptions_that_want_it() {
    let env = env().await;
    let pool = &env.db.pool;
    let d = crate::support::dispatcher(pool);
    let node = crate::support::node(pool, "n", crate::support::host_caps()).await;
    let started = |sub: Option<Uuid>| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM deliveries
             WHERE event_type = 'job.started' AND ($1::uuid IS NULL OR subscription_id = $1)",
        )
        .bind(sub)
        .fetch_one(pool)
        .await
        .expect("count")
    };

    let (other, _) = subscribe(&env, "other", "http://127.0.0.1:9/o", &["task.finished"]).await;
    let first = crate::support::enqueue(pool, &crate::support::host_job("true")).await;
    let leased = d.lease(node, 1, Duration::ZERO).await.expect("lease");
    assert_eq!(leased.iter().map(|l| l.job_id).collect::<Vec<_>>(), vec![first]);
    assert_eq!(started(None).await, 0, "nobody wants job.started yet");

    let (every, _) = subscribe(&env, "every", "http://127.0.0.1:9/e", &[]).await;
    let second = crate::support::enqueue(pool, &crate::support::host_job("true")).await;
    let leased = d.lease(node, 1, Duration::ZERO).await.expect("lease");
    assert_eq!(leased.iter().map(|l| l.job_id).collect::<Vec<_>>(), vec![second]);
    assert_eq!(started(Some(every.id)).await, 1, "a subscription to every event gets job.started");

    let (named, _) = subscribe(&env, "named", "http://127.0.0.1:9/n", &["job.started"]).await;
    sqlx::query("UPDATE subscriptions SET enabled = false WHERE id = $1")
        .bind(every.id)
        .execute(pool)
        .await
        .expect("off");
    let third = crate::support::enqueue(pool, &crate::support::host_job("true")).await;
    let leased = d.lease(node, 1, Duration::ZERO).await.expect("lease");
    assert_eq!(leased.iter().map(|l| l.job_id).collect::<Vec<_>>(), vec![third]);
    assert_eq!((started(Some(named.id)).await, started(Some(every.id)).await), (1, 1), "a disabled one gets nothing");
    assert_eq!(started(Some(other.id)).await, 0);
    let payload: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM deliveries WHERE event_type = 'job.started' AND subscription_id = $1")
            .bind(named.id)
            .fetch_one(pool)
            .await
            .expect("payload");
    assert_eq!(payload["job_id"], json!(third));
    assert_eq!(payload["node_id"], json!(node));
    assert_eq!(payload["attempt"], json!(1));
    assert_eq!(payload["state"], json!("leased"));
}
