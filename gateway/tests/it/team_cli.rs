//! `cynode users link|list|show` and `cynode admin role set|list` as real processes: links and grants land, are
//! audited, and every mistake is one error line with exit code 1.

use cynode_tests::TestDb;
use cynode_tests::process::run_to_end;

use crate::api_support::seed;

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

    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log WHERE actor = 'cli' ORDER BY seq")
        .fetch_all(&db.pool)
        .await
        .expect("audit");
    assert_eq!(actions, ["role.set", "role.set", "user.link"]);
}
