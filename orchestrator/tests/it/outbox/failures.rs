//! Receivers that are down, fail, throttle, hang, redirect or are gone.

use std::time::{Duration, Instant};

use cynode_orchestrator::outbox::{DelivererSettings, EventType};
use serde_json::json;

use super::receiver::{Receiver, Reply, free_port};
use super::{emit, env, eventually, fast, rows, start, subscribe};

#[tokio::test]
async fn receiver_down_for_a_while_is_retried_on_schedule_then_delivered() {
    let env = env().await;
    let addr = free_port();
    let (_, secret) = subscribe(&env, "down", &format!("http://{addr}/hook"), &[]).await;
    let settings = DelivererSettings { schedule: [200, 400, 400, 400].map(Duration::from_millis).to_vec(), ..fast() };
    let running = start(&env, settings);
    let t0 = Instant::now();
    emit(&env.db.pool, EventType::JobFinished, json!({})).await;
    running.deliverer.announce();
    eventually(Duration::from_secs(5), "two failed attempts recorded", || async {
        sqlx::query_scalar("SELECT attempts >= 2 AND claim_token IS NULL FROM deliveries")
            .fetch_optional(&env.db.pool)
            .await
            .expect("row")
            .unwrap_or(false)
    })
    .await;
    let (state, attempts, status, error) = rows(&env.db.pool).await.remove(0);
    assert_eq!((state.as_str(), status), ("pending", None));
    assert!(error.as_deref().is_some_and(|e| e.contains("connection failed")), "{error:?}");
    assert!(attempts >= 2);
    assert!(t0.elapsed() >= Duration::from_millis(200), "the second attempt waited for the schedule");

    let rx = Receiver::start_on(addr).await;
    rx.trust(&secret);
    let hit = rx.wait_for(1, Duration::from_secs(5)).await.remove(0);
    assert!(hit.verified);
    eventually(Duration::from_secs(2), "recorded", || async { rows(&env.db.pool).await[0].0 == "delivered" }).await;
    let (state, attempts, status, error) = rows(&env.db.pool).await.remove(0);
    assert_eq!((state.as_str(), status, error), ("delivered", Some(204), None));
    assert!(attempts >= 3, "{attempts}");
    assert!(hit.at - t0 >= Duration::from_millis(600), "200 ms + 400 ms of schedule before the third attempt");
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_webhook_id() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (_, secret) = subscribe(&env, "flaky", &rx.url(), &[]).await;
    rx.trust(&secret);
    rx.script([Reply::Status(500), Reply::Status(502)]);
    let _running = start(&env, fast());
    emit(&env.db.pool, EventType::JobFinished, json!({})).await;
    let hits = rx.wait_for(3, Duration::from_secs(5)).await;
    assert!(hits.iter().all(|h| h.verified && h.msg_id() == hits[0].msg_id()), "one webhook-id on every attempt");
    assert!(hits[1].at - hits[0].at >= Duration::from_millis(90), "first retry after 100 ms");
    assert!(hits[2].at - hits[1].at >= Duration::from_millis(190), "second retry after 200 ms");
    eventually(Duration::from_secs(2), "recorded", || async { rows(&env.db.pool).await[0].0 == "delivered" }).await;
    assert_eq!(rows(&env.db.pool).await[0].1, 3);
}

#[tokio::test]
async fn retry_after_is_honoured_when_longer_than_the_schedule() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (_, secret) = subscribe(&env, "busy", &rx.url(), &[]).await;
    rx.trust(&secret);
    rx.script([Reply::RetryAfter(429, "2")]);
    let _running = start(&env, fast());
    emit(&env.db.pool, EventType::JobFinished, json!({})).await;
    let first = rx.wait_for(1, Duration::from_secs(5)).await.remove(0);
    eventually(Duration::from_secs(2), "429 recorded", || async { rows(&env.db.pool).await[0].2 == Some(429) }).await;
    let hits = rx.wait_for(2, Duration::from_secs(6)).await;
    let gap = hits[1].at - first.at;
    assert!(gap >= Duration::from_millis(1900), "waited {gap:?} instead of Retry-After: 2");
    assert_eq!(hits[1].msg_id(), first.msg_id());
}

#[tokio::test]
async fn gone_disables_the_subscription_and_stops_its_pending_deliveries() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (sub, secret) = subscribe(&env, "gone", &rx.url(), &[]).await;
    rx.trust(&secret);
    rx.always(Reply::Status(410));
    for i in 0..3 {
        emit(&env.db.pool, EventType::JobFinished, json!({"i": i})).await;
    }
    let _running = start(&env, DelivererSettings { concurrency: 1, ..fast() });
    eventually(Duration::from_secs(5), "disabled", || async { !env.subs.get(sub.id).await.expect("get").enabled })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits().len(), 1, "nothing more is sent after a 410");
    let shown = env.subs.get(sub.id).await.expect("get");
    assert_eq!(shown.disabled_reason.as_deref(), Some("receiver answered 410 Gone"));
    assert!(shown.disabled_at.is_some());
    let r = rows(&env.db.pool).await;
    assert_eq!(r.iter().filter(|x| x.2 == Some(410)).count(), 1, "{r:?}");
    assert!(r.iter().all(|x| x.0 == "failed"), "{r:?}");
    assert!(r.iter().any(|x| { x.3.as_deref().is_some_and(|e| e.starts_with("stopped: subscription disabled")) }));
    assert_eq!(emit(&env.db.pool, EventType::JobFinished, json!({})).await, 0, "no new deliveries while disabled");
    cynode_orchestrator::audit::flush(&env.db.pool).await.expect("link the audit entries");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'subscription.disable'")
        .fetch_one(&env.db.pool)
        .await
        .expect("audit");
    assert_eq!(audited, 1);

    env.subs.enable("test", sub.id).await.expect("re-enable");
    rx.always(Reply::Status(200));
    assert_eq!(emit(&env.db.pool, EventType::JobFinished, json!({})).await, 1);
    rx.wait_for(2, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_hanging_receiver_times_out_and_is_retried() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (_, secret) = subscribe(&env, "slow", &rx.url(), &[]).await;
    rx.trust(&secret);
    rx.script([Reply::Hang(Duration::from_secs(30))]);
    let settings = DelivererSettings {
        timeout: Duration::from_millis(300),
        schedule: vec![Duration::from_millis(1500)],
        ..fast()
    };
    let _running = start(&env, settings);
    emit(&env.db.pool, EventType::JobFinished, json!({})).await;
    eventually(Duration::from_secs(5), "timeout recorded", || async {
        rows(&env.db.pool).await[0].3.as_deref().is_some_and(|e| e.contains("timed out after 300 ms"))
    })
    .await;
    let hits = rx.wait_for(2, Duration::from_secs(5)).await;
    assert!(hits[1].at - hits[0].at >= Duration::from_millis(1750), "timeout + first retry delay");
    eventually(Duration::from_secs(2), "delivered", || async { rows(&env.db.pool).await[0].0 == "delivered" }).await;
    assert_eq!(rows(&env.db.pool).await[0].1, 2);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (_, secret) = subscribe(&env, "moved", &rx.url(), &[]).await;
    rx.trust(&secret);
    rx.always(Reply::Redirect);
    let _running = start(&env, DelivererSettings { schedule: Vec::new(), ..fast() });
    emit(&env.db.pool, EventType::JobFinished, json!({})).await;
    eventually(Duration::from_secs(5), "dead", || async { rows(&env.db.pool).await[0].0 == "dead" }).await;
    let (_, attempts, status, error) = rows(&env.db.pool).await.remove(0);
    assert_eq!((attempts, status), (1, Some(302)));
    assert!(error.as_deref().is_some_and(|e| e.contains("redirects are not followed")), "{error:?}");
    assert!(rx.hits().iter().all(|h| h.path == "/hook"), "the redirect target was never requested");
}

#[tokio::test]
async fn retries_run_out_then_sustained_failure_disables_the_subscription() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (sub, secret) = subscribe(&env, "broken", &rx.url(), &[]).await;
    rx.trust(&secret);
    rx.always(Reply::Status(500));
    let settings = DelivererSettings {
        schedule: [50, 50].map(Duration::from_millis).to_vec(),
        disable_after: Duration::from_secs(2),
        ..fast()
    };
    let _running = start(&env, settings);
    emit(&env.db.pool, EventType::JobFinished, json!({})).await;
    eventually(Duration::from_secs(5), "dead", || async { rows(&env.db.pool).await[0].0 == "dead" }).await;
    let (_, attempts, status, error) = rows(&env.db.pool).await.remove(0);
    assert_eq!((attempts, status, error.as_deref()), (3, Some(500), Some("HTTP 500")));
    assert!(env.subs.get(sub.id).await.expect("get").failing_since.is_some());
    assert!(env.subs.get(sub.id).await.expect("get").enabled, "not yet: failing for less than disable_after");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    emit(&env.db.pool, EventType::JobFinished, json!({})).await;
    eventually(Duration::from_secs(5), "disabled", || async { !env.subs.get(sub.id).await.expect("get").enabled })
        .await;
    let reason = env.subs.get(sub.id).await.expect("get").disabled_reason.expect("reason");
    assert!(reason.starts_with("every delivery attempt failed since"), "{reason}");
}
