//! The engine going away: unreachable when a job arrives, and cut mid-job then back ("restart"), through
//! a proxy in front of the real socket (the shared daemon itself is never restarted). Either way the job
//! fails with a clear reason, nothing is left behind once the engine answers again, and the next job runs.

use std::time::{Duration, Instant};

use cynode_node_agent::executor::docker::{DockerExecutor, ExecError, ExitStatusKind, connect_to};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::proxy::EngineProxy;
use crate::support::{Mode, TestExec, both_modes, collect, containers_of_job, containers_of_owner, engine, shell};

both_modes!(engine_unreachable_when_a_job_arrives, engine_cut_mid_job_and_back);

async fn engine_unreachable_when_a_job_arrives(mode: Mode) {
    let proxy = EngineProxy::start();
    let engine = connect_to(Some(&proxy.endpoint())).await.expect("connect through the proxy");
    let t = TestExec::on(engine, mode).await;
    let spec = shell("echo hi");
    let job = spec.job_id;
    let exec = t.executor_for(&spec).await;

    proxy.cut();
    let (tx, _rx) = mpsc::channel(8);
    let err = exec.run(spec, CancellationToken::new(), tx).await.expect_err("the engine is unreachable");
    assert_unreachable(&err, &proxy);

    proxy.restore();
    assert_healthy_afterwards(&t, &exec, job).await;
}

async fn engine_cut_mid_job_and_back(mode: Mode) {
    let proxy = EngineProxy::start();
    let engine = connect_to(Some(&proxy.endpoint())).await.expect("connect through the proxy");
    let t = TestExec::on(engine, mode).await;
    let spec = shell("echo started; sleep 60; echo finished");
    let job = spec.job_id;
    let exec = t.executor_for(&spec).await;

    let (tx, mut rx) = mpsc::channel(8);
    let runner = exec.clone();
    let run = tokio::spawn(async move { runner.run(spec, CancellationToken::new(), tx).await });
    let first = rx.recv().await.expect("first output");
    assert_eq!(first.data, b"started\n");
    proxy.cut();
    let result = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the run ends").expect("no panic");
    let err = result.expect_err("the job cannot finish without its engine");
    assert_unreachable(&err, &proxy);
    while let Some(chunk) = rx.recv().await {
        assert!(!String::from_utf8_lossy(&chunk.data).contains("finished"), "the job cannot have finished");
    }

    proxy.restore();
    assert_healthy_afterwards(&t, &exec, job).await;
}

fn assert_unreachable(err: &ExecError, proxy: &EngineProxy) {
    assert!(matches!(err, ExecError::EngineUnavailable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("cannot reach the container engine"), "{msg}");
    assert!(msg.contains(&proxy.endpoint()), "the message names the endpoint: {msg}");
}

/// Once the engine answers again: the failed job's container goes away (its removal is retried), the next
/// job runs, and after the pool's shutdown nothing of this executor is left.
async fn assert_healthy_afterwards(t: &TestExec, exec: &DockerExecutor, failed_job: Uuid) {
    let real = engine().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = containers_of_job(&real, failed_job).await;
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the failed job's container was never removed: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (tx, rx) = mpsc::channel(8);
    let (outcome, out) = tokio::join!(exec.run(shell("echo healthy"), CancellationToken::new(), tx), collect(rx));
    assert_eq!(outcome.expect("the next job runs").status, ExitStatusKind::Exited(0));
    assert_eq!(out.stdout(), "healthy\n");
    exec.shutdown_pool().await;
    // Removals that failed during the outage are retried in the background.
    loop {
        let left = containers_of_owner(&real, t.exec.owner()).await;
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "containers left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
