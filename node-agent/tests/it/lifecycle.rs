//! Refusals, cancellation and cleanup.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptions;
use cynode_node_agent::executor::docker::{
    DockerExecutor, Engine, ExecError, ExitStatusKind, LABEL_MANAGED, LABEL_OWNER, cleanup_leftovers, connect_to,
    probe, sweep_stopped,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{IMAGE, Mode, TestExec, both_modes, containers_of_job, containers_of_owner, engine, shell};

both_modes!(cancel_mid_run_stops_the_sandbox, dropping_a_run_still_removes_its_container,);

#[tokio::test]
async fn images_outside_the_allowlist_are_refused_before_the_engine_is_touched() {
    // An engine at an address where nothing listens: any engine call would fail differently.
    let docker =
        bollard::Docker::connect_with_http("http://127.0.0.1:9", 5, bollard::API_DEFAULT_VERSION).expect("client");
    let exec = DockerExecutor::new(Engine::from_docker(docker, "http://127.0.0.1:9"), [IMAGE]);
    let mut spec = shell("echo hi");
    spec.image = "alpine:latest".into();
    let (tx, _rx) = mpsc::channel(1);
    let err = exec.run(spec, CancellationToken::new(), tx).await.expect_err("must be refused");
    assert!(matches!(&err, ExecError::ImageNotAllowed(i) if i == "alpine:latest"), "{err}");
    assert!(err.to_string().contains("not allowed"));
}

#[tokio::test]
async fn a_missing_image_says_how_to_build_it() {
    let t = TestExec::new().await;
    let missing = "cynode/not-built-here:1";
    let exec = DockerExecutor::new(t.engine().clone(), [missing]).with_owner(t.exec.owner());
    let mut spec = shell("echo hi");
    spec.image = missing.into();
    let job = spec.job_id;
    let (tx, _rx) = mpsc::channel(1);
    let err = exec.run(spec, CancellationToken::new(), tx).await.expect_err("missing");
    assert!(matches!(&err, ExecError::ImageMissing(i) if i == missing), "{err}");
    assert!(err.to_string().contains("cynode-node images build"), "{err}");
    assert!(containers_of_job(t.engine(), job).await.is_empty());
}

#[tokio::test]
async fn an_unreachable_engine_is_named_in_the_error() {
    for endpoint in ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:9"] {
        let err = connect_to(Some(endpoint)).await.expect_err("nothing listens there");
        assert!(matches!(err, ExecError::EngineUnavailable { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("cannot reach the container engine"), "{msg}");
        assert!(msg.contains(endpoint.trim_start_matches("unix://")), "{msg}");
    }
}

#[tokio::test]
async fn probe_reports_the_engine() {
    let info = probe(&engine().await).await.expect("probe");
    assert_eq!(info.os, "linux");
    assert!(!info.version.is_empty() && info.api_version.starts_with("1."), "{info:?}");
}

#[tokio::test]
async fn invalid_specs_are_refused() {
    let t = TestExec::new().await;
    let mut spec = shell("env");
    spec.env.push(("BAD NAME".into(), "x".into()));
    let (outcome, _) = t.run(spec).await;
    assert!(matches!(outcome, Err(ExecError::InvalidSpec(_))), "{outcome:?}");
    let mut spec = shell("true");
    spec.command.clear();
    let (outcome, _) = t.run(spec).await;
    assert!(matches!(outcome, Err(ExecError::InvalidSpec(_))), "{outcome:?}");
}

async fn cancel_mid_run_stops_the_sandbox(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let spec = shell("echo started; sleep 60");
    let job = spec.job_id;
    let exec = t.executor_for(&spec).await;
    let cancel = CancellationToken::new();
    let (tx, mut rx) = mpsc::channel(8);
    let run = exec.run(spec, cancel.clone(), tx);
    let canceller = async {
        let first = rx.recv().await.expect("first output");
        assert_eq!(first.data, b"started\n");
        let at = Instant::now();
        cancel.cancel();
        while rx.recv().await.is_some() {}
        at
    };
    let (outcome, cancelled_at) = tokio::join!(run, canceller);
    let outcome = outcome.expect("run");
    assert_eq!(outcome.status, ExitStatusKind::Cancelled);
    assert!(cancelled_at.elapsed() < Duration::from_secs(5), "{:?}", cancelled_at.elapsed());
    assert!(containers_of_job(t.engine(), job).await.is_empty());
    t.finish(&exec).await;

    // Cancelled before it started: nothing is created (or taken from the pool) at all.
    let spec = shell("echo never");
    let exec = t.executor_for(&spec).await;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let (tx, mut rx) = mpsc::channel(8);
    let outcome = exec.run(spec, cancel, tx).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Cancelled);
    assert!(rx.recv().await.is_none(), "no output");
    if let Some(pool) = exec.warm_pool() {
        assert_eq!(pool.stats().hits, 0, "a cancelled job must not use up a warm container");
        assert_eq!(exec.shutdown_pool().await, 1);
    }
}

async fn dropping_a_run_still_removes_its_container(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let spec = shell("echo started; sleep 60");
    let job = spec.job_id;
    let (tx, mut rx) = mpsc::channel(8);
    let exec = t.executor_for(&spec).await;
    let runner = exec.clone();
    let task = tokio::spawn(async move { runner.run(spec, CancellationToken::new(), tx).await });
    rx.recv().await.expect("first output");
    task.abort();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !containers_of_job(t.engine(), job).await.is_empty() {
        assert!(Instant::now() < deadline, "container of a dropped run was not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if mode == Mode::Warm {
        // A warm container is named after its job only shortly after the start: wait for everything of the
        // owner (the taken container and, after the shutdown, the pool) to go.
        exec.shutdown_pool().await;
        while !containers_of_owner(t.engine(), exec.owner()).await.is_empty() {
            assert!(Instant::now() < deadline, "the warm container of a dropped run was not removed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    t.finish(&exec).await;
}

#[tokio::test]
async fn leftovers_of_a_crashed_agent_are_removed() {
    let t = TestExec::new().await;
    let engine = t.engine();
    let (mine, other) = (t.exec.owner().to_owned(), format!("other-{}", Uuid::new_v4()));
    let mut ids = Vec::new();
    for owner in [&mine, &mine, &other] {
        let labels =
            HashMap::from([(LABEL_MANAGED.to_owned(), "true".to_owned()), (LABEL_OWNER.to_owned(), owner.clone())]);
        let body = ContainerCreateBody {
            image: Some(IMAGE.to_owned()),
            cmd: Some(vec!["sleep".into(), "300".into()]),
            labels: Some(labels),
            host_config: Some(bollard::models::HostConfig { network_mode: Some("none".into()), ..Default::default() }),
            ..Default::default()
        };
        let id = engine.docker().create_container(None::<CreateContainerOptions>, body).await.expect("create").id;
        ids.push(id);
    }
    engine.docker().start_container(&ids[0], None).await.expect("start");

    assert_eq!(cleanup_leftovers(engine, &mine).await.expect("cleanup"), 2);
    assert!(containers_of_owner(engine, &mine).await.is_empty());
    assert_eq!(containers_of_owner(engine, &other).await.len(), 1, "others' containers are kept");
    assert_eq!(cleanup_leftovers(engine, &other).await.expect("cleanup"), 1);
    assert!(containers_of_owner(engine, &other).await.is_empty());
}

/// Stopped sandboxes of an agent that never comes back (another owner) are removed by any agent on the engine
/// once they have been stopped for the sweep's age; running ones, and ones stopped more recently, are kept.
#[tokio::test]
async fn stopped_sandboxes_of_any_owner_are_swept_after_a_while() {
    let t = TestExec::new().await;
    let engine = t.engine();
    let gone = format!("gone-{}", Uuid::new_v4());
    let labels = HashMap::from([(LABEL_MANAGED.to_owned(), "true".to_owned()), (LABEL_OWNER.to_owned(), gone.clone())]);
    let create = |cmd: &str| {
        let body = ContainerCreateBody {
            image: Some(IMAGE.to_owned()),
            cmd: Some(vec!["sh".into(), "-c".into(), cmd.into()]),
            labels: Some(labels.clone()),
            host_config: Some(bollard::models::HostConfig { network_mode: Some("none".into()), ..Default::default() }),
            ..Default::default()
        };
        async move { engine.docker().create_container(None::<CreateContainerOptions>, body).await.expect("create").id }
    };
    let (exited, running, never_started) = (create("exit 0").await, create("sleep 300").await, create("true").await);
    for id in [&exited, &running] {
        engine.docker().start_container(id, None).await.expect("start");
    }
    let status = |id: String| async move {
        engine.docker().inspect_container(&id, None).await.ok().and_then(|c| c.state).and_then(|s| s.status)
    };
    while status(exited.clone()).await != Some(bollard::models::ContainerStateStatusEnum::EXITED) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sweep_stopped(engine, Duration::from_secs(3600)).await.expect("sweep");
    assert_eq!(containers_of_owner(engine, &gone).await.len(), 3, "nothing stopped for an hour yet");

    tokio::time::sleep(Duration::from_secs(6)).await;
    sweep_stopped(engine, Duration::from_secs(5)).await.expect("sweep");
    let left = containers_of_owner(engine, &gone).await;
    assert_eq!(left, [running], "the exited and the never started ones are swept, the running one kept");
    assert!(status(never_started).await.is_none());
    assert_eq!(cleanup_leftovers(engine, &gone).await.expect("cleanup"), 1);
}
