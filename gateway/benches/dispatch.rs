//! Dispatch benchmark (a harness, not a test): enqueue→lease latency at idle and under load, full job cycles
//! per second (lease, one output chunk, finish) with 1, 4 and 16 simulated nodes speaking the real node
//! protocol over HTTP to an in-process gateway on a real socket, and the time a dead node's job takes to be
//! re-queued and leased by another node. PostgreSQL is the shared embedded test server (fsync on).
//!
//! Like the node agent, a simulated node runs the jobs of one lease response concurrently (one task each) and,
//! speaking protocol 2, sends a short job's output in its finish request. The same cycles with protocol 1
//! (a separate output upload before the finish) are measured too, for comparison.
//!
//! `cargo bench -p cynode-gateway --bench dispatch` (add `-- quick` for a short run).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cynode_gateway::server::{self, AppState, CoreSettings, RouterSettings};
use cynode_orchestrator::crypto::hash_credential;
use cynode_orchestrator::dispatch::DispatchSettings;
use cynode_orchestrator::tasks::{self, NewJob, Origin};
use cynode_protocol::*;
use cynode_tests::TestDb;
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;

const MASTER: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJmrw=";
const KEY: &str = "bench-node-key-0123456789abcdef";

struct Env {
    base: String,
    pool: PgPool,
    state: AppState,
    http: reqwest::Client,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn env(settings: DispatchSettings) -> Env {
    let db = TestDb::new().await;
    sqlx::query("INSERT INTO node_keys (id, name, key_hash, grants) VALUES ($1, 'bench', $2, $3)")
        .bind(Uuid::now_v7())
        .bind(hash_credential(KEY))
        .bind(serde_json::json!({"executors": ["host"]}))
        .execute(&db.pool)
        .await
        .expect("key");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let core = CoreSettings { dispatch: settings, ..CoreSettings::default() };
    let state = AppState::start(db.pool.clone(), &SecretString::from(MASTER), core, rx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let rs = RouterSettings { max_body_bytes: 1 << 20, request_timeout: Duration::from_secs(60) };
    tokio::spawn(server::serve(listener, server::router(state.clone(), rs), std::future::pending()));
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client");
    Env { base, pool: db.pool.clone(), state, http, _stop: stop }
}

/// Nodes carry a `pool` label and jobs require one, so the latency probe and the load never take each
/// other's jobs.
async fn register(e: &Env, name: &str, pool: &str) -> String {
    let req = RegisterRequest {
        protocol_versions: SUPPORTED_VERSIONS.to_vec(),
        name: name.into(),
        capabilities: Capabilities {
            executors: vec![ExecutorKind::Host],
            max_concurrent_jobs: 32,
            labels: [("pool".to_string(), pool.to_string())].into(),
            ..Default::default()
        },
        agent_version: None,
    };
    let r: RegisterResponse = e
        .http
        .post(format!("{}{}", e.base, paths::REGISTER))
        .bearer_auth(KEY)
        .json(&req)
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    r.token
}

async fn post<T: serde::Serialize, R: serde::de::DeserializeOwned>(e: &Env, token: &str, path: &str, body: &T) -> R {
    let r = e.http.post(format!("{}{path}", e.base)).bearer_auth(token).json(body).send().await.expect("send");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.expect("json")
}

fn job(pool: &str) -> NewJob {
    NewJob {
        spec: JobSpec::Host(HostSpec { command: "true".into(), timeout_s: 60, max_output_bytes: 1024 }),
        requirements: Requirements {
            labels: [("pool".to_string(), pool.to_string())].into(),
            ..Requirements::default()
        },
        priority: 0,
        max_attempts: 3,
        hold: false,
    }
}

/// Enqueues one probe job; returns it and when its transaction had committed.
async fn enqueue(e: &Env) -> (Uuid, Instant) {
    let mut tx = e.pool.begin().await.expect("tx");
    let origin = Origin { requester: "bench".into(), source: "bench".into(), ..Origin::default() };
    let task = tasks::create_task(&mut tx, &origin, "run", "true", &serde_json::json!({})).await.expect("task");
    let id = tasks::create_job(&mut tx, task, &job("probe")).await.expect("job");
    tx.commit().await.expect("commit");
    let committed = Instant::now();
    e.state.dispatcher.announce();
    (id, committed)
}

async fn enqueue_many(e: &Env, n: usize) {
    let mut tx = e.pool.begin().await.expect("tx");
    let origin = Origin { requester: "bench".into(), source: "bench".into(), ..Origin::default() };
    for _ in 0..n {
        let task = tasks::create_task(&mut tx, &origin, "run", "true", &serde_json::json!({})).await.expect("task");
        tasks::create_job(&mut tx, task, &job("load")).await.expect("job");
    }
    tx.commit().await.expect("commit");
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    println!(
        "{name:<44} n={:<5} p50={:>8.2} ms  p90={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.9),
        pct(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN)
    );
}

/// Latency samples in milliseconds: from the start of the enqueue (task + job + commit), and from its commit.
#[derive(Default)]
struct Latency {
    enqueue: Vec<f64>,
    commit: Vec<f64>,
}

/// One node long-polls; the bench enqueues one job at a time and measures until the lease response arrives.
async fn latency(e: &Env, token: &str, n: usize) -> Latency {
    let mut out = Latency::default();
    for _ in 0..n {
        let poll = {
            let (http, base, token) = (e.http.clone(), e.base.clone(), token.to_string());
            tokio::spawn(async move {
                let r = http
                    .post(format!("{base}{}", paths::LEASE))
                    .bearer_auth(&token)
                    .json(&LeaseRequest { max_jobs: 1, wait_ms: 10_000 })
                    .send()
                    .await
                    .expect("lease");
                let got: LeaseResponse = r.json().await.expect("json");
                (Instant::now(), got)
            })
        };
        tokio::time::sleep(Duration::from_millis(15)).await; // the node is now waiting
        let t0 = Instant::now();
        let (id, committed) = enqueue(e).await;
        let (t1, got) = poll.await.expect("join");
        assert_eq!(got.leases.first().map(|l| l.job_id), Some(id));
        out.enqueue.push((t1 - t0).as_secs_f64() * 1000.0);
        out.commit.push(t1.saturating_duration_since(committed).as_secs_f64() * 1000.0);
        let l = &got.leases[0];
        let lease = LeaseRef { job_id: l.job_id, attempt: l.attempt, lease_token: l.lease_token };
        let _: FinishAck = post(e, token, paths::FINISH, &FinishRequest { lease, outcome: done() }).await;
    }
    out
}

fn done() -> Outcome {
    Outcome { exit_code: Some(0), output_bytes: 3, ..Outcome::new(FinishStatus::Succeeded, 1) }
}

/// How a simulated node reports a job's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// Protocol 2: the chunk rides in the finish request.
    Carried,
    /// Protocol 1: an output upload, then the finish.
    Separate,
}

/// One job's cycle after its lease: output and finish.
async fn run_job(e: &Env, token: &str, l: Lease, wire: Wire) {
    let lease = LeaseRef { job_id: l.job_id, attempt: l.attempt, lease_token: l.lease_token };
    let chunk = OutputChunk { stream: Stream::Stdout, seq: 0, data: "ok\n".into() };
    let output = match wire {
        Wire::Carried => vec![chunk],
        Wire::Separate => {
            let _: OutputAck = post(e, token, paths::OUTPUT, &OutputBatch { lease, chunks: vec![chunk] }).await;
            Vec::new()
        }
    };
    let req = FinishWithOutput { finish: FinishRequest { lease, outcome: done() }, output };
    let ack: FinishAck = post(e, token, paths::FINISH, &req).await;
    assert!(!ack.duplicate, "a first finish is never a duplicate");
}

/// Jobs a simulated node runs at once.
const SLOTS: usize = 8;

/// Simulated nodes run full cycles until `stop`, counting completed cycles. Like the agent's lease loop, a
/// node long-polls whenever a slot is free, for as many jobs as it has free slots, and runs each job in its
/// own task.
async fn cycle_nodes(
    e: &Arc<Env>,
    tokens: &[String],
    wire: Wire,
    stop: Arc<AtomicBool>,
    done_count: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut hs = Vec::new();
    for t in tokens {
        let (e, t, stop, count) = (e.clone(), t.clone(), stop.clone(), done_count.clone());
        hs.push(tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(SLOTS));
            let mut running = tokio::task::JoinSet::new();
            while !stop.load(Ordering::Relaxed) {
                let mut permit = slots.clone().acquire_many_owned(1).await.expect("slots");
                if let Ok(more) = slots.clone().try_acquire_many_owned(slots.available_permits() as u32) {
                    permit.merge(more);
                }
                let want = LeaseRequest { max_jobs: permit.num_permits() as u32, wait_ms: 200 };
                let got: LeaseResponse = post(&e, &t, paths::LEASE, &want).await;
                for l in got.leases {
                    let (e, t, count, slot) = (e.clone(), t.clone(), count.clone(), permit.split(1));
                    running.spawn(async move {
                        run_job(&e, &t, l, wire).await;
                        count.fetch_add(1, Ordering::Relaxed);
                        drop(slot);
                    });
                }
                while let Some(done) = running.try_join_next() {
                    done.expect("job cycle");
                }
            }
            while let Some(done) = running.join_next().await {
                done.expect("job cycle");
            }
        }));
    }
    hs
}

async fn throughput(nodes: usize, jobs: usize, wire: Wire) -> f64 {
    let e = Arc::new(env(DispatchSettings::default()).await);
    let mut tokens = Vec::new();
    for i in 0..nodes {
        tokens.push(register(&e, &format!("sim-{i}"), "load").await);
    }
    enqueue_many(&e, jobs).await;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let wall = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    eprintln!("cycles start at {:.3} (wall clock, for lining up profiles)", wall().as_secs_f64());
    let hs = cycle_nodes(&e, &tokens, wire, stop.clone(), count.clone()).await;
    while count.load(Ordering::Relaxed) < jobs as u64 && t0.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("cycles end at {:.3}", wall().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        let _ = h.await;
    }
    let finished: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'succeeded'")
        .fetch_one(&e.pool)
        .await
        .expect("count");
    let chunks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_output_chunks").fetch_one(&e.pool).await.expect("count");
    let cycles = count.load(Ordering::Relaxed);
    assert_eq!((finished, chunks), (cycles as i64, cycles as i64), "every cycle finished a job with its output");
    cycles as f64 / secs
}

async fn requeue_time(samples: usize) -> Vec<f64> {
    let e = env(DispatchSettings::default()).await;
    let dead = register(&e, "dead", "probe").await;
    let alive = register(&e, "alive", "probe").await;
    let mut out = Vec::new();
    for _ in 0..samples {
        enqueue(&e).await;
        let got: LeaseResponse = post(&e, &dead, paths::LEASE, &LeaseRequest { max_jobs: 1, wait_ms: 1000 }).await;
        assert_eq!(got.leases.len(), 1);
        let t0 = Instant::now(); // the dead node goes silent right after taking the job
        let got: LeaseResponse = post(&e, &alive, paths::LEASE, &LeaseRequest { max_jobs: 1, wait_ms: 20_000 }).await;
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
        let l = &got.leases[0];
        let lease = LeaseRef { job_id: l.job_id, attempt: l.attempt, lease_token: l.lease_token };
        let _: FinishAck = post(&e, &alive, paths::FINISH, &FinishRequest { lease, outcome: done() }).await;
    }
    out
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    // `cycles`: only the full-cycle rows (for profiling the hot path).
    let cycles_only = std::env::args().any(|a| a == "cycles");
    let (lat_n, jobs, requeues) = if quick { (100, 1000, 3) } else { (500, 5000, 10) };
    // `nodes=16,32` / `jobs=20000`: other node counts and backlog sizes for the `cycles` rows (profiling).
    let arg = |name: &str| std::env::args().find_map(|a| a.strip_prefix(&format!("{name}=")).map(str::to_string));
    let jobs = arg("jobs").and_then(|j| j.parse().ok()).unwrap_or(jobs);
    let node_counts: Vec<usize> =
        arg("nodes").map(|n| n.split(',').filter_map(|n| n.parse().ok()).collect()).unwrap_or_else(|| vec![1, 4, 16]);
    println!(
        "dispatch benchmark ({}), PostgreSQL fsync on, {} CPUs",
        if quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    if cycles_only {
        for &nodes in &node_counts {
            let rate = throughput(nodes, jobs, Wire::Carried).await;
            println!("{:<44} {rate:>8.0} cycles/s ({jobs} jobs)", format!("full cycles, {nodes} node(s)"));
        }
        return;
    }
    let e = env(DispatchSettings::default()).await;
    let token = register(&e, "probe", "probe").await;
    latency(&e, &token, 20).await; // warm-up
    let idle = latency(&e, &token, lat_n).await;
    summary("enqueue→lease, idle", idle.enqueue);
    summary("  of which commit→lease", idle.commit);
    {
        let fast = env(DispatchSettings { async_claims: true, ..DispatchSettings::default() }).await;
        let token = register(&fast, "probe", "probe").await;
        latency(&fast, &token, 20).await;
        let idle = latency(&fast, &token, lat_n).await;
        summary("enqueue→lease, idle, async claims", idle.enqueue);
        summary("  of which commit→lease", idle.commit);
    }

    // Under load: 16 simulated nodes cycling through a backlog while the probe measures.
    let e = Arc::new(e);
    let mut tokens = Vec::new();
    for i in 0..16 {
        tokens.push(register(&e, &format!("load-{i}"), "load").await);
    }
    enqueue_many(&e, jobs * 4).await;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let hs = cycle_nodes(&e, &tokens, Wire::Carried, stop.clone(), count.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let c0 = count.load(Ordering::Relaxed);
    let under = latency(&e, &token, lat_n / 2).await;
    let rate = (count.load(Ordering::Relaxed) - c0) as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        let _ = h.await;
    }
    summary(&format!("enqueue→lease, under load ({rate:.0} cycles/s)"), under.enqueue);
    summary("  of which commit→lease", under.commit);

    for nodes in [1, 4, 16] {
        let rate = throughput(nodes, jobs, Wire::Carried).await;
        println!("{:<44} {rate:>8.0} cycles/s ({jobs} jobs)", format!("full cycles, {nodes} node(s)"));
    }
    let rate = throughput(16, jobs, Wire::Separate).await;
    println!("{:<44} {rate:>8.0} cycles/s ({jobs} jobs)", "full cycles, 16 nodes, protocol 1 (2 writes)");
    summary("dead node: lease→re-leased elsewhere", requeue_time(requeues).await);
}
