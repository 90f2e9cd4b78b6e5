//! The outbound guard on webhook receivers: internal addresses are refused when a subscription is created and
//! when a delivery connects, unless the operator allowed their range.

use std::time::Duration;

use cynode_orchestrator::outbound_guard::OutboundGuard;
use cynode_orchestrator::outbox::{DelivererSettings, EventType, NewSubscription, OutboxError, Subscriptions};
use serde_json::json;

use super::receiver::{Receiver, Reply};
use super::{SELF_ADDR, emit, env, eventually, fast, rows, start, subscribe};

fn new(name: &str, url: &str) -> NewSubscription {
    NewSubscription { name: name.into(), url: url.into(), ..NewSubscription::default() }
}

#[tokio::test]
async fn internal_receivers_are_refused_at_creation_unless_allowed() {
    let env = env().await;
    let strict = Subscriptions::new(env.db.pool.clone(), env.sb.clone(), vec![SELF_ADDR.into()]);
    let rx = Receiver::start().await;
    let port = rx.url().rsplit(':').next().and_then(|p| p.split('/').next()).expect("port").to_owned();
    for (url, kind) in [
        (rx.url(), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}/hook"), "loopback"),
        ("http://169.254.169.254/latest/meta-data/".to_owned(), "link-local"),
        ("http://10.0.0.1/".to_owned(), "private"),
        ("http://100.100.100.200/".to_owned(), "shared (CGNAT)"),
        (format!("http://localhost:{port}/hook"), "`localhost`"),
    ] {
        match strict.create("t", &new("internal", &url)).await {
            Err(OutboxError::Invalid(m)) => {
                assert!(m.contains(kind) && m.contains("outbound.allow_cidrs"), "{url}: {m}");
            }
            other => panic!("{url} was not refused: {other:?}"),
        }
    }
    assert_eq!(rows(&env.db.pool).await.len(), 0);
    // The operator's allow-list (as the test environment's subscriptions have) opens loopback.
    env.subs.create("t", &new("allowed", &rx.url())).await.expect("allowed range");
}

/// A subscription whose receiver is internal by the time it is delivered to (created while allowed, or a name
/// that resolved elsewhere then): the deliverer refuses to connect, records why and stores no response; the
/// receiver — which would have answered with its secrets — is never reached. Allowed, the same delivery goes.
#[tokio::test]
async fn deliveries_to_a_refused_address_never_connect_and_store_no_response() {
    let env = env().await;
    let rx = Receiver::start().await;
    let (_, secret) = subscribe(&env, "internal", &rx.url(), &[]).await;
    rx.trust(&secret);
    rx.always(Reply::Status(500));
    let strict = DelivererSettings { guard: OutboundGuard::default(), schedule: Vec::new(), ..fast() };
    let running = start(&env, strict);
    emit(&env.db.pool, EventType::JobFinished, json!({})).await;
    running.deliverer.announce();
    eventually(Duration::from_secs(5), "the attempt recorded", || async {
        rows(&env.db.pool).await.first().is_some_and(|r| r.0 == "dead")
    })
    .await;
    running.stop().await;
    let (_, attempts, status, error) = rows(&env.db.pool).await.remove(0);
    assert_eq!((attempts, status), (1, None));
    let error = error.expect("reason");
    assert!(error.contains("loopback address") && error.contains("outbound.allow_cidrs"), "{error}");
    let response: Option<String> =
        sqlx::query_scalar("SELECT last_response FROM deliveries").fetch_one(&env.db.pool).await.expect("row");
    assert_eq!(response, None);
    assert!(rx.hits().is_empty(), "the receiver was reached");

    // With the range allowed, a fresh event reaches it.
    rx.always(Reply::Status(204));
    let _running = start(&env, fast());
    emit(&env.db.pool, EventType::JobFinished, json!({})).await;
    assert!(rx.wait_for(1, Duration::from_secs(5)).await[0].verified);
}

/// The guarded client itself, given a name: `localhost` resolves to loopback only, so no connection is made
/// (the check is on the resolved address, which is what defeats DNS rebinding).
#[tokio::test]
async fn the_guarded_client_refuses_a_name_that_resolves_to_loopback() {
    let rx = Receiver::start().await;
    let by_name = rx.url().replace("127.0.0.1", "localhost");
    let client = OutboundGuard::default().client_builder().build().expect("client");
    let err = client.post(&by_name).body("{}").send().await.expect_err("refused");
    let mut chain = String::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(s) = source {
        chain.push_str(&format!("{s} / "));
        source = s.source();
    }
    assert!(chain.contains("loopback address"), "{chain}");
    assert!(rx.hits().is_empty());
    let open = OutboundGuard::allowing(vec!["127.0.0.0/8".parse().expect("cidr")]);
    let answer = open.client_builder().build().expect("client").post(&by_name).body("{}").send().await.expect("sent");
    assert_eq!(answer.status(), 401, "reached (the receiver refuses the unsigned request)");
}
