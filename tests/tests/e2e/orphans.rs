//! Sandboxes never outlive their agent or their time limit: a `cynode-node` killed mid-job takes its
//! sandboxes with it (warm pool and cold) before its leases expire, so the re-leased attempt never runs beside
//! the old one; an agent that stops acting still has its sandbox end at the time limit. Real processes, the
//! real engine.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cynode_node_agent::executor::docker::{LABEL_OWNER, LABEL_POOL, connect};
use cynode_node_agent::images::build_busybox_image;
use cynode_protocol::{JobSpec, Requirements, SandboxLimits, SandboxSpec};
use tokio::time::Instant;
use uuid::Uuid;

use crate::support::{E2E_IMAGE, NODE_KEY, Server};

fn sleeper(command: &str, limits: SandboxLimits) -> JobSpec {
    JobSpec::Sandbox(SandboxSpec {
        template: "busybox".into(),
        image: E2E_IMAGE.into(),
        command: command.into(),
        network: false,
        env: vec![],
        limits,
        gpu: false,
    })
}

fn busybox() -> Requirements {
    Requirements { template: Some("busybox".into()), ..Requirements::default() }
}

fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().expect("docker CLI");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The container of a job's attempt, found the way docs/operations.md tells operators to.
async fn container_of(job: Uuid, attempt: i32) -> String {
    let filter = format!("name=cynode-{job}-{attempt}-");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = docker(&["ps", "-aq", "--filter", &filter]);
        if !found.is_empty() {
            assert_eq!(found.lines().count(), 1, "one container per attempt: {found}");
            return found;
        }
        assert!(Instant::now() < deadline, "no container named after job {job} attempt {attempt}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(running, exit code, finished at)` of a container.
fn state(id: &str) -> (bool, i64, Option<DateTime<Utc>>) {
    let line = docker(&["inspect", "-f", "{{.State.Running}} {{.State.ExitCode}} {{.State.FinishedAt}}", id]);
    let mut parts = line.split_whitespace();
    let running = parts.next() == Some("true");
    let code = parts.next().and_then(|c| c.parse().ok()).unwrap_or(-1);
    let finished = parts.next().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.with_timezone(&Utc));
    (running, code, finished.filter(|t| t.timestamp() > 0))
}

async fn wait_stopped(id: &str, within: Duration) -> (i64, DateTime<Utc>) {
    let deadline = Instant::now() + within;
    loop {
        if let (false, code, Some(at)) = state(id) {
            return (code, at);
        }
        assert!(Instant::now() < deadline, "container {id} still running after {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn prepare() -> Server {
    let engine = connect().await.unwrap_or_else(|e| panic!("this test needs a reachable container engine: {e}"));
    build_busybox_image(&engine, E2E_IMAGE).await.unwrap_or_else(|e| panic!("building {E2E_IMAGE}: {e}"));
    Server::start(&[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agents_sandboxes_die_before_their_jobs_are_leased_again() {
    let server = prepare().await;
    let template = format!("busybox={E2E_IMAGE}");
    let owner = format!("cynode-e2e-{}", Uuid::new_v4());
    let mut doomed = server.node("doomed", &["--template", &template, "--owner", &owner], NODE_KEY).await;
    // Its warm pool is up (two idle sandboxes), so the first job takes one.
    let pool = format!("label={LABEL_OWNER}={owner}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while docker(&["ps", "-q", "--filter", &pool, "--filter", &format!("label={LABEL_POOL}")]).lines().count() < 2 {
        assert!(Instant::now() < deadline, "the warm pool did not fill");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One job the warm pool takes (default limits) and one that needs a cold container (other memory).
    let warm_limits = SandboxLimits { timeout_s: 120, ..SandboxLimits::default() };
    let cold_limits = SandboxLimits { memory_mb: 200, ..warm_limits.clone() };
    let command = "echo started; sleep 600; echo never";
    let (_, warm_job) = server.enqueue(sleeper(command, warm_limits), busybox()).await;
    let (_, cold_job) = server.enqueue(sleeper(command, cold_limits), busybox()).await;
    for job in [warm_job, cold_job] {
        server.wait_running_with_output(job).await;
    }
    let warm = container_of(warm_job, 1).await;
    let cold = container_of(cold_job, 1).await;
    assert!(state(&warm).0 && state(&cold).0, "both sandboxes run");
    let pool_label =
        |id: &str| docker(&["inspect", "-f", &format!("{{{{index .Config.Labels \"{LABEL_POOL}\"}}}}"), id]);
    assert_eq!(pool_label(&warm), E2E_IMAGE, "the first job runs in a warm pool container");
    assert_ne!(pool_label(&cold), E2E_IMAGE, "the second in a container of its own");

    let survivor_owner = format!("cynode-e2e-{}", Uuid::new_v4());
    let _survivor = server.node("survivor", &["--template", &template, "--owner", &survivor_owner], NODE_KEY).await;
    doomed.signal("KILL");
    let killed = Instant::now();
    assert_eq!(doomed.wait_exit(Duration::from_secs(5)).await, None, "killed by a signal");

    let mut ended = Vec::new();
    for id in [&warm, &cold] {
        let (code, at) = wait_stopped(id, Duration::from_secs(10)).await;
        assert_eq!(code, 137, "killed by its watchdog");
        ended.push(at);
    }
    eprintln!("both sandboxes stopped {} ms after SIGKILL of their agent", killed.elapsed().as_millis());
    assert!(killed.elapsed() < Duration::from_secs(10));

    // The re-leased attempts start on the survivor only after the old sandboxes are dead.
    for (job, old_end) in [(warm_job, ended[0]), (cold_job, ended[1])] {
        let second = server.wait_job(job, Duration::from_secs(20), |j| j.attempt >= 2 && j.state == "running").await;
        assert_eq!(second.attempt, 2);
        let leased: DateTime<Utc> = sqlx::query_scalar("SELECT leased_at FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&server.db.pool)
            .await
            .expect("leased_at");
        assert!(old_end < leased, "attempt 1 ended at {old_end}, attempt 2 was leased at {leased}");
        let again = container_of(job, 2).await;
        assert!(state(&again).0, "attempt 2 runs");
    }
    assert_eq!(server.output(warm_job, 1, "stdout").await, "started\n", "attempt 1 never got further");
}

/// The agent is alive but does nothing (SIGSTOP): its timer cannot stop the job, the sandbox's own deadline
/// does — the time limit (2 s) plus the stop grace period (2 s) plus 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_ends_at_its_time_limit_while_its_agent_is_frozen() {
    let server = prepare().await;
    let template = format!("busybox={E2E_IMAGE}");
    let owner = format!("cynode-e2e-{}", Uuid::new_v4());
    let frozen = server.node("frozen", &["--template", &template, "--owner", &owner], NODE_KEY).await;
    let limits = SandboxLimits { timeout_s: 2, ..SandboxLimits::default() };
    let (_, job) = server.enqueue(sleeper("echo started; sleep 600", limits), busybox()).await;
    server.wait_running_with_output(job).await;
    let id = container_of(job, 1).await;
    let started = docker(&["inspect", "-f", "{{.State.StartedAt}}", &id]);
    frozen.signal("STOP");
    let (code, ended) = wait_stopped(&id, Duration::from_secs(30)).await;
    frozen.signal("CONT");
    assert_eq!(code, 137, "killed by its watchdog, not by the (frozen) agent");
    let started = DateTime::parse_from_rfc3339(&started).expect("start time").with_timezone(&Utc);
    let lived = (ended - started).to_std().expect("ended after it started");
    eprintln!("the sandbox of a frozen agent lived {} ms (limit 2 s)", lived.as_millis());
    assert!(lived >= Duration::from_secs(2), "not before the time limit: {lived:?}");
    frozen.signal("KILL");
}
