//! `/v1/memories`: scoped like every API route (a tenant token never sees another install's memories; their ids
//! answer 404), install-wide writes need an admin token, bad input gets a clear 400, deletions of someone else's
//! memory a 403; and `cynode memory` as a real process against `cynode serve`.

use cynode_orchestrator::api_tokens::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api_support::*;

async fn other_install(pool: &sqlx::PgPool) -> Uuid {
    let other = Uuid::now_v7();
    sqlx::query("INSERT INTO installs (id, platform, external_id, name) VALUES ($1, 'webhook', 'other', 'other')")
        .bind(other)
        .execute(pool)
        .await
        .expect("install");
    other
}

fn texts(list: &Value) -> Vec<&str> {
    list["memories"].as_array().expect("memories").iter().filter_map(|m| m["text"].as_str()).collect()
}

#[tokio::test]
async fn memories_are_scoped_to_the_tokens_install_and_identity() {
    let api = Api::spawn().await;
    let pool = &api.app.db.pool;
    let (ci, other) = (install_id(pool).await, other_install(pool).await);
    let ci_op = token(pool, "ci-op", Role::Operator, Some(ci)).await;
    let ci_op2 = token(pool, "ci-op2", Role::Operator, Some(ci)).await;
    let ci_admin = token(pool, "ci-admin", Role::Admin, Some(ci)).await;
    let other_op = token(pool, "other-op", Role::Operator, Some(other)).await;

    let create = |t: &str, body: Value| {
        let (api, t) = (&api, t.to_owned());
        async move { api.call("POST", "/v1/memories", &t, Some(body)).await }
    };
    let (s, mine) = create(&ci_op, json!({ "text": "my private deploy note" })).await;
    assert_eq!(s, 201, "{mine}");
    assert_eq!(
        (mine["scope"].as_str(), mine["provenance"].as_str(), mine["trusted"].as_bool()),
        (Some("user"), Some("user"), Some(true))
    );
    // An operator token's install-wide memory is a proposal: listed for the admin, decided by the admin only.
    let (s, proposed) = create(&ci_op, json!({ "text": "team rollout fact", "scope": "install" })).await;
    assert_eq!((s, proposed["awaiting_approval"].as_bool()), (201, Some(true)), "{proposed}");
    let pid = proposed["id"].as_str().unwrap_or_default().to_owned();
    let (s, list) = api.call("GET", "/v1/memories/proposals", &ci_admin, None).await;
    assert_eq!((s, list["memories"][0]["id"].as_str()), (200, Some(pid.as_str())), "{list}");
    let (s, list) = api.call("GET", "/v1/memories/proposals", &ci_op2, None).await;
    assert_eq!((s, list["memories"].as_array().map(Vec::len)), (200, Some(0)), "another operator sees none: {list}");
    let (s, body) = api.call("POST", &format!("/v1/memories/{pid}/approve"), &ci_op2, None).await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = api.call("POST", &format!("/v1/memories/{pid}/approve"), &other_op, None).await;
    assert_eq!(s, 404, "another install's proposal: {body}");
    let (s, body) = api.call("GET", "/v1/memories?q=rollout", &ci_op2, None).await;
    assert_eq!((s, body["memories"].as_array().map(Vec::len)), (200, Some(0)), "not recalled yet: {body}");
    let (s, body) = api.call("POST", &format!("/v1/memories/{pid}/approve"), &ci_admin, None).await;
    assert_eq!((s, body["awaiting_approval"].as_bool()), (200, Some(false)), "{body}");
    let (s, body) = api.call("GET", "/v1/memories?q=rollout", &ci_op2, None).await;
    assert_eq!((s, body["memories"][0]["id"].as_str()), (200, Some(pid.as_str())), "recalled once approved: {body}");
    let (s, team) = create(&ci_admin, json!({ "text": "team deploy fact", "scope": "install" })).await;
    assert_eq!(
        (s, team["provenance"].as_str(), team["awaiting_approval"].as_bool()),
        (201, Some("admin"), Some(false)),
        "{team}"
    );
    let (s, body) = create(&ci_op, json!({ "text": "x", "scope": "channel", "channel": "C1" })).await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = create(&ci_op, json!({ "text": "x".repeat(2001) })).await;
    assert_eq!(s, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("at most 2000"), "{body}");
    let (s, body) = create(&ci_op, json!({ "text": "x", "scope": "galaxy" })).await;
    assert_eq!(s, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("unknown scope `galaxy`"), "{body}");
    let (s, theirs) = create(&other_op, json!({ "text": "other deploy secret plan" })).await;
    assert_eq!(s, 201, "{theirs}");

    // Lists and recall: own + install-wide; nothing of the other install; another user's private memory never.
    let (_, l) = api.call("GET", "/v1/memories", &ci_op, None).await;
    assert_eq!(texts(&l), ["team deploy fact", "team rollout fact", "my private deploy note"]);
    let (_, l) = api.call("GET", "/v1/memories?q=deploy", &ci_op2, None).await;
    assert_eq!(texts(&l), ["team deploy fact"]);
    assert_eq!(l["hybrid"], false);
    assert!(l["notice"].as_str().unwrap_or_default().contains("keyword matches only"), "{l}");
    let (_, l) = api.call("GET", "/v1/memories?q=deploy", &other_op, None).await;
    assert_eq!(texts(&l), ["other deploy secret plan"]);
    let (s, _) = api.call("GET", "/v1/memories?limit=0", &ci_op, None).await;
    assert_eq!(s, 400);

    // Another install's id: 404, for reading and deleting alike. Someone else's: 403 (refusal audited).
    let theirs_path = format!("/v1/memories/{}", theirs["id"].as_str().expect("id"));
    assert_eq!(api.call("GET", &theirs_path, &ci_admin, None).await.0, 404);
    assert_eq!(api.call("DELETE", &theirs_path, &ci_admin, None).await.0, 404);
    let team_path = format!("/v1/memories/{}", team["id"].as_str().expect("id"));
    let (s, body) = api.call("DELETE", &team_path, &ci_op, None).await;
    assert_eq!(s, 403, "{body}");
    assert_eq!(api.call("GET", "/v1/memories/not-a-uuid", &ci_op, None).await.0, 400);
    let (s, body) = api.call("DELETE", &team_path, &ci_admin, None).await;
    assert_eq!((s, body["count"].as_u64()), (200, Some(1)), "{body}");

    // Import under a label, then forget by label; forget by user of someone else needs an admin token.
    let body = json!({ "label": "wiki", "memories": [{ "text": "wiki one" }, { "text": "wiki two" }] });
    let (s, n) = api.call("POST", "/v1/memories/import", &ci_op, Some(body)).await;
    assert_eq!((s, n["count"].as_u64()), (201, Some(2)), "{n}");
    let (_, l) = api.call("GET", "/v1/memories?q=wiki", &ci_op, None).await;
    assert!(l["memories"].as_array().expect("m").iter().all(|m| m["provenance"] == "import"), "{l}");
    let bad = json!({ "label": "half", "memories": [{ "text": "fine" }, { "text": "" }] });
    let (s, body) = api.call("POST", "/v1/memories/import", &ci_op, Some(bad)).await;
    assert_eq!(s, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("memory 2"), "{body}");
    let (s, body) = api.call("POST", "/v1/memories/forget", &ci_op2, Some(json!({ "user": "ci-op" }))).await;
    assert_eq!(s, 403, "{body}");
    let (s, n) = api.call("POST", "/v1/memories/forget", &ci_op, Some(json!({ "label": "wiki" }))).await;
    assert_eq!((s, n["count"].as_u64()), (200, Some(2)), "{n}");
    // Right to delete: what ci-op wrote, the approved install-wide proposal included.
    let (s, n) = api.call("POST", "/v1/memories/forget", &ci_op, Some(json!({ "user": "ci-op" }))).await;
    assert_eq!((s, n["count"].as_u64()), (200, Some(2)), "{n}");
    let (s, _) = api.call("POST", "/v1/memories/forget", &ci_op, Some(json!({ "user": "a", "label": "b" }))).await;
    assert_eq!(s, 400);
    let (_, l) = api.call("GET", "/v1/memories", &ci_op, None).await;
    assert!(texts(&l).is_empty(), "{l}");
    cynode_orchestrator::audit::flush(pool).await.expect("link the audit entries");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'memory.%'")
        .fetch_one(pool)
        .await
        .expect("audit");
    // Five writes, one refused deletion, three deletions; a proposal, a refused approval and an approval.
    assert_eq!(audited, 12, "writes, deletions, proposals and refusals are audited");
}

#[tokio::test]
async fn cynode_memory_adds_searches_imports_and_forgets_as_a_real_process() {
    use std::time::Duration;

    use cynode_tests::process::run_to_end;
    use cynode_tests::{BinProcess, TestDb};

    let db = TestDb::new().await;
    seed(&db.pool).await;
    let ci = install_id(&db.pool).await;
    let env = [("DATABASE_URL", db.url.as_str()), ("CYNODE__SECURITY__MASTER_KEY", crate::support::MASTER_KEY)];
    let mut serve = BinProcess::spawn("cynode", &["serve", "--listen", "127.0.0.1:0"], &env);
    let line = serve.wait_for("serving on http://", Duration::from_secs(60)).await;
    let url = line[line.find("http://").expect("url")..].trim().to_string();
    let op = token(&db.pool, "ci-op", Role::Operator, Some(ci)).await;
    let cli = [("CYNODE_TOKEN", op.as_str()), ("CYNODE_URL", url.as_str())];

    let (code, stdout, stderr) =
        run_to_end("cynode", &["memory", "add", "the", "deploy", "key", "rotates", "on", "Fridays"], &cli).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("remembered ") && stdout.contains("for scope user"), "{stdout}");
    let file = tempfile::NamedTempFile::new().expect("file");
    std::fs::write(file.path(), "# runbook\nthe staging cluster is eu-2\n{\"text\": \"backups run at 02:00\"}\n")
        .expect("write");
    let path = file.path().to_str().expect("path");
    let (code, stdout, stderr) = run_to_end("cynode", &["memory", "import", path, "--label", "runbook"], &cli).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("imported 2 memories under label `runbook`"), "{stdout}");

    let (code, stdout, stderr) = run_to_end("cynode", &["memory", "search", "deploy", "key"], &cli).await;
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("ID") && lines.len() == 2 && lines[1].contains("the deploy key rotates"), "{stdout}");
    assert!(stderr.contains("keyword matches only"), "no embedder is configured, and the CLI says so: {stderr}");
    let (code, stdout, _) = run_to_end("cynode", &["memory", "list", "--json"], &cli).await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(list["memories"].as_array().map(Vec::len), Some(3), "{list}");
    let id = list["memories"][2]["id"].as_str().expect("id").to_owned();

    let (code, stdout, _) = run_to_end("cynode", &["memory", "forget", "--label", "runbook"], &cli).await;
    assert_eq!((code, stdout.trim()), (0, "forgot 2 memories"));
    let (code, stdout, _) = run_to_end("cynode", &["memory", "forget", &id], &cli).await;
    assert_eq!((code, stdout.trim()), (0, "forgot 1 memory"));
    let (code, _, stderr) = run_to_end("cynode", &["memory", "forget", &id], &cli).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("there is no memory"), "{stderr}");
    let (code, _, stderr) = run_to_end("cynode", &["memory", "add", "x", "--scope", "galaxy"], &cli).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("unknown scope `galaxy`"), "{stderr}");

    // A proposal of install-wide memory from the operator token, decided with the admin token.
    let (code, stdout, stderr) =
        run_to_end("cynode", &["memory", "add", "--scope", "install", "--json", "the", "VPN", "is", "vpn-3"], &cli)
            .await;
    assert_eq!(code, 0, "{stderr}");
    let proposed: Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(proposed["awaiting_approval"], true, "{proposed}");
    let pid = proposed["id"].as_str().expect("id").to_owned();
    let (code, _, stderr) = run_to_end("cynode", &["memory", "approve", &pid], &cli).await;
    assert_ne!(code, 0, "an operator token cannot approve");
    assert!(stderr.contains("approver"), "{stderr}");
    let admin = token(&db.pool, "ci-admin", Role::Admin, Some(ci)).await;
    let admin_cli = [("CYNODE_TOKEN", admin.as_str()), ("CYNODE_URL", url.as_str())];
    let (code, stdout, stderr) = run_to_end("cynode", &["memory", "list", "--proposed"], &admin_cli).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&pid) && stdout.contains("cynode memory approve"), "{stdout}");
    let (code, stdout, stderr) = run_to_end("cynode", &["memory", "approve", &pid], &admin_cli).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with(&format!("approved {pid}")), "{stdout}");
    let (code, stdout, _) = run_to_end("cynode", &["memory", "search", "VPN"], &cli).await;
    assert!(code == 0 && stdout.contains("the VPN is vpn-3"), "recalled once approved: {stdout}");

    serve.signal("TERM");
    assert_eq!(serve.wait_exit(Duration::from_secs(30)).await, Some(0));
}
