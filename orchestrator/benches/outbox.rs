//! Outbound webhook benchmark (a harness, not a test): deliveries per second to a healthy loopback receiver
//! and end-to-end latency from the emitting transaction's commit to the receiver's arrival, with 1 and 4
//! subscriptions. Two shapes per subscription count:
//! - **burst**: N events emitted as fast as 8 concurrent writers can commit them (one event per transaction);
//!   throughput is deliveries / (last arrival − first commit), and latency includes queueing behind the burst;
//! - **paced**: events at a steady rate well under capacity, the "healthy" latency (target p99 ≤ 1 s);
//! - **backlog**: N events for 4 subscriptions committed while no deliverer runs, then drained by one: the
//!   deliverer's own throughput.
//!
//! PostgreSQL is the shared embedded test server (fsync on); the deliverer runs with its production defaults.
//!
//! `cargo bench -p cynode-orchestrator --bench outbox [-- EVENTS [CONCURRENCY]]` (events per burst, default 5000;
//! deliverer concurrency, default the production default).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::outbound_guard::OutboundGuard;
use cynode_orchestrator::outbox::{self, Deliverer, DelivererSettings, EventType, NewSubscription, Subscriptions};
use cynode_orchestrator::store::{self, PoolSettings};
use cynode_tests::TestDb;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

/// Arrivals: (sequence number, subscription path) → when.
type Arrivals = Arc<Mutex<HashMap<(u64, String), Instant>>>;

#[derive(Clone, Copy)]
enum Shape {
    /// 8 writers emit as fast as they can commit while the deliverer runs.
    Burst,
    /// One writer at this many events per second.
    Paced(f64),
    /// Everything emitted with no deliverer running (a replica was down), then one deliverer drains it.
    Backlog,
}

struct Row {
    shape: String,
    subs: usize,
    events: usize,
    deliveries: usize,
    per_sec: f64,
    /// p50, p99, max of commit → arrival (not meaningful for a backlog).
    latency_ms: Option<(f64, f64, f64)>,
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let burst = args.first().copied().unwrap_or(5000);
    let settings = DelivererSettings {
        concurrency: args.get(1).copied().unwrap_or(DelivererSettings::default().concurrency),
        // The receivers listen on loopback.
        guard: OutboundGuard::allowing(vec!["127.0.0.0/8".parse().expect("cidr")]),
        ..DelivererSettings::default()
    };
    println!("events per burst: {burst}, deliverer concurrency: {}", settings.concurrency);
    let mut rows = Vec::new();
    for subs in [1, 4] {
        rows.push(scenario(&settings, subs, burst, Shape::Burst).await);
        // Paced at 100 deliveries per second for 10 s.
        let rate = 100.0 / subs as f64;
        rows.push(scenario(&settings, subs, (rate * 10.0) as usize, Shape::Paced(rate)).await);
    }
    rows.push(scenario(&settings, 4, burst, Shape::Backlog).await);
    println!("\n| shape | subscriptions | events | deliveries | deliveries/s | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let lat = r.latency_ms.map_or_else(|| "– | – | –".to_string(), |(a, b, c)| format!("{a:.1} | {b:.1} | {c:.1}"));
        println!("| {} | {} | {} | {} | {:.0} | {lat} |", r.shape, r.subs, r.events, r.deliveries, r.per_sec);
    }
}

async fn receiver(arrivals: Arrivals) -> String {
    async fn hook(
        State(arrivals): State<Arrivals>,
        axum::extract::Path(path): axum::extract::Path<String>,
        body: Bytes,
    ) -> StatusCode {
        let at = Instant::now();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let seq = v["data"]["seq"].as_u64().unwrap_or(u64::MAX);
        arrivals.lock().expect("lock").insert((seq, path), at);
        StatusCode::NO_CONTENT
    }
    let app = axum::Router::new().route("/{path}", axum::routing::post(hook)).with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

async fn scenario(settings: &DelivererSettings, subs: usize, events: usize, shape: Shape) -> Row {
    let db = TestDb::new().await;
    let pool =
        store::connect(&db.url, &PoolSettings { max_connections: 24, ..PoolSettings::default() }).await.expect("pool");
    let sb = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
    let arrivals: Arrivals = Arc::default();
    let base = receiver(arrivals.clone()).await;
    let admin = Subscriptions::new(pool.clone(), sb.clone(), Vec::new()).with_guard(settings.guard.clone());
    for i in 0..subs {
        let new = NewSubscription { name: format!("bench-{i}"), url: format!("{base}/s{i}"), ..Default::default() };
        admin.create("bench", &new).await.expect("subscription");
    }
    let deliverer = Deliverer::new(pool.clone(), sb, settings.clone()).expect("deliverer");
    let (stop, rx) = watch::channel(false);
    let mut task = match shape {
        Shape::Backlog => None,
        _ => Some(deliverer.spawn(rx.clone())),
    };

    let commits: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let started = Instant::now();
    let rate = if let Shape::Paced(r) = shape { Some(r) } else { None };
    let writers = if rate.is_some() { 1 } else { 8 };
    let mut handles = Vec::new();
    for w in 0..writers {
        let (pool, commits, waker) = (pool.clone(), commits.clone(), deliverer.waker());
        handles.push(tokio::spawn(async move {
            for seq in (w..events).step_by(writers) {
                if let Some(r) = rate {
                    let due = started + Duration::from_secs_f64(seq as f64 / r);
                    tokio::time::sleep_until(due.into()).await;
                }
                emit_one(&pool, seq as u64).await;
                commits.lock().expect("lock").insert(seq as u64, Instant::now());
                waker.announce();
            }
        }));
    }
    for h in handles {
        h.await.expect("writer");
    }
    let delivering_since = Instant::now();
    if task.is_none() {
        task = Some(deliverer.spawn(rx));
    }
    let want = events * subs;
    let deadline = Instant::now() + Duration::from_secs(300);
    while arrivals.lock().expect("lock").len() < want {
        assert!(Instant::now() < deadline, "only {} of {want} delivered", arrivals.lock().expect("lock").len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    if let Some(t) = task {
        let _ = t.await;
    }
    let commits = commits.lock().expect("lock").clone();
    let arrivals = arrivals.lock().expect("lock").clone();
    let since = if let Shape::Backlog = shape { Some(delivering_since) } else { None };
    report(subs, events, shape, since, &commits, &arrivals, &pool).await
}

async fn emit_one(pool: &PgPool, seq: u64) {
    let mut tx = pool.begin().await.expect("tx");
    let payload = serde_json::json!({ "seq": seq, "task_id": Uuid::now_v7(), "state": "succeeded" });
    outbox::emit(&mut tx, EventType::TaskFinished, Uuid::now_v7(), &payload).await.expect("emit");
    tx.commit().await.expect("commit");
}

async fn report(
    subs: usize,
    events: usize,
    shape: Shape,
    since: Option<Instant>,
    commits: &HashMap<u64, Instant>,
    arrivals: &HashMap<(u64, String), Instant>,
    pool: &PgPool,
) -> Row {
    let mut lat: Vec<f64> = arrivals
        .iter()
        .map(|((seq, _), at)| at.saturating_duration_since(commits[seq]).as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    let first = since.unwrap_or_else(|| commits.values().min().copied().expect("commits"));
    let last = arrivals.values().max().copied().expect("arrivals");
    let attempts: i64 = sqlx::query_scalar("SELECT coalesce(sum(attempts), 0)::bigint FROM deliveries")
        .fetch_one(pool)
        .await
        .expect("attempts");
    assert_eq!(attempts as usize, arrivals.len(), "every delivery sent exactly once");
    Row {
        shape: match shape {
            Shape::Burst => "burst (8 writers)".into(),
            Shape::Paced(r) => format!("paced {r:.0} events/s"),
            Shape::Backlog => "backlog drain".into(),
        },
        subs,
        events,
        deliveries: arrivals.len(),
        per_sec: arrivals.len() as f64 / (last - first).as_secs_f64(),
        latency_ms: since.is_none().then(|| (pct(0.50), pct(0.99), lat.last().copied().unwrap_or_default())),
    }
}
