//! `cynode admin provider add|list|remove` as real processes next to a running `cynode serve`: the key is read from
//! a file and shown nowhere, bad input gets one error line, and the running replica serves a provider added while
//! it runs (its provider node registers) and stops serving one that was removed.

use std::time::Duration;

use cynode_tests::process::run_to_end;
use cynode_tests::{BinProcess, TestDb};

use crate::support::MASTER_KEY;

const KEY: &str = "sk-CLI-PROVIDER-SECRET-c0ffee42";

async fn provider_nodes_online(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM nodes n JOIN node_keys k ON k.id = n.key_id
         WHERE n.name LIKE 'provider-cloud@%' AND k.revoked_at IS NULL AND n.last_seen_at > now() - interval '10 s'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("nodes")
}

#[tokio::test]
async fn providers_are_added_listed_and_removed_and_a_running_replica_follows() {
    let db = TestDb::new().await;
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("CYNODE__SECURITY__MASTER_KEY", MASTER_KEY),
        ("CYNODE__OUTBOUND__ALLOW_CIDRS", "127.0.0.0/8"),
    ];
    let mut serve = BinProcess::spawn("cynode", &["serve", "--listen", "127.0.0.1:0"], &env);
    serve.wait_for("serving on http://", Duration::from_secs(30)).await;
    let dir = tempfile::tempdir().expect("tmp");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).expect("key file");
    let key_file = key_file.to_str().expect("utf8");

    let add = ["admin", "provider", "add", "cloud", "--base-url", "http://127.0.0.1:9", "--model", "m1,m2"];
    let (code, stdout, stderr) = run_to_end("cynode", &[&add[..], &["--key-file", key_file]].concat(), &env).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("added provider `cloud`"), "{stdout}");
    let (code, stdout, _) = run_to_end("cynode", &[&add[..], &["--key-file", key_file]].concat(), &env).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("unchanged"), "{stdout}");

    // The running replica starts the provider's node within its refresh time.
    let mut online = 0;
    for _ in 0..100 {
        online = provider_nodes_online(&db).await;
        if online == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(online, 1, "no provider node:\n{}", serve.output().join("\n"));
    let (code, listed, _) = run_to_end("cynode", &["admin", "provider", "list", "--json"], &env).await;
    assert_eq!(code, 0);
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed[0]["name"], "cloud");
    assert_eq!(listed[0]["has_key"], true);
    assert_eq!(listed[0]["models"], serde_json::json!(["m1", "m2"]));
    assert_eq!(listed[0]["nodes_online"], 1);
    let (_, table, _) = run_to_end("cynode", &["admin", "provider", "list"], &env).await;
    assert!(table.contains("cloud") && table.contains("set"), "{table}");

    // Bad input: one error line that says what to change, never the key.
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&[&str], Env, &str); 4] = [
        (&["--base-url", "http://127.0.0.1:9/v1", "--model", "m"], &env, "without the trailing /v1"),
        (&["--base-url", "http://127.0.0.1:9", "--model", "m"], &env[..2], "outbound.allow_cidrs"),
        (&["--base-url", "https://api.example.com", "--model", "m", "--install", "nope"], &env, "no install is named"),
        (
            &["--base-url", "https://api.example.com", "--model", "m", "--key-file", "/nonexistent/key"],
            &env,
            "cannot read the key file",
        ),
    ];
    for (args, env, want) in cases {
        let (code, _, stderr) =
            run_to_end("cynode", &[&["admin", "provider", "add", "other"], args].concat(), env).await;
        assert_eq!(code, 1, "{want}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(errors[0].contains(want), "wanted {want:?}: {stderr}");
        assert!(!stderr.contains(KEY) && !stderr.contains("panicked"), "{stderr}");
    }

    let (code, stdout, _) = run_to_end("cynode", &["admin", "provider", "remove", "cloud"], &env).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("removed provider `cloud`"), "{stdout}");
    let (code, _, stderr) = run_to_end("cynode", &["admin", "provider", "remove", "cloud"], &env).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("no provider is named `cloud`"), "{stderr}");
    let (_, listed, _) = run_to_end("cynode", &["admin", "provider", "list"], &env).await;
    assert!(listed.contains("No providers"), "{listed}");
    // The replica stops the removed provider's node at its next look.
    serve.wait_for("provider removed or changed; stopping its node", Duration::from_secs(15)).await;

    serve.signal("TERM");
    assert_eq!(serve.wait_exit(Duration::from_secs(30)).await, Some(0), "{}", serve.output().join("\n"));
    let output = serve.output().join("\n");
    assert!(!output.contains(KEY), "the key is in the server's output");
}
