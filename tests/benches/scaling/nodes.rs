//! Simulated node agents for the dispatch half of the scaling benchmark: they speak the real node protocol over
//! HTTP through the load balancer (the same loop as `gateway/benches/dispatch.rs`: 8 slots, a long-poll whenever a
//! slot is free for as many jobs as are free, each job's cycle — one output chunk carried in the finish — in a task
//! of its own) and count the cycles they complete.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cynode_orchestrator::tasks::{self, NewJob, Origin};
use cynode_protocol::{
    Capabilities, ExecutorKind, FinishAck, FinishRequest, FinishStatus, FinishWithOutput, HostSpec, JobSpec, Lease,
    LeaseRef, LeaseRequest, LeaseResponse, Outcome, OutputChunk, RegisterRequest, RegisterResponse, Requirements,
    SUPPORTED_VERSIONS, Stream, paths,
};
use sqlx::PgPool;

/// The node key every simulated node registers with (the bootstrap's `node_keys`).
pub const KEY: &str = "scaling-node-key-0123456789abcdef";

/// Jobs a simulated node runs at once.
const SLOTS: usize = 8;

/// Registers a node named `name` at `base`; its token.
pub async fn register(http: &reqwest::Client, base: &str, name: &str) -> String {
    let req = RegisterRequest {
        protocol_versions: SUPPORTED_VERSIONS.to_vec(),
        name: name.into(),
        capabilities: Capabilities {
            executors: vec![ExecutorKind::Host],
            max_concurrent_jobs: 32,
            ..Default::default()
        },
        agent_version: None,
    };
    let r = http.post(format!("{base}{}", paths::REGISTER)).bearer_auth(KEY).json(&req).send().await.expect("register");
    assert!(r.status().is_success(), "register: {}", r.status());
    r.json::<RegisterResponse>().await.expect("register JSON").token
}

async fn post<T: serde::Serialize, R: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: &T,
) -> R {
    let r = http.post(format!("{base}{path}")).bearer_auth(token).json(body).send().await.expect("send");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.expect("json")
}

/// Enqueues `n` no-op host jobs (`true`) in one transaction, straight in the database.
pub async fn enqueue(pool: &PgPool, n: usize) {
    let mut tx = pool.begin().await.expect("tx");
    let origin = Origin { requester: "bench".into(), source: "bench".into(), ..Origin::default() };
    for _ in 0..n {
        let task = tasks::create_task(&mut tx, &origin, "run", "true", &serde_json::json!({})).await.expect("task");
        let job = NewJob {
            spec: JobSpec::Host(HostSpec { command: "true".into(), timeout_s: 60, max_output_bytes: 1024 }),
            requirements: Requirements::default(),
            priority: 0,
            max_attempts: 3,
            hold: false,
        };
        tasks::create_job(&mut tx, task, &job).await.expect("job");
    }
    tx.commit().await.expect("commit");
}

fn done() -> Outcome {
    Outcome { exit_code: Some(0), output_bytes: 3, ..Outcome::new(FinishStatus::Succeeded, 1) }
}

async fn run_job(http: &reqwest::Client, base: &str, token: &str, l: Lease) {
    let lease = LeaseRef { job_id: l.job_id, attempt: l.attempt, lease_token: l.lease_token };
    let chunk = OutputChunk { stream: Stream::Stdout, seq: 0, data: "ok\n".into() };
    let req = FinishWithOutput { finish: FinishRequest { lease, outcome: done() }, output: vec![chunk] };
    let ack: FinishAck = post(http, base, token, paths::FINISH, &req).await;
    assert!(!ack.duplicate, "a first finish is never a duplicate");
}

/// Runs the nodes of `tokens` against `base` until `stop`, adding each completed cycle to `count`.
pub fn cycle(
    http: &reqwest::Client,
    base: &str,
    tokens: &[String],
    stop: &Arc<AtomicBool>,
    count: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    tokens
        .iter()
        .map(|t| {
            let (http, base, t, stop, count) = (http.clone(), base.to_owned(), t.clone(), stop.clone(), count.clone());
            tokio::spawn(async move {
                let slots = Arc::new(tokio::sync::Semaphore::new(SLOTS));
                let mut running = tokio::task::JoinSet::new();
                while !stop.load(Ordering::Relaxed) {
                    let mut permit = slots.clone().acquire_many_owned(1).await.expect("slots");
                    let free = u32::try_from(slots.available_permits()).unwrap_or(0);
                    if let Ok(more) = slots.clone().try_acquire_many_owned(free) {
                        permit.merge(more);
                    }
                    let want = LeaseRequest { max_jobs: permit.num_permits() as u32, wait_ms: 200 };
                    let got: LeaseResponse = post(&http, &base, &t, paths::LEASE, &want).await;
                    for l in got.leases {
                        let (http, base, t, count, slot) =
                            (http.clone(), base.clone(), t.clone(), count.clone(), permit.split(1));
                        running.spawn(async move {
                            run_job(&http, &base, &t, l).await;
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
            })
        })
        .collect()
}
