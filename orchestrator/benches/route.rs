//! Routing benchmark (a harness, not a test): what deciding where a model call goes costs each model step.
//!
//! Before model providers, a turn checked `dispatch::feasible::check` (the online nodes' capabilities) when it
//! started and queued every step for a node; now every step is routed by `providers::route` (the same node read,
//! the providers that could serve the call and, when a local node could, a bounded count of the queue). Both are
//! timed in the same run against the same database, in three fleets:
//! - `small`: one inference node and one sandbox node, no provider;
//! - `fleet`: 50 nodes (10 inference) and two providers with a node each, the local queue short;
//! - `overflow`: the same fleet with the inference queue at the provider's threshold (calls go to the provider).
//!
//! `cargo bench -p cynode-orchestrator --bench route [-- CALLS]` (default 2,000 calls per case).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::dispatch::feasible;
use cynode_orchestrator::outbound_guard::{Cidr, OutboundGuard};
use cynode_orchestrator::providers::{self, PROVIDER_LABEL, ProviderSpec, Via};
use cynode_orchestrator::tasks::{self, NewJob, Origin};
use cynode_orchestrator::{crypto::hash_credential, nodes};
use cynode_protocol::{Capabilities, ExecutorKind, InferenceSpec, JobSpec, RegisterRequest, Requirements};
use cynode_tests::TestDb;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use uuid::Uuid;

const MODEL: &str = "big";

fn main() {
    let calls: usize =
        std::env::args().skip(1).find(|a| !a.starts_with("--")).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(run(calls));
}

async fn run(calls: usize) {
    println!(
        "| fleet | baseline feasible::check p50 / p99 (µs) | providers::route p50 / p99 (µs) | route / check (p50) | routed to |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    node(&pool, "llm-0", ExecutorKind::Inference, &[MODEL]).await;
    node(&pool, "box-0", ExecutorKind::Docker, &[]).await;
    case(&pool, "small", calls).await;

    for i in 1..10 {
        node(&pool, &format!("llm-{i}"), ExecutorKind::Inference, &[MODEL]).await;
    }
    for i in 1..40 {
        node(&pool, &format!("box-{i}"), ExecutorKind::Docker, &[]).await;
    }
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
    let guard = OutboundGuard::allowing(vec!["127.0.0.0/8".parse::<Cidr>().expect("cidr")]);
    for name in ["cloud", "backup"] {
        let spec = ProviderSpec {
            name: name.into(),
            install: None,
            base_url: "http://127.0.0.1:9".into(),
            api_key: Some(SecretString::from("sk-bench".to_string())),
            models: vec![MODEL.into(), "small".into()],
            max_concurrent: 8,
            queue_threshold: 8,
            enabled: true,
        };
        let mut tx = pool.begin().await.expect("tx");
        let (id, _) = providers::put(&mut tx, &secrets, &guard, "bench", &spec).await.expect("provider");
        tx.commit().await.expect("commit");
        provider_node(&pool, &secrets, id).await;
    }
    case(&pool, "fleet", calls).await;

    let req = Requirements { model: Some(MODEL.into()), ..Requirements::default() };
    for _ in 0..8 {
        enqueue(&pool, &req).await;
    }
    case(&pool, "overflow", calls).await;
}

async fn case(pool: &PgPool, fleet: &str, calls: usize) {
    let req = Requirements { model: Some(MODEL.into()), ..Requirements::default() };
    sqlx::query("UPDATE nodes SET last_seen_at = now()").execute(pool).await.expect("heartbeat");
    // Warm both paths (connections, plans), then alternate them so drift hits both alike.
    for _ in 0..50 {
        feasible::check(pool, ExecutorKind::Inference, &req).await.expect("check").expect("feasible");
        providers::route(pool, None, MODEL).await.expect("route").expect("routed");
    }
    let mut check = Vec::with_capacity(calls);
    let mut route = Vec::with_capacity(calls);
    let mut via = String::new();
    for i in 0..calls {
        // Nodes count as online for 10 s after they were last heard from: keep them heard from, as their
        // heartbeats do.
        if i % 200 == 0 {
            sqlx::query("UPDATE nodes SET last_seen_at = now()").execute(pool).await.expect("heartbeat");
        }
        let t = Instant::now();
        feasible::check(pool, ExecutorKind::Inference, &req).await.expect("check").expect("feasible");
        check.push(t.elapsed());
        let t = Instant::now();
        let routed = providers::route(pool, None, MODEL).await.expect("route").expect("routed");
        route.push(t.elapsed());
        via = match routed.via {
            Via::Node => "node".into(),
            Via::Provider { name, .. } => format!("provider {name}"),
        };
    }
    let (c50, c99) = percentiles(&mut check);
    let (r50, r99) = percentiles(&mut route);
    println!(
        "| {fleet} | {} / {} | {} / {} | {:.2} | {via} |",
        c50.as_micros(),
        c99.as_micros(),
        r50.as_micros(),
        r99.as_micros(),
        r50.as_secs_f64() / c50.as_secs_f64()
    );
}

fn percentiles(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort_unstable();
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    (at(0.50), at(0.99))
}

async fn node(pool: &PgPool, name: &str, executor: ExecutorKind, models: &[&str]) {
    let key = format!("key-for-{name}-0123456789abcdef");
    sqlx::query("INSERT INTO node_keys (id, name, key_hash, grants) VALUES ($1, $2, $3, $4)")
        .bind(Uuid::now_v7())
        .bind(format!("k-{name}"))
        .bind(hash_credential(&key))
        .bind(serde_json::json!({ "executors": [executor.as_str()] }))
        .execute(pool)
        .await
        .expect("node key");
    let caps = Capabilities {
        executors: vec![executor],
        models: models.iter().map(|m| (*m).to_string()).collect(),
        templates: if executor == ExecutorKind::Docker { vec!["busybox".into()] } else { Vec::new() },
        max_concurrent_jobs: 4,
        ..Capabilities::default()
    };
    let req =
        RegisterRequest { protocol_versions: vec![1], name: name.into(), capabilities: caps, agent_version: None };
    nodes::register(pool, &key, &req).await.expect("register");
}

async fn provider_node(pool: &PgPool, secrets: &SecretBox, id: Uuid) {
    let served = providers::served(pool, secrets).await.expect("served");
    let p = served.iter().find(|p| p.id == id).expect("provider");
    let caps = Capabilities {
        executors: vec![ExecutorKind::Provider],
        models: p.models.clone(),
        labels: BTreeMap::from([(PROVIDER_LABEL.to_string(), id.to_string())]),
        max_concurrent_jobs: 8,
        ..Capabilities::default()
    };
    let req = RegisterRequest {
        protocol_versions: vec![1],
        name: format!("provider-{}@bench", p.name),
        capabilities: caps,
        agent_version: None,
    };
    nodes::register(pool, p.node_key.expose_secret(), &req).await.expect("register");
}

async fn enqueue(pool: &PgPool, requirements: &Requirements) {
    let job = NewJob {
        spec: JobSpec::Inference(InferenceSpec {
            model: MODEL.into(),
            prompt: "queued".into(),
            messages: Vec::new(),
            tools: Vec::new(),
            tool_choice: None,
            system: None,
            max_tokens: 8,
            timeout_s: 30,
        }),
        requirements: requirements.clone(),
        priority: 0,
        max_attempts: 1,
        hold: false,
    };
    let mut tx = pool.begin().await.expect("tx");
    let origin = Origin { requester: "U1".into(), source: "bench".into(), ..Origin::default() };
    let task = tasks::create_task(&mut tx, &origin, "ask", "x", &serde_json::json!({})).await.expect("task");
    tasks::create_job(&mut tx, task, &job).await.expect("job");
    tx.commit().await.expect("commit");
}
