//! Task event stream benchmark (a harness, not a test): how long after a node's output is committed an SSE
//! client of `GET /v1/tasks/{id}/events` receives it, p50/p99, for an output written through this gateway
//! (pushed: the writer announces it after its commit) and through another replica (found by the fallback poll,
//! 200 ms by default). An in-process gateway on a real socket; the "other replica" is a second dispatcher on
//! the same database. PostgreSQL is the shared embedded test server (fsync on).
//!
//! `cargo bench -p cynode-gateway --bench sse` (add `-- quick` for 100 samples instead of 1,000).

use std::time::{Duration, Instant};

use cynode_gateway::server::{self, AppState, CoreSettings, RouterSettings};
use cynode_orchestrator::api_tokens::{self, Role};
use cynode_orchestrator::crypto::hash_credential;
use cynode_orchestrator::dispatch::{DispatchSettings, Dispatcher};
use cynode_orchestrator::nodes;
use cynode_orchestrator::tasks::{self, NewJob, Origin};
use cynode_protocol::*;
use cynode_tests::TestDb;
use secrecy::{ExposeSecret as _, SecretString};
use uuid::Uuid;

const MASTER: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJmrw=";
const KEY: &str = "bench-node-key-0123456789abcdef";

struct Env {
    base: String,
    db: TestDb,
    state: AppState,
    token: String,
    node: Uuid,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn env() -> Env {
    let db = TestDb::new().await;
    sqlx::query("INSERT INTO node_keys (id, name, key_hash, grants) VALUES ($1, 'bench', $2, $3)")
        .bind(Uuid::now_v7())
        .bind(hash_credential(KEY))
        .bind(serde_json::json!({"executors": ["host"]}))
        .execute(&db.pool)
        .await
        .expect("key");
    let caps = Capabilities { executors: vec![ExecutorKind::Host], max_concurrent_jobs: 8, ..Default::default() };
    let req =
        RegisterRequest { protocol_versions: vec![2], name: "bench".into(), capabilities: caps, agent_version: None };
    let node = nodes::register(&db.pool, KEY, &req).await.expect("register").node_id;
    let (stop, rx) = tokio::sync::watch::channel(false);
    // Leases outlive the run (the bench sends no heartbeats), so no job is re-queued under it.
    let core = CoreSettings { dispatch: settings(), ..CoreSettings::default() };
    let state = AppState::start(db.pool.clone(), &SecretString::from(MASTER), core, rx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let rs = RouterSettings { max_body_bytes: 1 << 20, request_timeout: Duration::from_secs(600) };
    tokio::spawn(server::serve(listener, server::router(state.clone(), rs), std::future::pending()));
    let created = api_tokens::create(&db.pool, "bench", "bench", None, Role::Admin).await.expect("token");
    Env { base, db, state, token: created.token.expose_secret().to_string(), node, _stop: stop }
}

fn settings() -> DispatchSettings {
    DispatchSettings { lease_ttl: Duration::from_secs(3600), ..DispatchSettings::default() }
}

/// A task with one host job, leased by the bench node through `d`.
async fn leased_task(e: &Env, d: &Dispatcher) -> (Uuid, Lease) {
    let mut tx = e.db.pool.begin().await.expect("tx");
    let origin = Origin { requester: "bench".into(), source: "bench".into(), ..Origin::default() };
    let task = tasks::create_task(&mut tx, &origin, "run", "bench", &serde_json::json!({})).await.expect("task");
    let job = NewJob {
        spec: JobSpec::Host(HostSpec { command: "bench".into(), timeout_s: 3600, max_output_bytes: 1 << 30 }),
        requirements: Requirements::default(),
        priority: 0,
        max_attempts: 1,
        hold: false,
    };
    tasks::create_job(&mut tx, task, &job).await.expect("job");
    tx.commit().await.expect("commit");
    let lease = d.lease(e.node, 1, Duration::from_secs(5)).await.expect("lease").pop().expect("a lease");
    (task, lease)
}

/// Output chunk `seq` is written through `d` `n` times; returns commit → SSE delivery per chunk, in µs.
async fn measure(e: &Env, d: &Dispatcher, n: u64) -> Vec<u64> {
    let (task, lease) = leased_task(e, d).await;
    let url = format!("{}/v1/tasks/{task}/events", e.base);
    let mut resp = reqwest::Client::new().get(url).bearer_auth(&e.token).send().await.expect("sse");
    assert!(resp.status().is_success());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    // The reader notes when each output event arrives, by the chunk's text.
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            let at = Instant::now();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                if let Some(i) = block.find("\"data\":\"chunk-") {
                    let rest = &block[i + "\"data\":\"chunk-".len()..];
                    let seq: u64 = rest.split('\\').next().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
                    let _ = tx.send((seq, at));
                }
            }
        }
    });
    let mut out = Vec::with_capacity(n as usize);
    for seq in 0..n {
        let chunk = OutputChunk { stream: Stream::Stdout, seq, data: format!("chunk-{seq}\n") };
        let batch = OutputBatch {
            lease: LeaseRef { job_id: lease.job_id, attempt: lease.attempt, lease_token: lease.lease_token },
            chunks: vec![chunk],
        };
        d.output(e.node, &batch).await.expect("output");
        let committed = Instant::now();
        let (got, at) =
            tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("delivered").expect("open");
        assert_eq!(got, seq, "in order");
        out.push(u64::try_from(at.saturating_duration_since(committed).as_micros()).unwrap_or(u64::MAX));
    }
    out
}

fn summary(name: &str, mut us: Vec<u64>) {
    us.sort_unstable();
    let q = |p: f64| us[((us.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    println!("{name:<52} p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  (n={})", q(0.5), q(0.9), q(0.99), us.len());
}

#[tokio::main]
async fn main() {
    let n = if std::env::args().any(|a| a == "quick") { 100 } else { 1000 };
    println!("task event stream benchmark, {} CPUs", std::thread::available_parallelism().map_or(0, |n| n.get()));
    let e = env().await;
    let here = e.state.dispatcher.clone();
    measure(&e, &here, 20).await; // warm-up
    summary("output commit → SSE delivery, same gateway (push)", measure(&e, &here, n).await);
    let elsewhere = Dispatcher::new(e.db.pool.clone(), settings());
    summary("output commit → SSE delivery, other replica (poll)", measure(&e, &elsewhere, n / 5).await);
}
