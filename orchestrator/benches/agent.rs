//! Agent turn benchmark (a harness, not a test): the orchestration overhead of a turn's steps with a model and a
//! sandbox that answer at once, through the real turn engine, dispatcher, store, stream worker and Slack sink
//! against the rule-enforcing fake Slack.
//!
//! Simulated nodes lease and finish over the dispatcher as a node does: the model answers its first step of a
//! turn with a `run_command` call and its second with text; the sandbox finishes each job with exit 0 at once.
//! So every turn is: model step → sandbox job → model step → answer. Reported, from the store's timestamps:
//! - reaction: a job's finish committed → the turn's next job enqueued (or the turn ended), per step;
//! - dispatch: a job enqueued → leased by its node;
//! - step: reaction + dispatch (target p50 ≤ 10 ms, p99 ≤ 50 ms);
//! - visible: the turn's request handled → the fake Slack received the thread's first post after it (the turn's
//!   "Thinking…", or its answer when the turn was faster than the stream's first step; target p99 ≤ 500 ms;
//!   ingress before it is measured by `scripts/bench-ingress`);
//! - throughput with `CONCURRENT` threads running turns back to back for `SECONDS`.
//!
//! `cargo bench -p cynode-orchestrator --bench agent [-- TURNS [CONCURRENT [SECONDS [PAUSE_MS]]]]` (defaults: 100
//! turns one at a time, then 50 threads for 30 s with turns back to back; `PAUSE_MS` paces each thread, so the
//! 50 threads offer a load below saturation).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cynode_orchestrator::agent::{AgentSettings, spawn_agent_worker};
use cynode_orchestrator::commands::{CommandSettings, Commands};
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::dispatch::{DispatchSettings, Dispatcher};
use cynode_orchestrator::installs::Installs;
use cynode_orchestrator::nodes;
use cynode_orchestrator::store::{self, PoolSettings};
use cynode_orchestrator::stream::{Sinks, SlackSink, StreamRates, StreamSettings, spawn_stream_worker};
use cynode_orchestrator::tasks::Origin;
use cynode_protocol::{
    Capabilities, ExecutorKind, FinishRequest, FinishStatus, JobSpec, LeaseRef, Outcome, OutputBatch, OutputChunk,
    RegisterRequest, Stream, ToolCall,
};
use cynode_tests::TestDb;
use cynode_tests::fakes::FakeSlack;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

struct Thread {
    install: Uuid,
    conversation: Uuid,
    slack: FakeSlack,
    started: Instant,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let turns: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let concurrent: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30);
    let pause = Duration::from_millis(args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(run(turns, concurrent, seconds, pause));
}

async fn run(turns: usize, concurrent: usize, seconds: u64, pause: Duration) {
    let db = TestDb::new().await;
    // As in production: the gateway's pool (`database.max_connections`, 16), the stream worker's own (4), and one
    // for the harness's own look-ups.
    let settings = PoolSettings { max_connections: 16, acquire_timeout: Duration::from_secs(30) };
    let pool = store::connect(&db.url, &settings).await.expect("pool");
    let stream_pool = store::sibling(&pool, 4, "cynode stream");
    let probe = store::sibling(&pool, 4, "bench");
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
    let file = cynode_orchestrator::bootstrap::BootstrapFile::parse(
        "templates:\n  - { name: busybox, image: 'cynode/busybox:latest' }\n",
        "bench",
    )
    .expect("bootstrap");
    cynode_orchestrator::bootstrap::import(&pool, &secrets, &file, "bench").await.expect("import");
    let n = concurrent.max(1);
    let mut threads = Vec::new();
    for i in 0..n {
        let slack = FakeSlack::start().await;
        let started = Instant::now();
        let team = format!("T0AGENT{i:03}");
        let install = install(&pool, &secrets, &team, &slack.base_url(), slack.token()).await;
        let conversation = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO conversations (id, install_id, channel, thread, thread_ref) VALUES ($1, $2, 'C0B', $3, $4)",
        )
        .bind(conversation)
        .bind(install)
        .bind(format!("17000000{i:02}.000100"))
        .bind(
            json!({"platform": "slack", "install": team, "channel": "C0B", "thread": format!("17000000{i:02}.000100")}),
        )
        .execute(&pool)
        .await
        .expect("conversation");
        threads.push(Thread { install, conversation, slack, started });
    }
    let installs = Arc::new(Installs::new(pool.clone(), secrets, Duration::from_secs(30)));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("http");
    let sinks = Sinks::new().with(Arc::new(SlackSink::new(http, installs, StreamRates::default().slack)));
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    spawn_stream_worker(stream_pool, sinks, StreamSettings::default(), shutdown.clone());
    let dispatcher = Dispatcher::new(pool.clone(), DispatchSettings::default());
    dispatcher.spawn_background(shutdown.clone());
    let commands = Commands::new(
        pool.clone(),
        dispatcher.clone(),
        CommandSettings { agent: AgentSettings::default(), ..CommandSettings::default() },
    );
    spawn_agent_worker(commands.clone(), shutdown);
    let llm = node(&pool, "llm", vec![ExecutorKind::Inference], vec![]).await;
    let sandbox = node(&pool, "box", vec![ExecutorKind::Docker], vec!["busybox".into()]).await;
    for _ in 0..4 {
        tokio::spawn(simulate(dispatcher.clone(), llm));
        tokio::spawn(simulate(dispatcher.clone(), sandbox));
    }
    let threads = Arc::new(threads);

    println!("agent turns: model step → run_command → model step → answer; model and sandbox answer at once");
    let mut visible = Vec::new();
    let t0 = Instant::now();
    for i in 0..turns {
        let th = &threads[i % n];
        visible.push((i % n, th.started.elapsed()));
        turn(&commands, &probe, th, &format!("sequential turn {i}")).await;
    }
    let seq_elapsed = t0.elapsed();
    report(&pool, "one at a time", turns, seq_elapsed).await;
    println!("  visible (request handled → first post in the thread): {}", pct(&thinking(&threads, &visible)));

    sqlx::query("UPDATE agent_turns SET error = 'seq' WHERE error IS NULL").execute(&pool).await.expect("mark");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let t1 = Instant::now();
    let mut workers = Vec::new();
    for w in 0..n {
        let (commands, pool, threads) = (commands.clone(), probe.clone(), threads.clone());
        workers.push(tokio::spawn(async move {
            let mut done = 0;
            // Threads start spread over one pause, so a paced run offers an even load.
            tokio::time::sleep(pause.mul_f64(w as f64 / n as f64)).await;
            while Instant::now() < deadline {
                turn(&commands, &pool, &threads[w], &format!("concurrent turn {w}.{done}")).await;
                done += 1;
                tokio::time::sleep(pause).await;
            }
            done
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await.expect("worker");
    }
    let label = if pause.is_zero() {
        format!("{n} threads at once, turns back to back")
    } else {
        format!("{n} threads at once, {} ms between a thread's turns", pause.as_millis())
    };
    report(&pool, &label, total, t1.elapsed()).await;
}

/// Starts a turn in `th` and waits until it ended.
async fn turn(commands: &Commands, pool: &PgPool, th: &Thread, text: &str) {
    let origin = Origin {
        install_id: Some(th.install),
        conversation_id: Some(th.conversation),
        requester: "U0BENCH".into(),
        source: "chat".into(),
        ..Origin::default()
    };
    let r = commands.handle(&origin, text).await.expect("handle");
    let task = r.task_id.expect("a turn started");
    loop {
        let state: String = sqlx::query_scalar("SELECT state FROM agent_turns WHERE task_id = $1")
            .bind(task)
            .fetch_one(pool)
            .await
            .expect("turn");
        if state != "running" {
            assert_eq!(state, "succeeded", "turn {text}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A node: leases and finishes at once. The model calls `run_command` at a turn's first step and answers after.
async fn simulate(d: Arc<Dispatcher>, node: Uuid) {
    loop {
        let Ok(leases) = d.lease(node, 16, Duration::from_secs(1)).await else { continue };
        for l in leases {
            let lease = LeaseRef { job_id: l.job_id, attempt: l.attempt, lease_token: l.lease_token };
            let (text, calls) = match &l.spec {
                // The turn's tool result is in: answer (earlier turns of the thread have tool results too).
                JobSpec::Inference(spec) if spec.messages.last().is_some_and(|m| m.role == "tool") => {
                    ("Done.".to_owned(), vec![])
                }
                JobSpec::Inference(_) => (
                    String::new(),
                    vec![ToolCall {
                        id: "c0".into(),
                        name: "run_command".into(),
                        arguments: r#"{"command": "true"}"#.into(),
                    }],
                ),
                _ => (String::new(), vec![]),
            };
            if !text.is_empty() {
                let chunks = vec![OutputChunk { stream: Stream::Stdout, seq: 0, data: text }];
                d.output(node, &OutputBatch { lease, chunks }).await.expect("output");
            }
            let outcome = Outcome { exit_code: Some(0), tool_calls: calls, ..Outcome::new(FinishStatus::Succeeded, 0) };
            d.finish(node, &FinishRequest { lease, outcome }).await.expect("finish");
        }
    }
}

/// Reaction, dispatch and step latencies of the turns not reported yet, from the store's timestamps.
async fn report(pool: &PgPool, label: &str, turns: usize, elapsed: Duration) {
    // Each turn's jobs in order: its model steps and its tool calls' jobs.
    let rows: Vec<(Uuid, f64, f64, f64, Option<f64>)> = sqlx::query_as(
        "WITH t AS (SELECT id, steps_task_id, finished_at FROM agent_turns WHERE error IS NULL AND state = 'succeeded'),
              j AS (SELECT t.id AS turn, jb.created_at, jb.leased_at, jb.finished_at FROM t JOIN jobs jb ON jb.task_id = t.steps_task_id
                    UNION ALL
                    SELECT t.id, jb.created_at, jb.leased_at, jb.finished_at FROM t JOIN agent_tool_calls c ON c.turn_id = t.id
                    JOIN jobs jb ON jb.id = c.job_id)
         SELECT turn, extract(epoch FROM created_at)::float8, extract(epoch FROM leased_at)::float8,
                extract(epoch FROM j.finished_at)::float8,
                (SELECT extract(epoch FROM finished_at)::float8 FROM t WHERE t.id = j.turn)
         FROM j ORDER BY turn, created_at",
    )
    .fetch_all(pool)
    .await
    .expect("timestamps");
    let (mut reaction, mut dispatch, mut step) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (turn, created, leased, finished, turn_end)) in rows.iter().enumerate() {
        let d = (leased - created) * 1000.0;
        dispatch.push(d);
        let next = match rows.get(i + 1) {
            Some((t, next_created, ..)) if t == turn => Some(*next_created),
            _ => *turn_end,
        };
        if let Some(next) = next {
            let r = (next - finished) * 1000.0;
            reaction.push(r);
            step.push(r + d);
        }
    }
    println!(
        "{label}: {turns} turns in {:.1} s ({:.1} turns/s, {} jobs)",
        elapsed.as_secs_f64(),
        turns as f64 / elapsed.as_secs_f64(),
        rows.len()
    );
    println!("  reaction (finish → next job or answer): {}", pct(&reaction));
    println!("  dispatch (enqueue → lease):             {}", pct(&dispatch));
    println!("  step (reaction + dispatch):             {}", pct(&step));
}

/// Per turn of the sequential phase: from the request to the fake's first post in that thread after it.
fn thinking(threads: &[Thread], asked: &[(usize, Duration)]) -> Vec<f64> {
    let mut out = Vec::new();
    for (i, th) in threads.iter().enumerate() {
        let posts: Vec<Duration> =
            th.slack.calls_to("chat.postMessage").into_iter().filter(|c| c.status == 200).map(|c| c.at).collect();
        for (_, at) in asked.iter().filter(|(t, _)| *t == i) {
            if let Some(p) = posts.iter().find(|p| *p >= at) {
                out.push((*p - *at).as_secs_f64() * 1000.0);
            }
        }
    }
    out
}

fn pct(v: &[f64]) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() as f64 - 1.0) * q).round() as usize];
    format!("p50 {:.1} ms, p90 {:.1}, p99 {:.1}, max {:.1} (n={})", at(0.5), at(0.9), at(0.99), s[s.len() - 1], s.len())
}

async fn install(pool: &PgPool, secrets: &SecretBox, team: &str, base: &str, token: &str) -> Uuid {
    let id = Uuid::now_v7();
    let sealed = secrets.seal(&format!("install:slack:{team}"), json!({"bot_token": token}).to_string().as_bytes());
    sqlx::query("INSERT INTO installs (id, platform, external_id, name, settings, secrets) VALUES ($1, 'slack', $2, $2, $3, $4)")
        .bind(id)
        .bind(team)
        .bind(json!({"api_base_url": base}))
        .bind(sealed)
        .execute(pool)
        .await
        .expect("install");
    id
}

async fn node(pool: &PgPool, name: &str, executors: Vec<ExecutorKind>, templates: Vec<String>) -> Uuid {
    let key = format!("bench-key-{name}-0123456789abcdef");
    sqlx::query("INSERT INTO node_keys (id, name, key_hash, grants) VALUES ($1, $2, $3, $4)")
        .bind(Uuid::now_v7())
        .bind(format!("k-{name}"))
        .bind(cynode_orchestrator::crypto::hash_credential(&key))
        .bind(json!({ "executors": ["docker", "inference"] }))
        .execute(pool)
        .await
        .expect("node key");
    let caps = Capabilities { executors, templates, max_concurrent_jobs: 64, ..Capabilities::default() };
    let req =
        RegisterRequest { protocol_versions: vec![1], name: name.into(), capabilities: caps, agent_version: None };
    nodes::register(pool, &key, &req).await.expect("register").node_id
}
