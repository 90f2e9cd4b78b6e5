//! Outbound webhooks against a real PostgreSQL and real loopback receivers that verify every signature with the
//! independent `standardwebhooks` crate. Timers are shortened through `DelivererSettings`, so the whole retry
//! schedule runs in about a second.

mod delivery;
mod failures;
mod guard;
mod manage;
mod receiver;

use std::time::Duration;

use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::outbound_guard::OutboundGuard;
use cynode_orchestrator::outbox::{
    self, Deliverer, DelivererSettings, EventType, NewSubscription, Subscription, Subscriptions,
};
use cynode_tests::TestDb;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

/// Where "CyNode itself" listens in these tests.
pub const SELF_ADDR: &str = "127.0.0.1:1";

pub struct Env {
    pub db: TestDb,
    pub sb: SecretBox,
    pub subs: Subscriptions,
}

pub async fn env() -> Env {
    let db = TestDb::new().await;
    let sb = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
    let subs = Subscriptions::new(db.pool.clone(), sb.clone(), vec![SELF_ADDR.into()]).with_guard(loopback());
    Env { db, sb, subs }
}

/// The receivers of these tests listen on loopback, which the outbound guard refuses unless allowed (what an
/// operator's `outbound.allow_cidrs` does).
pub fn loopback() -> OutboundGuard {
    OutboundGuard::allowing(vec!["127.0.0.0/8".parse().expect("cidr")])
}

/// Fast timers: retries after 100, 200, 300 ms, then dead; loopback receivers allowed.
pub fn fast() -> DelivererSettings {
    DelivererSettings {
        guard: loopback(),
        schedule: [100, 200, 300].map(Duration::from_millis).to_vec(),
        timeout: Duration::from_secs(2),
        poll_interval: Duration::from_millis(100),
        claim_margin: Duration::from_millis(500),
        ..DelivererSettings::default()
    }
}

/// A running deliverer; stopped when dropped (or with [`Running::stop`], which waits for it).
pub struct Running {
    pub deliverer: Deliverer,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the deliverer and waits until it has finished what it had in flight.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.expect("deliverer task");
    }
}

pub fn start(env: &Env, settings: DelivererSettings) -> Running {
    let deliverer = Deliverer::new(env.db.pool.clone(), env.sb.clone(), settings).expect("deliverer");
    let (stop, rx) = watch::channel(false);
    let task = deliverer.spawn(rx);
    Running { deliverer, stop, task }
}

/// Subscribes `url` to `events`; returns the subscription and its secret.
pub async fn subscribe(env: &Env, name: &str, url: &str, events: &[&str]) -> (Subscription, String) {
    let new = NewSubscription {
        name: name.into(),
        url: url.into(),
        event_types: events.iter().map(|e| (*e).to_string()).collect(),
        ..NewSubscription::default()
    };
    let created = env.subs.create("test", &new).await.expect("create subscription");
    (created.subscription, created.secret.expose_secret().to_string())
}

/// Emits one event in its own committed transaction; returns the deliveries created.
pub async fn emit(pool: &PgPool, event: EventType, payload: serde_json::Value) -> u64 {
    let mut tx = pool.begin().await.expect("tx");
    let n = outbox::emit(&mut tx, event, Uuid::now_v7(), &payload).await.expect("emit");
    tx.commit().await.expect("commit");
    n
}

/// `(state, attempts, last_status, last_error)` of every delivery, oldest first.
pub async fn rows(pool: &PgPool) -> Vec<(String, i32, Option<i32>, Option<String>)> {
    sqlx::query_as("SELECT state, attempts, last_status, last_error FROM deliveries ORDER BY created_at, id")
        .fetch_all(pool)
        .await
        .expect("rows")
}

/// Polls until `check` holds; panics after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
