//! The soak's deployment (replicas, node, installs, the API token and the webhook subscription), its events, the
//! approver, and the invariants checked at the end.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cynode_adapters::slack;
use cynode_node_agent::executor::docker::connect_to;
use cynode_node_agent::images::build_busybox_image;
use cynode_tests::cluster::{CLUSTER_MASTER_KEY, Cluster, ClusterOptions};
use cynode_tests::fakes::FakeSlack;
use cynode_tests::fakes::slack::Message;
use cynode_tests::process::run_to_end;
use serde_json::{Value, json};

use crate::receiver::Receiver;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const NODE_KEY: &str = "soak-node-key-0123456789abcdef";
const IMAGE: &str = "cynode/busybox:e2e";
/// Whose jobs run at once.
const RUNNER: &str = "U0SOAKRUN";
/// Whose jobs policy holds for approval.
const HOLDER: &str = "U0SOAKHOLD";
/// The API token that approves and denies (on the approver list by its name).
const APPROVER: &str = "soak-approver";

/// The traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Runs, approvals, denials and chat answers over several workspaces.
    Mixed,
    /// The first soak: every event a job held for an approval that never comes.
    Held,
}

/// What an event asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A job that runs at once.
    Run,
    /// A held job the approver approves.
    Approve,
    /// A held job the approver denies.
    Deny,
    /// `help`: an answer, no job.
    Help,
    /// A held job nobody decides (`SOAK_MIX=held`).
    Held,
}

/// How events are made.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The traffic.
    pub mix: Mix,
    /// Installs (one fake Slack each); event `n` goes to workspace `n % workspaces`.
    pub workspaces: usize,
}

impl Plan {
    /// What event `n` asks for.
    pub fn kind(&self, n: u64) -> Kind {
        match (self.mix, n % 4) {
            (Mix::Held, _) => Kind::Held,
            (Mix::Mixed, 0) => Kind::Run,
            (Mix::Mixed, 1) => Kind::Approve,
            (Mix::Mixed, 2) => Kind::Deny,
            _ => Kind::Help,
        }
    }

    fn workspace(&self, n: u64) -> usize {
        usize::try_from(n).unwrap_or(0) % self.workspaces.max(1)
    }
}

fn team(w: usize) -> String {
    format!("T0SOAK{w:03}")
}

fn channel(n: u64) -> String {
    format!("CSOAK{n:07}")
}

fn thread(n: u64) -> String {
    format!("{}.000100", 1_700_500_000 + n)
}

/// The signed body of event `n`.
pub fn body(plan: &Plan, n: u64) -> String {
    let (user, text) = match plan.kind(n) {
        Kind::Run => (RUNNER, format!("run echo soak-{n}; sleep 1; echo done-{n}")),
        Kind::Approve => (HOLDER, format!("run echo approve-{n}")),
        Kind::Deny => (HOLDER, format!("run echo deny-{n}")),
        Kind::Help => (RUNNER, "help".to_owned()),
        Kind::Held => (HOLDER, "run echo soak".to_owned()),
    };
    let w = plan.workspace(n);
    json!({
        "token": "unused", "team_id": team(w), "api_app_id": format!("A0SOAK{w:03}"), "type": "event_callback",
        "event_id": format!("EvSOAK{n:07}"), "event_time": 1_700_000_000,
        "event": { "type": "app_mention", "user": user, "text": format!("<@UBOT> {text}"),
                   "ts": format!("{}1", thread(n)), "thread_ts": thread(n),
                   "channel": channel(n), "event_ts": format!("{}1", thread(n)) }
    })
    .to_string()
}

/// Delivers a signed Slack event body to `base`, with Slack's retry headers when `retry` > 0; the HTTP status
/// (0 when no answer came).
pub async fn deliver(http: &reqwest::Client, base: &str, body: &str, retry: u32) -> u16 {
    let ts = chrono::Utc::now().timestamp();
    let signature = slack::sign(SECRET.as_bytes(), ts, body.as_bytes()).expect("sign");
    let mut req = http
        .post(format!("{base}/slack/events"))
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", signature)
        .body(body.to_owned());
    if retry > 0 {
        req = req.header("x-slack-retry-num", retry.to_string()).header("x-slack-retry-reason", "http_timeout");
    }
    req.send().await.map_or(0, |r| r.status().as_u16())
}

/// The messages in event `n`'s thread.
pub fn thread_messages(plan: &Plan, slacks: &[FakeSlack], n: u64) -> Vec<Message> {
    slacks[plan.workspace(n)].messages_in(&channel(n), Some(&thread(n)))
}

/// The running deployment.
pub struct Deployment {
    /// Replicas, HAProxy, the node.
    pub cluster: Cluster,
    /// The webhook receiver (mixed traffic only).
    pub receiver: Option<Receiver>,
    token: String,
}

/// What the approver needs.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: String,
    pool: sqlx::PgPool,
}

impl Deployment {
    /// The API as the approver.
    pub fn api(&self) -> Api {
        Api { base: self.cluster.lb_url(), token: self.token.clone(), pool: self.cluster.db.pool.clone() }
    }
}

/// Starts three replicas with one install per fake Slack, a Docker node (mixed traffic), the approver's token and
/// the webhook subscription.
pub async fn start(plan: &Plan, slacks: &[FakeSlack]) -> Deployment {
    let installs: String = slacks
        .iter()
        .enumerate()
        .map(|(w, s)| {
            format!(
                "  - {{platform: slack, name: ws{w}, team_id: {}, api_app_id: A0SOAK{w:03}, signing_secret: {SECRET}, \
                 bot_token: {}, api_base_url: '{}'}}\n",
                team(w),
                s.token(),
                s.base_url()
            )
        })
        .collect();
    let policy = match plan.mix {
        Mix::Mixed => format!("policy:\n  - {{when: {{requester: [{HOLDER}]}}, approvers: ['{APPROVER}']}}\n"),
        Mix::Held => "policy:\n  - {when: {template: [busybox]}, approvers: ['U0APPROVER']}\n".to_owned(),
    };
    let bootstrap = format!(
        "installs:\n{installs}\
         node_keys:\n  - {{name: soak, key: {NODE_KEY}, executors: [docker]}}\n\
         templates:\n  - {{name: busybox, image: \"{IMAGE}\"}}\n{policy}"
    );
    let env: Vec<(String, String)> = [
        ("CYNODE__LIMITS__RATE__INSTALL__PER_MINUTE", "600000"),
        ("CYNODE__LIMITS__RATE__INSTALL__BURST", "10000"),
        ("CYNODE__LIMITS__RATE__USER__PER_MINUTE", "600000"),
        ("CYNODE__LIMITS__RATE__USER__BURST", "10000"),
        ("CYNODE__OUTBOUND__ALLOW_CIDRS", "127.0.0.0/8"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .chain(extra_env())
    .collect();
    if plan.mix == Mix::Mixed {
        let engine = connect_to(None).await.expect("the soak's node needs Docker");
        build_busybox_image(&engine, IMAGE).await.expect("busybox image");
    }
    let mut cluster = Cluster::start(ClusterOptions { replicas: 3, bootstrap, env }).await;
    if plan.mix == Mix::Held {
        return Deployment { cluster, receiver: None, token: String::new() };
    }
    let name = format!("soak-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let template = format!("busybox={IMAGE}");
    cluster.add_node(&name, &["--template", &template, "--max-jobs", "16"], NODE_KEY).await;
    let token = create_token(&cluster).await;
    let receiver = Receiver::start().await;
    let created: Value = reqwest::Client::new()
        .post(format!("{}/v1/subscriptions", cluster.lb_url()))
        .bearer_auth(&token)
        .json(&json!({
            "name": "soak", "url": receiver.url(),
            "event_types": ["task.created", "task.finished", "job.queued", "job.started", "job.finished",
                            "approval.requested", "approval.resolved"]
        }))
        .send()
        .await
        .expect("create the subscription")
        .json()
        .await
        .expect("subscription JSON");
    let secret = created["secret"].as_str().unwrap_or_else(|| panic!("no secret in {created}"));
    receiver.set_secret(secret);
    Deployment { cluster, receiver: Some(receiver), token }
}

/// `SOAK_REPLICA_ENV="K=V,K=V"`: more settings for every replica (experiments, e.g.
/// `CYNODE__DATABASE__STREAM_CONNECTIONS=16`).
fn extra_env() -> Vec<(String, String)> {
    std::env::var("SOAK_REPLICA_ENV")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
        .collect()
}

async fn create_token(cluster: &Cluster) -> String {
    let env = [("DATABASE_URL", cluster.db.url.as_str()), ("CYNODE__SECURITY__MASTER_KEY", CLUSTER_MASTER_KEY)];
    let (code, out, err) =
        run_to_end("cynode", &["admin", "token", "create", APPROVER, "--role", "operator"], &env).await;
    assert_eq!(code, 0, "cynode admin token create failed:\n{out}\n{err}");
    out.split_whitespace()
        .chain(err.split_whitespace())
        .find(|w| w.starts_with("cyn_"))
        .unwrap_or_else(|| panic!("no token in:\n{out}\n{err}"))
        .to_owned()
}

/// Approves or denies (by the task's text) every job held longer than `hold`, until `stop`; returns the API's
/// answers (status → count).
pub async fn approve_loop(api: Api, hold: Duration, stop: Arc<AtomicBool>) -> HashMap<u16, u64> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let mut votes: HashMap<u16, u64> = HashMap::new();
    let mut voted: HashSet<uuid::Uuid> = HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        let due: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT j.id, t.text FROM jobs j JOIN tasks t ON t.id = j.task_id
             WHERE j.state = 'awaiting_approval' AND j.created_at < now() - $1 * interval '1 millisecond'",
        )
        .bind(i64::try_from(hold.as_millis()).unwrap_or(i64::MAX))
        .fetch_all(&api.pool)
        .await
        .unwrap_or_default();
        for (job, text) in due {
            if !voted.insert(job) {
                continue;
            }
            let verb = if text.contains("deny-") { "deny" } else { "approve" };
            let status = http
                .post(format!("{}/v1/jobs/{job}/{verb}", api.base))
                .bearer_auth(&api.token)
                .json(&json!({}))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            *votes.entry(status).or_default() += 1;
            if status != 200 {
                voted.remove(&job);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    votes
}

/// Counts of what the database holds.
#[derive(Debug, sqlx::FromRow)]
struct Stored {
    inbound: i64,
    tasks: i64,
    jobs: i64,
    streams: i64,
    streams_open: i64,
    deliveries: i64,
    delivered: i64,
}

/// Checks the invariants and prints each; `true` when all hold.
pub async fn check(plan: &Plan, d: &mut Deployment, slacks: &[FakeSlack], n: u64, answers: &HashMap<u16, u64>) -> bool {
    let pool = &d.cluster.db.pool;
    let s: Stored = sqlx::query_as(
        "SELECT (SELECT count(*) FROM inbound_events) AS inbound, (SELECT count(*) FROM tasks) AS tasks,
                (SELECT count(*) FROM jobs) AS jobs, (SELECT count(*) FROM stream_records) AS streams,
                (SELECT count(*) FROM stream_records WHERE state = 'open') AS streams_open,
                (SELECT count(*) FROM deliveries) AS deliveries,
                (SELECT count(*) FROM deliveries WHERE state = 'delivered') AS delivered",
    )
    .fetch_one(pool)
    .await
    .expect("counts");
    let states: Vec<(String, i64)> = sqlx::query_as("SELECT state, count(*) FROM jobs GROUP BY state ORDER BY state")
        .fetch_all(pool)
        .await
        .expect("jobs");
    let n_i = i64::try_from(n).unwrap_or(i64::MAX);
    let count = |k: Kind| i64::try_from((0..n).filter(|i| plan.kind(*i) == k).count()).unwrap_or(0);
    let job_events = n_i - count(Kind::Help);
    let mut ok = true;
    let mut claim = |what: String, holds: bool| {
        println!("{} {what}", if holds { "ok  " } else { "FAIL" });
        ok &= holds;
    };
    claim(format!("every delivery answered 200: {answers:?}"), answers.keys().all(|s| *s == 200));
    claim(format!("inbound rows {} = events {n}", s.inbound), s.inbound == n_i);
    claim(format!("tasks {} = events {n}", s.tasks), s.tasks == n_i);
    claim(format!("jobs {} = job events {job_events}", s.jobs), s.jobs == job_events);
    claim(format!("streams {} = events {n}", s.streams), s.streams == n_i);
    let state = |name: &str| states.iter().find(|(s, _)| s == name).map_or(0, |(_, c)| *c);
    match plan.mix {
        Mix::Mixed => {
            let (run, deny) = (count(Kind::Run) + count(Kind::Approve), count(Kind::Deny));
            claim(
                format!("jobs by state {states:?}: succeeded = run + approved ({run}), cancelled = denied ({deny})"),
                state("succeeded") == run && state("cancelled") == deny,
            );
            claim(format!("every stream closed ({} open)", s.streams_open), s.streams_open == 0);
        }
        Mix::Held => claim(format!("jobs by state {states:?}: all held"), state("awaiting_approval") == n_i),
    }
    let mut per_kind: HashMap<(Kind, usize), u64> = HashMap::new();
    let (mut unanswered, mut duplicated, mut no_final) = (0u64, 0u64, 0u64);
    for k in 0..n {
        let messages = thread_messages(plan, slacks, k);
        *per_kind.entry((plan.kind(k), messages.len())).or_default() += 1;
        if messages.is_empty() {
            unanswered += 1;
        }
        let markers: Vec<String> = messages.iter().filter_map(|m| m.metadata.as_ref().map(Value::to_string)).collect();
        if markers.len() != markers.iter().collect::<HashSet<_>>().len() {
            duplicated += 1;
        }
        let shown: String = messages.iter().map(Message::shown).collect::<Vec<_>>().join("\n");
        let expected = match plan.kind(k) {
            Kind::Run | Kind::Approve => "✅ Succeeded",
            Kind::Deny => "❌ Denied",
            Kind::Help | Kind::Held => "",
        };
        if plan.mix == Mix::Mixed && !expected.is_empty() && !shown.contains(expected) {
            no_final += 1;
        }
    }
    let mut kinds: Vec<String> = per_kind.iter().map(|((k, m), c)| format!("{k:?}×{m} msgs: {c}")).collect();
    kinds.sort();
    println!("thread messages per kind: {}", kinds.join("; "));
    claim(format!("every thread answered ({unanswered} without a reply)"), unanswered == 0);
    claim(format!("no post repeated in a thread ({duplicated} threads with a repeated marker)"), duplicated == 0);
    if plan.mix == Mix::Mixed {
        claim(format!("every job thread shows its final status ({no_final} do not)"), no_final == 0);
    }
    let r429: usize = slacks.iter().map(FakeSlack::count_429).sum();
    let refused: usize = slacks.iter().map(|s| s.rejections().len()).sum();
    claim(format!("no 429 ({r429}) and no refused call ({refused}) at the fake Slacks"), r429 == 0 && refused == 0);
    if let Some(receiver) = &d.receiver {
        let seen = receiver.seen();
        let ids: HashSet<String> = receiver.ids().into_iter().collect();
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT msg_id FROM deliveries").fetch_all(pool).await.expect("deliveries");
        let missing = stored.iter().filter(|m| !ids.contains(*m)).count();
        claim(
            format!("every delivery delivered ({} of {}) and received ({missing} missing)", s.delivered, s.deliveries),
            s.delivered == s.deliveries && missing == 0 && s.deliveries > 0,
        );
        claim(
            format!(
                "receiver: {} requests, {} distinct ids, {} bad signatures, {} repeats of the same message, {} \
                 conflicting repeats",
                seen.received, seen.distinct, seen.bad_signature, seen.repeats, seen.conflicting
            ),
            seen.bad_signature == 0 && seen.conflicting == 0 && seen.distinct == stored.len(),
        );
    }
    ok
}
