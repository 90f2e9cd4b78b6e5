//! The real `cynode` binary: start, readiness, shutdown, and every start-up error a user can cause.

use std::time::Duration;

use cynode_tests::process::run_to_end;
use cynode_tests::{BinProcess, TestDb};

const KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJmrw=";
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/cynode.yaml");

fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("cynode-up-").tempdir_in("/tmp").expect("tmp")
}

fn addr_from(line: &str) -> String {
    let start = line.find("http://").expect("url in line");
    line[start..].split_whitespace().next().expect("url").to_string()
}

/// One clear `error:` line, no panic, no backtrace, no secret.
fn assert_one_error_line(code: i32, stderr: &str, want: &str) {
    assert_eq!(code, 1, "exit code; stderr:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{stderr}");
    assert!(errors[0].contains(want), "wanted {want:?} in:\n{stderr}");
    for bad in ["panicked", "stack backtrace", "hunter2", KEY] {
        assert!(!stderr.contains(bad), "{bad:?} in:\n{stderr}");
    }
}

async fn ready(url: &str) -> serde_json::Value {
    let r = reqwest::get(format!("{url}/readyz")).await.expect("readyz");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

#[tokio::test]
async fn up_runs_on_embedded_postgres_keeps_data_and_stops_cleanly() {
    let dir = data_dir();
    let d = dir.path().to_str().expect("utf8");
    // The example, plus a template whose image no engine has: the banner must not claim the node offers it.
    let example = std::fs::read_to_string(EXAMPLE).expect("example");
    let rogue = "  - name: rogue\n    image: cynode-test/rogue:absent\n\npolicy:";
    let bootstrap = dir.path().join("bootstrap.yaml");
    std::fs::write(&bootstrap, example.replacen("\npolicy:", &format!("\n{rogue}"), 1)).expect("bootstrap");
    let bootstrap = bootstrap.to_str().expect("utf8");
    let args = ["up", "--data-dir", d, "--listen", "127.0.0.1:0", "--bootstrap", bootstrap];
    let mut up = BinProcess::spawn("cynode", &args, &[]);
    let url = addr_from(&up.wait_for("gateway    http://", Duration::from_secs(120)).await);
    let body = ready(&url).await;
    assert_eq!(body["store"]["pgvector"], "0.8.6");
    assert!(up.output().iter().any(|l| l.contains("bootstrap") && l.contains("11 created")), "{:?}", up.output());
    assert!(dir.path().join("pg/postmaster.pid").exists());
    let node_line = up.wait_for("  node       local:", Duration::from_secs(60)).await;
    assert!(node_line.contains("registered as node") && node_line.contains("docker"), "{node_line}");
    assert!(
        node_line.contains("; templates busybox, busybox-net (not offered, image missing: rogue);"),
        "only what the node offers: {node_line}"
    );
    // The hint names a command that works as shown: this binary (not on PATH in tests) by its full path.
    let hint = up.wait_for("  try        ", Duration::from_secs(10)).await;
    let command = hint.trim_start().trim_start_matches("try").trim_start();
    let program = command.split(" say ").next().expect("program").trim_matches('\'');
    assert!(std::path::Path::new(program).is_absolute() && std::path::Path::new(program).exists(), "{hint}");
    let (code, _, stderr) = run_to_end(program, &["say", "--help"], &[]).await;
    assert_eq!(code, 0, "{hint}: {stderr}");
    run_a_job_through_the_local_node(&up.output(), dir.path()).await;

    // A second `up` on the same directory is refused while the first runs.
    let (code, _, stderr) = run_to_end("cynode", &["up", "--data-dir", d, "--listen", "127.0.0.1:0"], &[]).await;
    assert_one_error_line(code, &stderr, "another CyNode process is using");

    up.signal("TERM");
    assert_eq!(up.wait_exit(Duration::from_secs(30)).await, Some(0), "{:?}", up.output());
    assert!(!dir.path().join("pg/postmaster.pid").exists(), "PostgreSQL stopped with cynode");

    // Restart: the data is still there and the import finds nothing to do.
    let mut again = BinProcess::spawn("cynode", &args, &[]);
    let url = addr_from(&again.wait_for("gateway    http://", Duration::from_secs(60)).await);
    ready(&url).await;
    assert!(again.output().iter().any(|l| l.contains("0 created, 0 updated, 11 unchanged")), "{:?}", again.output());
    again.signal("INT");
    assert_eq!(again.wait_exit(Duration::from_secs(30)).await, Some(0));
}

/// Submits `run echo …` straight into the store of a running `cynode up` and waits for its in-process node
/// to run it in a real sandbox.
async fn run_a_job_through_the_local_node(output: &[String], data_dir: &std::path::Path) {
    let line = output.iter().find(|l| l.contains("psql -h")).expect("psql line");
    let port = line.split(" -p ").nth(1).and_then(|r| r.split_whitespace().next()).expect("port");
    let password = std::fs::read_to_string(data_dir.join("pg.password")).expect("password");
    let url = format!("postgres://postgres:{}@127.0.0.1:{port}/cynode", password.trim());
    let pool = cynode_orchestrator::store::connect(&url, &Default::default()).await.expect("connect");
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let dispatcher = cynode_orchestrator::dispatch::Dispatcher::new(pool.clone(), Default::default());
    dispatcher.spawn_background(rx);
    let commands = cynode_orchestrator::commands::Commands::new(pool.clone(), dispatcher, Default::default());
    let origin =
        cynode_orchestrator::tasks::Origin { requester: "U1".into(), source: "test".into(), ..Default::default() };
    let reply = commands.handle(&origin, "run echo hello-from-up; id -u").await.expect("run");
    let job = reply.job_id.expect("job");
    let mut state = String::new();
    for _ in 0..150 {
        state =
            sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1").bind(job).fetch_one(&pool).await.expect("state");
        if state == "succeeded" || state == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(state, "succeeded");
    let out: Vec<Vec<u8>> = sqlx::query_scalar("SELECT data FROM job_output_chunks WHERE job_id = $1 ORDER BY seq")
        .bind(job)
        .fetch_all(&pool)
        .await
        .expect("chunks");
    assert_eq!(String::from_utf8_lossy(&out.concat()), "hello-from-up\n65534\n");
    pool.close().await;
}

#[tokio::test]
async fn serve_runs_against_an_external_database() {
    let db = TestDb::new().await;
    let env = [("DATABASE_URL", db.url.as_str()), ("CYNODE__SECURITY__MASTER_KEY", KEY)];
    let mut serve = BinProcess::spawn("cynode", &["serve", "--listen", "127.0.0.1:0", "--bootstrap", EXAMPLE], &env);
    let url = addr_from(&serve.wait_for("serving on http://", Duration::from_secs(30)).await);
    assert_eq!(ready(&url).await["status"], "ready");
    let installs: i64 = sqlx::query_scalar("SELECT count(*) FROM installs").fetch_one(&db.pool).await.expect("count");
    assert_eq!(installs, 4);
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(Duration::from_secs(30)).await, Some(0));
}

#[tokio::test]
async fn migrate_applies_once_and_then_has_nothing_to_do() {
    let db = TestDb::empty().await;
    let latest = cynode_orchestrator::store::MIGRATOR.iter().map(|m| m.version).max().expect("migrations");
    for _ in 0..2 {
        let (code, stdout, stderr) = run_to_end("cynode", &["migrate"], &[("DATABASE_URL", db.url.as_str())]).await;
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains(&format!("database is at migration {latest}")), "{stdout}");
    }
}

#[tokio::test]
async fn start_up_errors_are_one_clear_line() {
    let (code, _, stderr) = run_to_end("cynode", &["serve"], &[]).await;
    assert_one_error_line(code, &stderr, "cynode serve needs a database: set DATABASE_URL");

    let (code, _, stderr) = run_to_end("cynode", &["migrate"], &[]).await;
    assert_one_error_line(code, &stderr, "cynode migrate needs a database");

    let env = [("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/db"), ("CYNODE__SECURITY__MASTER_KEY", KEY)];
    let (code, _, stderr) = run_to_end("cynode", &["serve", "--listen", "127.0.0.1:0"], &env).await;
    assert_one_error_line(code, &stderr, "cannot connect to PostgreSQL at 127.0.0.1:1/db");

    let env = [("DATABASE_URL", "mysql://u:hunter2@h/db"), ("CYNODE__SECURITY__MASTER_KEY", KEY)];
    let (code, _, stderr) = run_to_end("cynode", &["serve", "--listen", "127.0.0.1:0"], &env).await;
    assert_one_error_line(code, &stderr, "not a valid PostgreSQL URL");

    let env = [("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/db")];
    let (code, _, stderr) = run_to_end("cynode", &["serve", "--listen", "127.0.0.1:0"], &env).await;
    assert_one_error_line(code, &stderr, "needs security.master_key");

    let (code, _, stderr) = run_to_end("cynode", &["serve"], &[("CYNODE__DATABASE__URLL", "x")]).await;
    assert_one_error_line(code, &stderr, "set by environment variable CYNODE__DATABASE__URLL");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    let (code, _, stderr) = run_to_end("cynode", &["serve", "--listen", &port], &[]).await;
    assert_one_error_line(code, &stderr, "address already in use");
}

#[tokio::test]
async fn a_corrupt_bootstrap_file_stops_the_start_and_changes_nothing() {
    let db = TestDb::new().await;
    let bad = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(bad.path(), "installs:\n  - platform: slack\n    name: [oops\n").expect("write");
    let env = [("DATABASE_URL", db.url.as_str()), ("CYNODE__SECURITY__MASTER_KEY", KEY)];
    let path = bad.path().to_str().expect("utf8");
    let (code, _, stderr) =
        run_to_end("cynode", &["serve", "--listen", "127.0.0.1:0", "--bootstrap", path], &env).await;
    assert_one_error_line(code, &stderr, &format!("bootstrap file {path}"));
    let installs: i64 = sqlx::query_scalar("SELECT count(*) FROM installs").fetch_one(&db.pool).await.expect("count");
    assert_eq!(installs, 0);
}

#[tokio::test]
async fn a_data_directory_owned_by_someone_else_is_refused() {
    let dir = data_dir();
    let pg = dir.path().join("pg");
    std::fs::create_dir_all(&pg).expect("mkdir");
    let root = cynode_orchestrator::store::embedded::effective_uid() == 0;
    let d = if root {
        std::os::unix::fs::chown(&pg, Some(4343), Some(4343)).expect("chown");
        dir.path().to_str().expect("utf8").to_string()
    } else {
        "/var/lib".to_string()
    };
    let (code, _, stderr) = run_to_end("cynode", &["up", "--data-dir", &d, "--listen", "127.0.0.1:0"], &[]).await;
    assert_one_error_line(code, &stderr, "is owned by");
}
