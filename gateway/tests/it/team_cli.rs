//! `cynode users link|list|show`, `cynode admin role set|remove|list` and `cynode admin team show|set` as real
//! processes: links, grants and settings land, are audited, and every mistake is one error line with exit code 1.

use cynode_tests::TestDb;
use cynode_tests::process::run_to_end;

use crate::api_support::{install_id, seed};

#[tokio::test]
async fn users_and_roles_through_the_cli() {
    let db = TestDb::new().await;
    seed(&db.pool).await;
    let env = [("DATABASE_URL", db.url.as_str())];
    let (code, out, err) = run_to_end("cynode", &["admin", "role", "set", "ci", "U1", "viewer"], &env).await;
    assert_eq!((code, out.trim()), (0, "U1 is viewer in install `ci`"), "{err}");
    let args = ["admin", "role", "set", "ci", "U1", "member", "--channel", "C9"];
    assert_eq!(run_to_end("cynode", &args, &env).await.0, 0);
    let (code, _, err) = run_to_end("cynode", &["admin", "role", "set", "ci", "U1", "boss"], &env).await;
    assert_eq!(code, 1);
    assert!(err.contains("error: the role is admin, approver, member, viewer or none"), "{err}");
    let (code, _, err) = run_to_end("cynode", &["admin", "role", "set", "nope", "U1", "member"], &env).await;
    assert!(code == 1 && err.contains("no install `nope`"), "{err}");
    let (code, listed, _) = run_to_end("cynode", &["admin", "role", "list", "--install", "ci", "--json"], &env).await;
    assert_eq!(code, 0);
    let grants: Vec<serde_json::Value> = serde_json::from_str(&listed).expect("json");
    let roles: Vec<(&str, &str)> =
        grants.iter().map(|g| (g["channel"].as_str().unwrap_or("?"), g["role"].as_str().unwrap_or("?"))).collect();
    assert_eq!(roles, [("", "viewer"), ("C9", "member")]);

    let args = ["users", "link", "alice", "--install", "ci", "--user", "U1", "--display-name", "Alice"];
    let (code, out, err) = run_to_end("cynode", &args, &env).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("linked U1 of install `ci` to user `alice`"), "{out}");
    let (code, _, err) = run_to_end("cynode", &["users", "link", "bob", "--install", "ci", "--user", "U1"], &env).await;
    assert!(code == 1 && err.contains("linked to CyNode user `alice` already"), "{err}");
    let (code, _, err) = run_to_end("cynode", &["users", "link", "bob", "--token", "nope"], &env).await;
    assert!(code == 1 && err.contains("no live API token `nope`"), "{err}");
    let (code, _, err) = run_to_end("cynode", &["users", "link", "bob"], &env).await;
    assert_eq!(code, 2, "clap refuses a link with nothing to link: {err}");
    let (code, shown, _) = run_to_end("cynode", &["users", "show", "alice"], &env).await;
    assert_eq!(code, 0);
    assert!(shown.contains("identity    webhook ci U1 \"Alice\""), "{shown}");
    assert!(shown.contains("role        viewer in ci") && shown.contains("member in ci #C9"), "{shown}");
    let (code, _, err) = run_to_end("cynode", &["users", "show", "carol"], &env).await;
    assert!(code == 1 && err.contains("no CyNode user `carol`"), "{err}");

    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log WHERE actor = 'cli' ORDER BY seq")
        .fetch_all(&db.pool)
        .await
        .expect("audit");
    assert_eq!(actions, ["role.set", "role.set", "user.link"]);

    let args = ["admin", "role", "remove", "ci", "U1", "--channel", "C9"];
    let (code, out, err) = run_to_end("cynode", &args, &env).await;
    assert_eq!((code, out.trim()), (0, "U1 is no longer member in channel C9 of `ci`"), "{err}");
    let (code, _, err) = run_to_end("cynode", &args, &env).await;
    assert!(code == 1 && err.contains("U1 has no role grant in channel C9 of `ci`"), "{err}");
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let removed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE actor = 'cli' AND action = 'role.removed'")
            .fetch_one(&db.pool)
            .await
            .expect("audit");
    assert_eq!(removed, 1, "only the removal that removed something is audited");

    // The name the platform sent is shown beside the admin's, which stays first.
    sqlx::query("UPDATE chat_identities SET platform_name = 'ali' WHERE user_id = 'U1'")
        .execute(&db.pool)
        .await
        .expect("platform name");
    let (code, shown, _) = run_to_end("cynode", &["users", "show", "alice"], &env).await;
    assert_eq!(code, 0);
    assert!(shown.contains("identity    webhook ci U1 \"Alice\" (on the platform: \"ali\")"), "{shown}");
}

#[tokio::test]
async fn policy_test_import_and_explain_through_the_cli() {
    let db = TestDb::new().await;
    seed(&db.pool).await;
    let env = [("DATABASE_URL", db.url.as_str())];
    let dir = tempfile::tempdir().expect("dir");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/policy.rego");
    let input = dir.path().join("input.json");
    let viewer = serde_json::json!({
        "principal": { "id": "U1" }, "roles": ["viewer"], "channel": "C1", "command": "run",
        "job": { "kind": "sandbox", "gpu": false, "network": false }, "time": "2026-12-07T12:00:00Z", "hour_utc": 12,
    });
    std::fs::write(&input, viewer.to_string()).expect("input");
    let input = input.to_str().expect("utf8");
    let (code, out, err) = run_to_end("cynode", &["policy", "test", example, input], &[]).await;
    assert_eq!((code, out.trim()), (0, r#"{"deny":"viewers cannot run jobs"}"#), "{err}");

    let broken = dir.path().join("broken.rego");
    std::fs::write(&broken, "package cynode\n\ndecision := {\"allow\": true,,\n").expect("broken");
    let broken = broken.to_str().expect("utf8");
    let (code, _, err) = run_to_end("cynode", &["policy", "test", broken, input], &[]).await;
    assert_eq!(code, 1);
    assert!(err.starts_with(&format!("error: {broken}:3:")) && err.lines().count() == 1, "{err}");
    let (code, _, err) = run_to_end("cynode", &["policy", "import", broken, "--install", "ci"], &env).await;
    assert!(code == 1 && err.contains("broken.rego:3:"), "{err}");
    let args = ["policy", "import", example, "--install", "ci", "--mode", "enforce"];
    let (code, out, err) = run_to_end("cynode", &args, &env).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("for install `ci`: mode enforce, fails closed"), "{out}");
    let (code, _, err) = run_to_end("cynode", &["policy", "import", example, "--mode", "strict"], &env).await;
    assert!(code == 1 && err.contains("--mode is shadow or enforce"), "{err}");

    // Explain a job submitted through the webhook install.
    let install = install_id(&db.pool).await;
    let commands = cynode_orchestrator::commands::Commands::new(
        db.pool.clone(),
        cynode_orchestrator::dispatch::Dispatcher::new(db.pool.clone(), Default::default()),
        Default::default(),
    );
    let origin = cynode_orchestrator::tasks::Origin {
        install_id: Some(install),
        requester: "U1".into(),
        source: "webhook".into(),
        ..Default::default()
    };
    let job = commands.handle(&origin, "run echo hi").await.expect("run").job_id.expect("job");
    let (code, out, err) = run_to_end("cynode", &["policy", "explain", &job.to_string()[..8]], &env).await;
    assert_eq!(code, 0, "{err}");
    let explained: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(explained["mode"], "enforce");
    assert_eq!(explained["input"]["job"]["argv"][2], "echo hi");
    assert_eq!(explained["result"]["decision"]["allow"], true, "{explained}");
    let (code, _, err) = run_to_end("cynode", &["policy", "explain", "deadbeef"], &env).await;
    assert!(code == 1 && err.contains("no job `deadbeef`"), "{err}");
}

/// `cynode admin team show|set`: an install's default role and grants from a file, read back as `set` takes them,
/// audited; a wrong role, tool or install is one error line with exit code 1 and changes nothing.
#[tokio::test]
async fn team_settings_through_the_cli() {
    let db = TestDb::new().await;
    seed(&db.pool).await;
    let env = [("DATABASE_URL", db.url.as_str())];
    let (code, out, err) = run_to_end("cynode", &["admin", "team", "show", "ci"], &env).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("default role  member") && out.contains("grants        none"), "{out}");

    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("team.json");
    let wanted = serde_json::json!({
        "default_role": "viewer",
        "grants": {"member": {"models": ["small"], "tools": ["read_thread", "list_jobs"], "gpu": false}}
    });
    std::fs::write(&file, wanted.to_string()).expect("write");
    let path = file.to_str().expect("path");
    let (code, out, err) = run_to_end("cynode", &["admin", "team", "set", "ci", "--file", path], &env).await;
    assert_eq!((code, out.trim()), (0, "team settings of `ci`: default role viewer, grants for 1 role(s)"), "{err}");
    let (code, shown, _) = run_to_end("cynode", &["admin", "team", "show", "ci", "--json"], &env).await;
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&shown).expect("json"), wanted, "read back as set");

    for (bad, says) in [
        (r#"{"default_role": "admin"}"#, "default_role is member, viewer or none, not `admin`"),
        (r#"{"default_role": "member", "grants": {"member": {"tools": ["rm_rf"]}}}"#, "`rm_rf` is not an agent tool"),
        (r#"{"default_role": "member", "grants": {"boss": {}}}"#, "`boss` is not a role"),
        (r#"{"default_role": "member", "extra": 1}"#, "not team settings: unknown field `extra`"),
    ] {
        std::fs::write(&file, bad).expect("write");
        let (code, _, err) = run_to_end("cynode", &["admin", "team", "set", "ci", "--file", path], &env).await;
        assert!(code == 1 && err.contains(says), "{bad}: {err}");
    }
    let (code, _, err) = run_to_end("cynode", &["admin", "team", "show", "nope"], &env).await;
    assert!(code == 1 && err.contains("no install `nope`"), "{err}");
    let (_, shown, _) = run_to_end("cynode", &["admin", "team", "show", "ci", "--json"], &env).await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&shown).expect("json"),
        wanted,
        "the refusals changed nothing"
    );
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'team.settings'")
        .fetch_one(&db.pool)
        .await
        .expect("audit");
    assert_eq!(audited, 1);
}
