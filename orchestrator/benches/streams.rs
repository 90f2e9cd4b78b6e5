//! Streaming benchmark (a harness, not a test): 50 concurrent streams for a sustained period against the
//! rate-enforcing fake platforms, through the real stream worker, its platform sinks over real sockets and the
//! store-backed shared budget, with production stream settings.
//!
//! Each stream is a running job whose output arrives as one line every `interval` (through the dispatcher, as a
//! node uploads it). Every line carries a marker; the latency of a line is from the commit of its upload to the
//! first successful platform call (post or edit) whose text shows it. Reported per platform: 429 answers (target
//! 0), other refusals, latency p50/p90/p99/max (target ≤ 1.2 s), completeness (lines ever shown / lines produced)
//! and whether every stream ended with its final status.
//!
//! Platforms: Discord (one bot, 50 channels, each stream answering its own `/cynode` interaction through the
//! interaction's webhook, as every Discord request does in its first 15 minutes; `discord-bot` posts and edits
//! with the bot token instead, as a stream does past the interaction token's 15 minutes), Telegram (one bot, 50 private chats: live output as drafts, each
//! draft call counting as visible) and Slack (50 workspaces,
//! because Slack's `chat.update` budget of about 50 a minute is per workspace: one workspace cannot carry 50
//! live streams at one update a second, whatever the client does).
//!
//! `cargo bench -p cynode-orchestrator --bench streams [-- SECONDS [STREAMS [PLATFORMS]]]` (defaults: 60 s, 50
//! streams, `discord,telegram,slack`; `discord-bot` as above; `slack` streams output with Slack's streaming methods, `slack-nostream`
//! only posts and edits; `telegram` drafts in private chats, `telegram-nodrafts` only posts and edits).
//! With `STREAMS_DUMP=path`, every platform call (time, method, status, the lines it shows) and every line's
//! commit time are written to `path.<platform>`, for finding where a latency tail comes from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cynode_adapters::{Actor, Inbound, InboundKind, ReplyHandle, ThreadRef};
use cynode_orchestrator::crypto::{SecretBox, hash_credential};
use cynode_orchestrator::dispatch::{DispatchSettings, Dispatcher};
use cynode_orchestrator::installs::Installs;
use cynode_orchestrator::nodes;
use cynode_orchestrator::stream::{
    DiscordSink, Sinks, SlackSink, StreamRates, StreamSettings, TelegramSink, spawn_stream_worker,
};
use cynode_orchestrator::tasks::{self, NewJob, Origin};
use cynode_protocol::{
    Capabilities, ExecutorKind, FinishRequest, FinishStatus, HostSpec, JobSpec, LeaseRef, Outcome, OutputBatch,
    OutputChunk, RegisterRequest, Requirements, Stream,
};
use cynode_tests::TestDb;
use cynode_tests::fakes::{Call, FakeDiscord, FakeSlack, FakeTelegram};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// Commit time of each line: (stream, line) → when.
type Produced = Arc<Mutex<HashMap<(usize, usize), Instant>>>;

/// One line of output every this long, per stream.
const INTERVAL: Duration = Duration::from_millis(250);

/// The fakes of one scenario, as calls with a common clock.
enum Fakes {
    Discord(FakeDiscord),
    Telegram(FakeTelegram),
    Slack(Vec<FakeSlack>),
}

impl Fakes {
    /// Every call with its absolute time.
    fn calls(&self) -> Vec<(Instant, Call)> {
        let with = |start: Instant, calls: Vec<Call>| calls.into_iter().map(move |c| (start + c.at, c));
        match self {
            Self::Discord(f) => with(f.started(), f.calls()).collect(),
            Self::Telegram(f) => with(f.started(), f.calls()).collect(),
            Self::Slack(fs) => fs.iter().flat_map(|f| with(f.started(), f.calls())).collect(),
        }
    }

    /// Slack (one workspace per stream): whether stream `i`'s thread shows the final status. With streaming,
    /// the status sits in a header message of its own, without output lines.
    fn slack_finals(&self) -> Option<Vec<bool>> {
        let Self::Slack(fs) = self else { return None };
        let done = |f: &FakeSlack| f.messages_in("C0BENCH", THREAD).iter().any(|m| m.shown().contains("Succeeded"));
        Some(fs.iter().map(done).collect())
    }
}

/// The Slack thread of every stream.
const THREAD: Option<&str> = Some("1700000000.000100");

struct Row {
    platform: &'static str,
    streams: usize,
    lines: usize,
    calls: usize,
    rate_limited: usize,
    refused: usize,
    /// p50, p90, p99, max in ms.
    latency: (f64, f64, f64, f64),
    completeness: f64,
    finished: usize,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(60);
    let streams: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let platforms = args.get(2).cloned().unwrap_or_else(|| "discord,telegram,slack".into());
    println!("{streams} streams, {seconds} s each, one line per {} ms per stream", INTERVAL.as_millis());
    let mut rows = Vec::new();
    for p in platforms.split(',') {
        rows.push(scenario(p.trim(), streams, Duration::from_secs(seconds)).await);
    }
    println!(
        "\n| platform | streams | lines | platform calls | 429s | other refusals | p50 ms | p90 ms | p99 ms | max ms \
         | lines shown | final status |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let (p50, p90, p99, max) = r.latency;
        println!(
            "| {} | {} | {} | {} | {} | {} | {p50:.0} | {p90:.0} | {p99:.0} | {max:.0} | {:.2} % | {}/{} |",
            r.platform,
            r.streams,
            r.lines,
            r.calls,
            r.rate_limited,
            r.refused,
            r.completeness * 100.0,
            r.finished,
            r.streams
        );
    }
}

async fn scenario(platform: &str, n: usize, length: Duration) -> Row {
    let interactions = platform == "discord";
    let (label, platform, streaming, drafts): (&'static str, &'static str, bool, bool) = match platform {
        "discord" => ("discord", "discord", false, false),
        "discord-bot" => ("discord (bot token)", "discord", false, false),
        "telegram" => ("telegram", "telegram", false, true),
        "telegram-nodrafts" => ("telegram (no drafts)", "telegram", false, false),
        "slack" => ("slack", "slack", true, false),
        "slack-nostream" => ("slack (no streaming)", "slack", false, false),
        other => {
            panic!(
                "unknown platform {other}: use discord, discord-bot, telegram, telegram-nodrafts, slack or slack-nostream"
            )
        }
    };
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let secrets = SecretBox::from_base64(&SecretBox::generate_key()).expect("key");
    let (fakes, threads) = match platform {
        "discord" => {
            let f = FakeDiscord::start().await;
            let install = install(&pool, &secrets, "discord", f.application_id(), &f.base_url(), f.bot_token()).await;
            let threads = (0..n)
                .map(|i| {
                    (
                        install,
                        f.application_id().to_owned(),
                        format!("{}", 1_400_000_000_000_000_000_u64 + i as u64),
                        None,
                    )
                })
                .collect();
            (Fakes::Discord(f), threads)
        }
        "telegram" => {
            let f = FakeTelegram::start().await;
            let install = install(&pool, &secrets, "telegram", "bench", &f.base_url(), f.token()).await;
            let threads = (0..n).map(|i| (install, "bench".to_owned(), format!("{}", 500_000 + i), None)).collect();
            (Fakes::Telegram(f), threads)
        }
        "slack" => {
            let mut fakes = Vec::new();
            let mut threads = Vec::new();
            for i in 0..n {
                let f = FakeSlack::start().await;
                let team = format!("T0BENCH{i:03}");
                let install = install(&pool, &secrets, "slack", &team, &f.base_url(), f.token()).await;
                threads.push((install, team, "C0BENCH".to_owned(), Some("1700000000.000100".to_owned())));
                fakes.push(f);
            }
            (Fakes::Slack(fakes), threads)
        }
        _ => unreachable!("checked above"),
    };
    let mut jobs = Vec::new();
    for (install, key, channel, thread) in &threads {
        let handle = match &fakes {
            Fakes::Discord(f) if interactions => {
                Some(ReplyHandle::Discord { application_id: key.clone(), token: f.interaction(channel) })
            }
            _ => None,
        };
        jobs.push(task(&pool, platform, *install, key, channel, thread.as_deref(), handle).await);
    }

    let installs = Arc::new(Installs::new(pool.clone(), secrets, Duration::from_secs(30)));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("http");
    let rates = StreamRates::default();
    let sinks = Sinks::new()
        .with(Arc::new(SlackSink::new(http.clone(), installs.clone(), rates.slack).with_streaming(streaming)))
        .with(Arc::new(DiscordSink::new(http.clone(), installs.clone(), rates.discord)))
        .with(Arc::new(TelegramSink::new(http, installs, rates.telegram)));
    let (stop, rx) = tokio::sync::watch::channel(false);
    spawn_stream_worker(pool.clone(), sinks, StreamSettings { drafts, ..StreamSettings::default() }, rx);

    let settings = DispatchSettings { lease_ttl: Duration::from_secs(3600), ..DispatchSettings::default() };
    let d = Dispatcher::new(pool.clone(), settings);
    let node = node(&pool, n).await;
    let mut leases = Vec::new();
    while leases.len() < n {
        leases.extend(d.lease(node, 32, Duration::from_secs(1)).await.expect("lease"));
    }
    let by_job: HashMap<Uuid, usize> = jobs.iter().enumerate().map(|(i, j)| (j.1, i)).collect();
    let produced: Produced = Arc::default();
    let started = Instant::now();
    let mut producers = Vec::new();
    for l in leases {
        let i = by_job[&l.job_id];
        let lease = LeaseRef { job_id: l.job_id, attempt: l.attempt, lease_token: l.lease_token };
        let (d, produced) = (d.clone(), produced.clone());
        producers.push(tokio::spawn(async move {
            // Streams start spread over one interval, as real jobs do.
            tokio::time::sleep(INTERVAL * u32::try_from(i).unwrap_or(0) / u32::try_from(n).unwrap_or(1)).await;
            let mut tick = tokio::time::interval(INTERVAL);
            let mut k = 0;
            while started.elapsed() < length {
                tick.tick().await;
                let data = format!("s{i:02}k{k:05} {}\n", "x".repeat(48));
                let chunk = OutputChunk { stream: Stream::Stdout, seq: k as u64, data };
                d.output(node, &OutputBatch { lease, chunks: vec![chunk] }).await.expect("upload");
                produced.lock().expect("produced").insert((i, k), Instant::now());
                k += 1;
            }
            let outcome = Outcome {
                exit_code: Some(0),
                ..Outcome::new(FinishStatus::Succeeded, u64::try_from(length.as_millis()).unwrap_or(0))
            };
            d.finish(node, &FinishRequest { lease, outcome }).await.expect("finish");
        }));
    }
    for p in producers {
        p.await.expect("producer");
    }
    let closed = wait_closed(&pool, n, Duration::from_secs(120)).await;
    let _ = stop.send(true);

    let calls = fakes.calls();
    let produced = produced.lock().expect("produced").clone();
    if let Ok(path) = std::env::var("STREAMS_DUMP") {
        let mut out = String::new();
        for (at, c) in &calls {
            let mut texts = Vec::new();
            strings(&c.params, &mut texts);
            let keys: Vec<String> =
                texts.iter().flat_map(|t| t.lines().filter_map(marker)).map(|(s, k)| format!("{s}:{k}")).collect();
            out.push_str(&format!(
                "C {} {} {} {}\n",
                at.saturating_duration_since(started).as_secs_f64(),
                c.method,
                c.status,
                keys.join(",")
            ));
        }
        for ((s, k), t) in &produced {
            out.push_str(&format!("P {} {s}:{k}\n", t.saturating_duration_since(started).as_secs_f64()));
        }
        std::fs::write(format!("{path}.{label}"), out).expect("dump");
    }
    let mut seen: HashMap<(usize, usize), Instant> = HashMap::new();
    let mut finals = vec![false; n];
    for (at, call) in calls.iter().filter(|(_, c)| c.status < 300) {
        let mut texts = Vec::new();
        strings(&call.params, &mut texts);
        for text in texts {
            for line in text.lines() {
                if let Some(key) = marker(line) {
                    seen.entry(key).and_modify(|t| *t = (*t).min(*at)).or_insert(*at);
                }
            }
            if text.contains("Succeeded")
                && let Some((s, _)) = text.lines().find_map(marker)
            {
                finals[s] = true;
            }
        }
    }
    if let Some(slack) = fakes.slack_finals() {
        finals = slack;
    }
    let mut lat: Vec<f64> = produced
        .iter()
        .filter_map(|(k, t)| seen.get(k).map(|s| s.saturating_duration_since(*t).as_secs_f64() * 1000.0))
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    let shown = produced.keys().filter(|k| seen.contains_key(k)).count();
    println!(
        "{platform}: {} lines from {n} streams, {} calls, {closed}/{n} streams closed",
        produced.len(),
        calls.len()
    );
    Row {
        platform: label,
        streams: n,
        lines: produced.len(),
        calls: calls.len(),
        rate_limited: calls.iter().filter(|(_, c)| c.is_rate_limited()).count(),
        refused: calls.iter().filter(|(_, c)| c.is_rejected()).count(),
        latency: (pct(0.5), pct(0.9), pct(0.99), lat.last().copied().unwrap_or(f64::NAN)),
        completeness: shown as f64 / produced.len().max(1) as f64,
        finished: finals.iter().filter(|f| **f).count(),
    }
}

/// `s07k00012 …` → (7, 12).
fn marker(line: &str) -> Option<(usize, usize)> {
    let line = line.trim_start_matches('`');
    let b = line.as_bytes();
    let ok = b.len() >= 9 && b[0] == b's' && b[3] == b'k';
    if !ok {
        return None;
    }
    Some((line.get(1..3)?.parse().ok()?, line.get(4..9)?.parse().ok()?))
}

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

async fn install(pool: &PgPool, secrets: &SecretBox, platform: &str, key: &str, base: &str, token: &str) -> Uuid {
    let id = Uuid::now_v7();
    let sealed = secrets.seal(&format!("install:{platform}:{key}"), json!({"bot_token": token}).to_string().as_bytes());
    sqlx::query(
        "INSERT INTO installs (id, platform, external_id, name, settings, secrets) VALUES ($1, $2, $3, $3, $4, $5)",
    )
    .bind(id)
    .bind(platform)
    .bind(key)
    .bind(json!({"api_base_url": base}))
    .bind(sealed)
    .execute(pool)
    .await
    .expect("install");
    id
}

/// A chat task with a running-to-be host job in its own conversation; returns (task, job). With a reply
/// `handle` (a Discord interaction), the task answers the recorded request it came with, as ingress records it.
async fn task(
    pool: &PgPool,
    platform: &str,
    install: Uuid,
    key: &str,
    channel: &str,
    thread: Option<&str>,
    handle: Option<ReplyHandle>,
) -> (Uuid, Uuid) {
    let conv = Uuid::now_v7();
    let thread_ref =
        json!({"platform": platform, "install": key, "channel": channel, "thread": thread, "reply_to": null});
    sqlx::query("INSERT INTO conversations (id, install_id, channel, thread, thread_ref) VALUES ($1, $2, $3, $4, $5)")
        .bind(conv)
        .bind(install)
        .bind(channel)
        .bind(thread.unwrap_or_default())
        .bind(thread_ref)
        .execute(pool)
        .await
        .expect("conversation");
    let inbound_id = match handle {
        None => None,
        Some(handle) => Some(inbound(pool, install, platform, key, channel, thread, handle).await),
    };
    let origin = Origin {
        install_id: Some(install),
        conversation_id: Some(conv),
        inbound_id,
        requester: "U0BENCH".into(),
        source: "chat".into(),
        ..Origin::default()
    };
    let job = NewJob {
        spec: JobSpec::Host(HostSpec { command: "bench".into(), timeout_s: 3600, max_output_bytes: 1 << 24 }),
        requirements: Requirements::default(),
        priority: 0,
        max_attempts: 1,
        hold: false,
    };
    let mut tx = pool.begin().await.expect("tx");
    let task = tasks::create_task(&mut tx, &origin, "run", "bench", &json!({})).await.expect("task");
    let job = tasks::create_job(&mut tx, task, &job).await.expect("job");
    tx.commit().await.expect("commit");
    (task, job)
}

/// Records the `/cynode run bench` request that carries `handle`.
async fn inbound(
    pool: &PgPool,
    install: Uuid,
    platform: &str,
    key: &str,
    channel: &str,
    thread: Option<&str>,
    handle: ReplyHandle,
) -> Uuid {
    let id = Uuid::now_v7();
    let inbound = Inbound {
        platform: serde_json::from_value(json!(platform)).expect("platform"),
        delivery_id: id.to_string(),
        thread: ThreadRef {
            platform: serde_json::from_value(json!(platform)).expect("platform"),
            install: key.to_owned(),
            channel: channel.to_owned(),
            thread: thread.map(str::to_owned),
            reply_to: None,
        },
        actor: Actor { id: "U0BENCH".into(), name: None },
        kind: InboundKind::Command { command: "cynode".into(), text: "run bench".into() },
        reply_handle: Some(handle),
    };
    sqlx::query(
        "INSERT INTO inbound_events (id, install_id, platform, delivery_id, kind, payload)
         VALUES ($1, $2, $3, $4, 'command', $5)",
    )
    .bind(id)
    .bind(install)
    .bind(platform)
    .bind(id.to_string())
    .bind(serde_json::to_value(&inbound).expect("payload"))
    .execute(pool)
    .await
    .expect("inbound event");
    id
}

async fn node(pool: &PgPool, n: usize) -> Uuid {
    let key = "bench-node-key-0123456789abcdef";
    sqlx::query("INSERT INTO node_keys (id, name, key_hash, grants) VALUES ($1, 'bench', $2, $3)")
        .bind(Uuid::now_v7())
        .bind(hash_credential(key))
        .bind(json!({ "executors": ["host"] }))
        .execute(pool)
        .await
        .expect("node key");
    let caps = Capabilities {
        executors: vec![ExecutorKind::Host],
        max_concurrent_jobs: u32::try_from(n).unwrap_or(u32::MAX),
        ..Capabilities::default()
    };
    let req =
        RegisterRequest { protocol_versions: vec![1], name: "bench".into(), capabilities: caps, agent_version: None };
    nodes::register(pool, key, &req).await.expect("register").node_id
}

/// Waits until `n` streams are closed (or `limit`); returns how many are.
async fn wait_closed(pool: &PgPool, n: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let closed: i64 = sqlx::query_scalar("SELECT count(*) FROM stream_records WHERE state = 'closed'")
            .fetch_one(pool)
            .await
            .expect("count");
        let closed = usize::try_from(closed).unwrap_or(0);
        if closed >= n || Instant::now() > deadline {
            return closed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
