//! `cynode subs …` and `cynode admin node-key|install …` as real processes against a running `cynode serve`,
//! with a local receiver that verifies what it gets with the independent `standardwebhooks` crate.

use std::time::Duration;

use cynode_orchestrator::nodes;
use cynode_protocol::{Capabilities, ExecutorKind, RegisterRequest};
use cynode_tests::process::run_to_end;
use cynode_tests::{BinProcess, TestDb};
use serde_json::Value;

use crate::api_support::seed;
use crate::receiver::{Receiver, settled};
use crate::support::MASTER_KEY;

/// One `error:` line on stderr containing `want`, exit code 1.
fn assert_refused(out: &(i32, String, String), want: &str) {
    let (code, _, stderr) = out;
    assert_eq!(*code, 1, "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(want), "wanted {want:?} in {stderr}");
}

#[tokio::test]
async fn subs_commands_manage_subscriptions_end_to_end() {
    let db = TestDb::new().await;
    seed(&db.pool).await;
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("CYNODE__SECURITY__MASTER_KEY", MASTER_KEY),
        ("CYNODE__OUTBOUND__ALLOW_CIDRS", "127.0.0.0/8"),
    ];
    let mut serve = BinProcess::spawn("cynode", &["serve", "--listen", "127.0.0.1:0"], &env);
    let line = serve.wait_for("serving on http://", Duration::from_secs(60)).await;
    let url = line[line.find("http://").expect("url")..].trim().to_string();
    let (code, token, stderr) =
        run_to_end("cynode", &["admin", "token", "create", "ops", "--role", "admin"], &env[..1]).await;
    assert_eq!(code, 0, "{stderr}");
    let cli = [("CYNODE_TOKEN", token.trim()), ("CYNODE_URL", url.as_str())];
    let subs = |args: &[&str]| {
        let mut all = vec!["subs"];
        all.extend_from_slice(args);
        let all: Vec<String> = all.into_iter().map(String::from).collect();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            run_to_end("cynode", &refs, &cli).await
        }
    };
    let rx = Receiver::start().await;
    let hook = rx.url("cli");

    let (code, secret, stderr) =
        subs(&["add", &hook, "--events", "task.created,job.finished", "--name", "cli-sink"]).await;
    assert_eq!(code, 0, "{stderr}");
    let secret = secret.trim().to_string();
    assert!(secret.starts_with("whsec_") && stderr.contains("shown only now"), "{secret} {stderr}");
    let (code, listed, _) = subs(&["list", "--json"]).await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(list["subscriptions"][0]["event_types"], serde_json::json!(["task.created", "job.finished"]));
    assert!(!listed.contains(&secret));
    let (_, human, _) = subs(&["list"]).await;
    assert!(human.contains("cli-sink") && human.contains("enabled") && human.contains(&hook), "{human}");

    // test waits for the ping's outcome; the receiver verifies it.
    let (code, out, stderr) = subs(&["test", "cli-sink"]).await;
    assert_eq!(code, 0, "{out} {stderr}");
    assert!(out.contains("ping delivered"), "{out}");
    let ping = rx.wait("the ping", |h| !h.is_empty()).await.remove(0);
    assert!(ping.verifies_with(&secret) && ping.event_type() == "ping");

    // Replay one delivery (same webhook-id), then a range.
    let (_, listed, _) = subs(&["deliveries", "cli-sink", "--json"]).await;
    let deliveries: Value = serde_json::from_str(&listed).expect("json");
    let delivery = deliveries["deliveries"][0]["id"].as_str().expect("id").to_string();
    let (code, out, _) = subs(&["replay", &delivery]).await;
    assert_eq!(code, 0, "{out}");
    let again = rx.wait("the replay", |h| h.len() >= 2).await.remove(1);
    assert_eq!(again.webhook_id(), ping.webhook_id());
    settled(&db.pool).await;
    let (code, out, _) = subs(&["replay", "cli-sink", "--since", "1h", "--include-delivered", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).expect("json")["queued"], 1);
    let (_, human, _) = subs(&["deliveries", "cli-sink"]).await;
    assert!(human.contains("ping") && human.contains("delivered"), "{human}");

    // Rotate: a new secret, both sign during the grace period.
    let (code, new_secret, stderr) = subs(&["rotate", "cli-sink", "--grace", "1h"]).await;
    assert_eq!(code, 0, "{stderr}");
    let new_secret = new_secret.trim().to_string();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret && stderr.contains("previous"), "{stderr}");
    assert_eq!(subs(&["test", "cli-sink"]).await.0, 0);
    let hits = rx.wait("a ping after rotation", |h| h.iter().filter(|h| h.event_type() == "ping").count() >= 4).await;
    let last = hits.last().expect("last");
    assert!(last.verifies_with(&new_secret) && last.verifies_with(&secret));

    // Disabled: test is refused with the reason; enable again; show.
    assert_eq!(subs(&["disable", "cli-sink"]).await.0, 0);
    assert_refused(&subs(&["test", "cli-sink"]).await, "disabled");
    let (code, out, _) = subs(&["enable", "cli-sink"]).await;
    assert!(code == 0 && out.contains("replay"), "{out}");
    let (_, shown, _) = subs(&["show", "cli-sink"]).await;
    assert!(shown.contains("task.created,job.finished") && shown.contains("previous secret signs until"), "{shown}");

    // Bad input: one clear line, exit 1; usage errors exit 2.
    assert_refused(&subs(&["add", "ftp://hooks.example.org/x"]).await, "http:// or https://");
    assert_refused(&subs(&["add", &format!("{url}/hooks/ci")]).await, "CyNode itself");
    // Loopback is allowed for this server (its receivers are local), cloud metadata is not.
    assert_refused(&subs(&["add", "http://169.254.169.254/latest/meta-data/"]).await, "link-local address");
    assert_refused(&subs(&["add", &hook, "--events", "job.exploded"]).await, "unknown event type");
    assert_refused(&subs(&["add", &hook, "--filter", "{nope"]).await, "--filter is not JSON");
    assert_refused(&subs(&["show", "nope"]).await, "there is no subscription nope");
    assert_refused(&subs(&["replay", "cli-sink", "--since", "yesterday"]).await, "RFC 3339");
    assert_eq!(subs(&["replay", "cli-sink", "--until", "1h"]).await.0, 2);
    let bad = [("CYNODE_TOKEN", "cyn_nope"), ("CYNODE_URL", url.as_str())];
    assert_refused(&run_to_end("cynode", &["subs", "list"], &bad).await, "unauthorized");

    let (code, out, _) = subs(&["rm", "cli-sink"]).await;
    assert!(code == 0 && out.contains("deleted"), "{out}");
    let (_, listed, _) = subs(&["list", "--json"]).await;
    assert_eq!(serde_json::from_str::<Value>(&listed).expect("json")["subscriptions"], serde_json::json!([]));
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(Duration::from_secs(30)).await, Some(0));
}

async fn register(pool: &sqlx::PgPool, key: &str) -> Result<nodes::Registered, nodes::RegisterError> {
    let caps = Capabilities { executors: vec![ExecutorKind::Docker], ..Capabilities::default() };
    nodes::register(
        pool,
        key,
        &RegisterRequest { protocol_versions: vec![1], name: "n1".into(), capabilities: caps, agent_version: None },
    )
    .await
}

#[tokio::test]
async fn admin_manages_node_keys_and_installs_on_the_database() {
    let db = TestDb::new().await;
    seed(&db.pool).await;
    let env = [("DATABASE_URL", db.url.as_str())];
    let admin = |args: &[&str]| {
        let mut all = vec!["admin".to_string()];
        all.extend(args.iter().map(|a| (*a).to_string()));
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            run_to_end("cynode", &refs, &env).await
        }
    };

    // Node keys: created once (shown once), usable, listed without the key, revoked.
    let (code, key, stderr) = admin(&["node-key", "create", "gpu-1", "--executors", "docker,inference"]).await;
    assert_eq!(code, 0, "{stderr}");
    let key = key.trim().to_string();
    assert!(key.len() >= 24 && stderr.contains("shown only now"), "{key} {stderr}");
    register(&db.pool, &key).await.expect("the new key registers a node");
    let (code, listed, _) = admin(&["node-key", "list", "--json"]).await;
    assert_eq!(code, 0);
    assert!(!listed.contains(&key));
    let keys: Value = serde_json::from_str(&listed).expect("json");
    let gpu = keys.as_array().expect("list").iter().find(|k| k["name"] == "gpu-1").expect("gpu-1").clone();
    assert_eq!(
        (gpu["executors"].clone(), gpu["nodes"].as_i64()),
        (serde_json::json!(["docker", "inference"]), Some(1))
    );
    assert_refused(&admin(&["node-key", "create", "gpu-1"]).await, "already exists");
    assert_refused(&admin(&["node-key", "create", "x", "--executors", "gpu"]).await, "unknown executor `gpu`");
    let (code, out, _) = admin(&["node-key", "revoke", "gpu-1"]).await;
    assert!(code == 0 && out.contains("revoked node key `gpu-1`"), "{out}");
    assert!(matches!(register(&db.pool, &key).await, Err(nodes::RegisterError::UnknownKey)));
    assert_refused(&admin(&["node-key", "revoke", "gpu-1"]).await, "no live node key");
    let (_, human, _) = admin(&["node-key", "list"]).await;
    assert!(human.contains("gpu-1") && human.contains("revoked"), "{human}");

    // Installs: listed without secrets, disabled and enabled by name or id.
    let (code, listed, _) = admin(&["install", "list", "--json"]).await;
    assert_eq!(code, 0);
    assert!(!listed.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "no secrets");
    let installs: Value = serde_json::from_str(&listed).expect("json");
    let ci = installs[0]["id"].as_str().expect("id").to_string();
    assert_eq!((installs[0]["name"].as_str(), installs[0]["enabled"].as_bool()), (Some("ci"), Some(true)));
    let (code, out, _) = admin(&["install", "disable", "ci"]).await;
    assert!(code == 0 && out.contains("disabled webhook install `ci`"), "{out}");
    let enabled = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, bool>("SELECT enabled FROM installs").fetch_one(&pool).await.expect("row")
    };
    assert!(!enabled(db.pool.clone()).await);
    assert_eq!(admin(&["install", "enable", &ci]).await.0, 0);
    assert!(enabled(db.pool.clone()).await);
    assert_refused(&admin(&["install", "disable", "nope"]).await, "there is no install `nope`");
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq").fetch_all(&db.pool).await.expect("audit");
    for want in ["node_key.created", "node_key.revoked", "install.disabled", "install.enabled"] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
}
