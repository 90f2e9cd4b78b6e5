//! `cynode say`, `tasks`, `logs` and `admin token` as real processes against a running `cynode serve`, with the
//! job driven through the dispatcher on the same database.

use std::sync::Arc;
use std::time::Duration;

use cynode_orchestrator::dispatch::Dispatcher;
use cynode_protocol::FinishStatus;
use cynode_tests::process::run_to_end;
use cynode_tests::{BinProcess, TestDb};

use crate::api_support::*;
use crate::support::MASTER_KEY;

fn url_of(line: &str) -> String {
    let start = line.find("http://").expect("url");
    line[start..].split_whitespace().next().expect("url").to_string()
}

/// Runs the next job a node can lease: `lines` of output, then `status`.
async fn run_next_job(d: Arc<Dispatcher>, node: uuid::Uuid, lines: &[&str], status: FinishStatus, exit: i64) {
    let l = lease(&d, node).await;
    for (i, line) in lines.iter().enumerate() {
        output(&d, node, &l, u64::try_from(i).expect("seq"), line).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    finish(&d, node, &l, status, exit).await;
}

#[tokio::test]
async fn say_streams_the_reply_and_exits_with_the_jobs_status() {
    let db = TestDb::new().await;
    seed(&db.pool).await;
    let env = [("DATABASE_URL", db.url.as_str()), ("CYNODE__SECURITY__MASTER_KEY", MASTER_KEY)];
    let mut serve = BinProcess::spawn("cynode", &["serve", "--listen", "127.0.0.1:0"], &env);
    let url = url_of(&serve.wait_for("serving on http://", Duration::from_secs(30)).await);

    let (code, stdout, stderr) = run_to_end("cynode", &["admin", "token", "create", "ci-bot"], &env[..1]).await;
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim().to_string();
    assert!(token.starts_with("cyn_") && stderr.contains("shown only now"), "{stdout} {stderr}");
    let (code, listed, _) = run_to_end("cynode", &["admin", "token", "list", "--json"], &env[..1]).await;
    assert_eq!(code, 0);
    assert!(!listed.contains(&token) && listed.contains("ci-bot"), "{listed}");

    let d = Dispatcher::new(db.pool.clone(), Default::default());
    let node = sandbox_node(&db.pool).await;
    let cli_env = [("CYNODE_TOKEN", token.as_str())];

    // Success: output streams out, exit 0.
    let job = tokio::spawn(run_next_job(d.clone(), node, &["hello\n", "from cynode\n"], FinishStatus::Succeeded, 0));
    let mut say = BinProcess::spawn("cynode", &["say", "--url", &url, "run echo hello"], &cli_env);
    assert_eq!(say.wait_exit(Duration::from_secs(30)).await, Some(0), "{:?}", say.output());
    job.await.expect("job");
    let out = say.output().join("\n");
    assert!(out.contains("hello\nfrom cynode") && out.contains("succeeded"), "{out}");
    assert!(!out.contains(&token));

    // Failure: exit 1; --json lines all parse and end with the exit code.
    let job = tokio::spawn(run_next_job(d.clone(), node, &["boom\n"], FinishStatus::Failed, 2));
    let mut say = BinProcess::spawn("cynode", &["say", "--json", "--url", &url, "run false"], &cli_env);
    assert_eq!(say.wait_exit(Duration::from_secs(30)).await, Some(1), "{:?}", say.output());
    job.await.expect("job");
    let lines: Vec<serde_json::Value> = say
        .output()
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.first().expect("first")["type"], "submitted");
    assert_eq!(lines.last().expect("last")["type"], "end");
    assert_eq!(lines.last().expect("last")["exit_code"], 1);
    assert!(lines.iter().any(|l| l["event"]["data"] == "boom\n"));
    let job_id = lines[0]["response"]["job_id"].as_str().expect("job id").to_string();

    // Usage and API errors: exit 2.
    let (code, _, stderr) = run_to_end("cynode", &["say", "--url", &url, "help"], &cli_env).await;
    assert_eq!(code, 0, "answered at once: {stderr}");
    assert!(stderr.contains("run"), "{stderr}");
    let (code, _, stderr) = run_to_end("cynode", &["say", "--url", &url, "run"], &cli_env).await;
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run_to_end("cynode", &["say", "--url", &url, "/wat"], &cli_env).await;
    assert_eq!(code, 2, "an unknown command is a usage error: {stderr}");
    assert!(stderr.contains("I don't know `/wat`"), "{stderr}");

    // Refused commands: exit 4, so `cynode say … && deploy` stops.
    let (code, _, stderr) =
        run_to_end("cynode", &["say", "--url", &url, "run --template nosuch echo hi"], &cli_env).await;
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("no sandbox template `nosuch`"), "{stderr}");
    let (code, _, stderr) = run_to_end("cynode", &["say", "--url", &url, "cancel deadbeef"], &cli_env).await;
    assert_eq!(code, 4, "{stderr}");
    let (code, stdout, _) = run_to_end("cynode", &["say", "--json", "--url", &url, "cancel deadbeef"], &cli_env).await;
    assert_eq!(code, 4);
    assert!(stdout.contains("\"refused\":true"), "{stdout}");
    let bad = [("CYNODE_TOKEN", "cyn_nope")];
    let (code, _, stderr) = run_to_end("cynode", &["say", "--url", &url, "run echo"], &bad).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("unauthorized"), "{stderr}");

    // tasks and logs.
    let (code, stdout, _) = run_to_end("cynode", &["tasks", "--json", "--url", &url], &cli_env).await;
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert!(list["tasks"].as_array().expect("tasks").len() >= 4);
    let (code, stdout, _) = run_to_end("cynode", &["logs", &job_id, "--url", &url], &cli_env).await;
    assert_eq!((code, stdout.as_str()), (0, "boom\n"));
    let (code, stdout, _) = run_to_end("cynode", &["logs", "-f", &job_id, "--url", &url], &cli_env).await;
    assert_eq!((code, stdout.as_str()), (0, "boom\n"));

    let (code, stdout, _) = run_to_end("cynode", &["admin", "token", "revoke", "ci-bot"], &env[..1]).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("revoked"));
    let (code, _, _) = run_to_end("cynode", &["tasks", "--url", &url], &cli_env).await;
    assert_eq!(code, 1);
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(Duration::from_secs(30)).await, Some(0));
}

#[tokio::test]
async fn the_local_token_is_created_once_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("dir");
    let a = cynode_gateway::commands::say::ensure_local_token(&db.pool, dir.path()).await.expect("token");
    let b = cynode_gateway::commands::say::ensure_local_token(&db.pool, dir.path()).await.expect("token");
    use secrecy::ExposeSecret as _;
    assert_eq!(a.expose_secret(), b.expose_secret());
    let meta = std::fs::metadata(dir.path().join("api.token")).expect("file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let t = cynode_orchestrator::api_tokens::verify(&db.pool, a.expose_secret()).await.expect("db").expect("live");
    assert_eq!((t.name.as_str(), t.role.as_str(), t.install_id), ("local-admin", "admin", None));
}
