//! What a misbehaving or misconfigured node gets: stable codes over HTTP, one clear line from the binary.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cynode_orchestrator::nodes::{NodeClaims, TokenKeys};
use cynode_tests::process::run_to_end;
use serde_json::json;
use uuid::Uuid;

use crate::support::{DOCKER_ONLY_KEY, MASTER_KEY, NODE_KEY, Server, code};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_node_requests_get_stable_codes() {
    let server = Server::start(&[]).await;
    let beat = json!({"leases": []});

    let (status, body) = server.register("not-a-key-0123456789abcdef", "n", &["host"]).await;
    assert_eq!((status, code(&body)), (401, "unknown_key"), "{body}");
    let (status, body) = server.register(DOCKER_ONLY_KEY, "n", &["host"]).await;
    assert_eq!((status, code(&body)), (403, "not_granted"), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("host")), "{body}");

    let (status, body) = server.post("/v1/node/heartbeat", None, &beat).await;
    assert_eq!((status, code(&body)), (401, "missing_token"), "{body}");
    let claims = |exp| NodeClaims { sub: Uuid::new_v4(), key: Uuid::new_v4(), ver: 1, iat: now() - 100, exp };
    let expired = TokenKeys::derive(MASTER_KEY.as_bytes()).issue(&claims(now() - 10));
    let (status, body) = server.post("/v1/node/heartbeat", Some(&expired), &beat).await;
    assert_eq!((status, code(&body)), (401, "token_expired"), "{body}");
    let foreign = TokenKeys::derive(b"some other deployment's master key").issue(&claims(now() + 600));
    let (status, body) = server.post("/v1/node/heartbeat", Some(&foreign), &beat).await;
    assert_eq!((status, code(&body)), (401, "invalid_token"), "{body}");
    let (status, body) = server.post("/v1/node/heartbeat", Some("garbage"), &beat).await;
    assert_eq!((status, code(&body)), (401, "invalid_token"), "{body}");

    // A registered node writing about a job it does not hold (nobody does: no agent runs here).
    let token = server.token(NODE_KEY, "intruder", &["host"]).await;
    let (_, job) = server.enqueue_host("echo never").await;
    let lease = json!({"job_id": job, "attempt": 1, "lease_token": Uuid::new_v4()});
    let outcome = json!({"status": "succeeded", "exit_code": 0, "duration_ms": 1});
    let (status, body) =
        server.post("/v1/node/finish", Some(&token), &json!({"lease": lease, "outcome": outcome})).await;
    assert_eq!((status, code(&body)), (409, "stale_lease"), "{body}");
    let chunks = json!([{"stream": "stdout", "seq": 0, "data": "x"}]);
    let (status, body) = server.post("/v1/node/output", Some(&token), &json!({"lease": lease, "chunks": chunks})).await;
    assert_eq!((status, code(&body)), (409, "stale_lease"), "{body}");
    let unknown = json!({"job_id": Uuid::new_v4(), "attempt": 1, "lease_token": Uuid::new_v4()});
    let (status, body) =
        server.post("/v1/node/finish", Some(&token), &json!({"lease": unknown, "outcome": outcome})).await;
    assert_eq!((status, code(&body)), (404, "unknown_job"), "{body}");
    let (status, body) = server.post("/v1/node/lease", Some(&token), &json!({"max_jobs": "two"})).await;
    assert_eq!(status, 400, "{body}");
    let row = server.job(job).await;
    assert_eq!((row.state.as_str(), row.result), ("queued", None), "nothing landed");
}

/// One `error:` line, exit code 1, no panic, no key.
fn assert_one_error_line(code: i32, stderr: &str, want: &str) {
    assert_eq!(code, 1, "exit code; stderr:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(want), "{:?} should mention {want:?}", errors[0]);
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
    for key in [NODE_KEY, DOCKER_ONLY_KEY] {
        assert!(!stderr.contains(key), "the key must never be printed:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misconfigured_node_exits_with_one_clear_line() {
    let server = Server::start(&[]).await;
    let host = ["--no-docker", "--enable-host-executor"];
    let run = |key: &'static str| {
        let args = server.node_args("cli", &host);
        async move { run_to_end("cynode-node", &args, &[("CYNODE_NODE_KEY", key)]).await }
    };
    let (code, _, stderr) = run(DOCKER_ONLY_KEY).await;
    assert_one_error_line(code, &stderr, "does not grant the `host` executor");
    let (code, _, stderr) = run("wrong-key-0123456789abcdefgh").await;
    assert_one_error_line(code, &stderr, "does not accept this node key");
    let (code, _, stderr) = run_to_end("cynode-node", &server.node_args("cli", &host), &[]).await;
    assert_one_error_line(code, &stderr, "CYNODE_NODE_KEY");
    let (code, _, stderr) =
        run_to_end("cynode-node", &server.node_args("cli", &["--no-docker"]), &[("CYNODE_NODE_KEY", NODE_KEY)]).await;
    assert_one_error_line(code, &stderr, "--enable-host-executor");
    // An orchestrator that is not there yet is waited for, not an error.
    let args = ["run", "--orchestrator", "http://127.0.0.1:9", "--no-docker", "--enable-host-executor"];
    let mut waiting = cynode_tests::BinProcess::spawn("cynode-node", &args, &[("CYNODE_NODE_KEY", NODE_KEY)]);
    waiting.wait_for("cannot register yet; retrying", Duration::from_secs(10)).await;
    waiting.signal("TERM");
    assert_eq!(waiting.wait_exit(Duration::from_secs(5)).await, Some(0));
}
