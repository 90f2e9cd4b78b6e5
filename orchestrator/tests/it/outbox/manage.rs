//! The management API: validation, secrets shown once, filters, opt-in events, test pings, replays.

use std::time::Duration;

use cynode_orchestrator::outbox::{
    DelivererSettings, DeliveryQuery, DeliveryState, EventType, NewSubscription, OutboxError, ReplayRange,
    SubscriptionUpdate,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::receiver::{Receiver, Reply};
use super::{SELF_ADDR, emit, env, eventually, fast, rows, start, subscribe};

fn new(name: &str, url: &str) -> NewSubscription {
    NewSubscription { name: name.into(), url: url.into(), ..NewSubscription::default() }
}

fn invalid<T: std::fmt::Debug>(r: Result<T, OutboxError>) -> String {
    match r {
        Err(OutboxError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn creation_validates_input_and_shows_the_secret_once() {
    let env = env().await;
    let m = invalid(env.subs.create("t", &new("me", &format!("http://{SELF_ADDR}/hooks/x"))).await);
    assert!(m.contains("CyNode itself"), "{m}");
    let m = invalid(env.subs.create("t", &new("me", "http://localhost:1/")).await);
    assert!(m.contains("CyNode itself"), "{m}");
    let m = invalid(env.subs.create("t", &new("ftp", "ftp://example.org/")).await);
    assert!(m.contains("http://"), "{m}");
    let bad_event = NewSubscription { event_types: vec!["job.exploded".into()], ..new("e", "http://127.0.0.1:9/") };
    assert!(invalid(env.subs.create("t", &bad_event).await).contains("unknown event type"));
    let bad_filter = NewSubscription { filter: json!({"labels": ["x"]}), ..new("f", "http://127.0.0.1:9/") };
    invalid(env.subs.create("t", &bad_filter).await);
    let bad_secret = NewSubscription { secret: Some(SecretString::from("hunter2")), ..new("s", "http://127.0.0.1:9/") };
    invalid(env.subs.create("t", &bad_secret).await);
    invalid(env.subs.create("t", &new("bad name!", "http://127.0.0.1:9/")).await);
    assert!(rows(&env.db.pool).await.is_empty());

    let created = env.subs.create("t", &new("ok", "http://127.0.0.1:9/hook")).await.expect("create");
    let secret = created.secret.expose_secret();
    assert!(secret.starts_with("whsec_") && secret.len() == 6 + 44, "32 random bytes");
    assert!(matches!(env.subs.create("t", &new("ok", "http://127.0.0.1:9/")).await, Err(OutboxError::Conflict(_))));
    let listed = serde_json::to_string(&env.subs.list().await.expect("list")).expect("json");
    assert!(!listed.contains("whsec_") && !listed.contains(&secret[6..]), "secrets never listed");
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT secrets FROM subscriptions").fetch_one(&env.db.pool).await.expect("row");
    assert!(!String::from_utf8_lossy(&stored).contains("whsec_"), "sealed at rest");

    let id = created.subscription.id;
    let change = SubscriptionUpdate { url: Some(format!("http://{SELF_ADDR}/")), ..SubscriptionUpdate::default() };
    invalid(env.subs.update("t", id, &change).await);
    let change = SubscriptionUpdate { event_types: Some(vec!["job.output".into()]), ..SubscriptionUpdate::default() };
    assert_eq!(env.subs.update("t", id, &change).await.expect("update").event_types, ["job.output"]);
    assert_eq!(env.subs.get_by_name("ok").await.expect("by name").id, id);
    env.subs.delete("t", id).await.expect("delete");
    assert!(matches!(env.subs.get(id).await, Err(OutboxError::NotFound(_))));
}

#[tokio::test]
async fn filters_select_on_top_level_fields_and_job_output_is_opt_in() {
    let env = env().await;
    let url = "http://127.0.0.1:9/hook";
    let filtered = NewSubscription { filter: json!({"install_id": "I1"}), ..new("filtered", url) };
    env.subs.create("t", &filtered).await.expect("filtered");
    let output = NewSubscription { event_types: vec!["job.output".into()], ..new("output", url) };
    env.subs.create("t", &output).await.expect("output");
    env.subs.create("t", &new("all", url)).await.expect("all");
    let finished = NewSubscription { event_types: vec!["job.finished".into()], ..new("finished", url) };
    env.subs.create("t", &finished).await.expect("finished");

    let pool = &env.db.pool;
    assert_eq!(emit(pool, EventType::JobOutput, json!({"install_id": "I1"})).await, 1, "only the explicit one");
    assert_eq!(emit(pool, EventType::TaskCreated, json!({"install_id": "I1"})).await, 2, "filtered + all");
    assert_eq!(emit(pool, EventType::TaskCreated, json!({"install_id": "I2"})).await, 1, "all");
    assert_eq!(emit(pool, EventType::TaskCreated, json!({"nested": {"install_id": "I1"}})).await, 1, "top level only");
    assert_eq!(emit(pool, EventType::JobFinished, json!({"install_id": "I1"})).await, 3);
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT s.name FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         WHERE d.event_type = 'job.output'",
    )
    .fetch_all(pool)
    .await
    .expect("names");
    assert_eq!(names, ["output"]);
}

#[tokio::test]
async fn test_pings_and_disabling_by_hand() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (sub, secret) = subscribe(&env, "pinged", &rx.url(), &["job.finished"]).await;
    rx.trust(&secret);
    let running = start(&env, fast());
    let subs = env.subs.clone().with_waker(running.deliverer.waker());
    let id = subs.send_test(sub.id).await.expect("ping");
    let hit = rx.wait_for(1, Duration::from_secs(5)).await.remove(0);
    assert!(hit.verified);
    assert_eq!(hit.body["type"], "ping");
    assert_eq!(hit.body["data"]["subscription"], "pinged");
    eventually(Duration::from_secs(2), "delivered", || async {
        subs.delivery(id).await.expect("delivery").state == DeliveryState::Delivered
    })
    .await;

    running.stop().await;
    emit(&env.db.pool, EventType::JobFinished, json!({})).await;
    let off = SubscriptionUpdate { enabled: Some(false), ..SubscriptionUpdate::default() };
    let shown = subs.update("alice", sub.id, &off).await.expect("disable");
    assert_eq!(shown.disabled_reason.as_deref(), Some("disabled by alice"));
    let q =
        DeliveryQuery { subscription: Some(sub.id), state: Some(DeliveryState::Failed), ..DeliveryQuery::default() };
    assert_eq!(subs.deliveries(&q).await.expect("list").len(), 1, "the pending delivery was stopped");
    assert!(matches!(subs.send_test(sub.id).await, Err(OutboxError::Conflict(_))));
}

#[tokio::test]
async fn replays_keep_the_webhook_id() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (sub, secret) = subscribe(&env, "replayed", &rx.url(), &[]).await;
    rx.trust(&secret);
    rx.script([Reply::Status(500), Reply::Status(500)]);
    let running = start(&env, DelivererSettings { schedule: Vec::new(), ..fast() });
    let subs = env.subs.clone().with_waker(running.deliverer.waker());
    let from = chrono::Utc::now() - chrono::Duration::seconds(1);
    emit(&env.db.pool, EventType::JobFinished, json!({"n": 1})).await;
    emit(&env.db.pool, EventType::JobFinished, json!({"n": 2})).await;
    eventually(Duration::from_secs(5), "both dead", || async {
        let r = rows(&env.db.pool).await;
        r.len() == 2 && r.iter().all(|x| x.0 == "dead")
    })
    .await;
    let dead = subs.deliveries(&DeliveryQuery::default()).await.expect("list");

    // Replay one: same webhook-id, a new delivery that names the original.
    let replay = subs.replay("t", dead[0].id).await.expect("replay");
    let hit = rx.wait_for(3, Duration::from_secs(5)).await.remove(2);
    assert_eq!(hit.msg_id(), dead[0].msg_id);
    assert!(hit.verified);
    eventually(Duration::from_secs(2), "replay delivered", || async {
        subs.delivery(replay).await.expect("delivery").state == DeliveryState::Delivered
    })
    .await;
    assert_eq!(subs.delivery(replay).await.expect("delivery").replay_of, Some(dead[0].id));

    // Replay the range: only the one not yet successfully replayed goes out again.
    let range = ReplayRange { from, to: chrono::Utc::now(), include_delivered: false };
    assert_eq!(subs.replay_range("t", sub.id, &range).await.expect("range"), 1);
    let hit = rx.wait_for(4, Duration::from_secs(5)).await.remove(3);
    assert_eq!(hit.msg_id(), dead[1].msg_id);
    eventually(Duration::from_secs(2), "all replays delivered", || async {
        rows(&env.db.pool).await.iter().filter(|r| r.0 == "delivered").count() == 2
    })
    .await;
    assert_eq!(subs.replay_range("t", sub.id, &range).await.expect("range"), 0, "nothing left to replay");
    let everything = ReplayRange { include_delivered: true, ..range };
    assert_eq!(subs.replay_range("t", sub.id, &everything).await.expect("range"), 2);
    let hits = rx.wait_for(6, Duration::from_secs(5)).await;
    let mut ids: Vec<&str> = hits[4..].iter().map(|h| h.msg_id()).collect();
    ids.sort_unstable();
    let mut want = vec![dead[0].msg_id.as_str(), dead[1].msg_id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
}

#[tokio::test]
async fn owned_subscriptions_get_only_their_installs_events_one_by_one_and_in_batches() {
    let env = env().await;
    let pool = &env.db.pool;
    let (mine, theirs) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    for (id, ext) in [(mine, "T-MINE"), (theirs, "T-THEIRS")] {
        sqlx::query("INSERT INTO installs (id, platform, external_id, name) VALUES ($1, 'slack', $2, $2)")
            .bind(id)
            .bind(ext)
            .execute(pool)
            .await
            .expect("install");
    }
    let url = "http://127.0.0.1:9/hook";
    let owned = NewSubscription { install_id: Some(mine), ..new("owned", url) };
    env.subs.create("t", &owned).await.expect("owned");
    env.subs.create("t", &new("global", url)).await.expect("global");

    let own = json!({ "install_id": mine });
    let other = json!({ "install_id": theirs });
    assert_eq!(emit(pool, EventType::JobFinished, own.clone()).await, 2, "owned + global");
    assert_eq!(emit(pool, EventType::JobFinished, other.clone()).await, 1, "global only");
    assert_eq!(emit(pool, EventType::JobFinished, json!({})).await, 1, "no install: global only (fail closed)");
    let batch =
        [(EventType::JobFinished, uuid::Uuid::now_v7(), own), (EventType::TaskFinished, uuid::Uuid::now_v7(), other)];
    let mut conn = pool.acquire().await.expect("conn");
    let written = cynode_orchestrator::outbox::emit_many(&mut conn, &batch).await.expect("emit_many");
    assert_eq!(written, 3, "the batch follows the same tenant rule");
    let owned_types: Vec<String> = sqlx::query_scalar(
        "SELECT d.event_type FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         WHERE s.name = 'owned' ORDER BY d.created_at",
    )
    .fetch_all(pool)
    .await
    .expect("owned deliveries");
    assert_eq!(owned_types, ["job.finished", "job.finished"]);
}
