//! The warm pool itself: one container per job, refill, fallback, limits, cleanup.

use std::time::{Duration, Instant};

use cynode_node_agent::executor::docker::{
    ExitStatusKind, LABEL_POOL, PoolConfig, RETARGET_AFTER, SandboxLimits, cleanup_leftovers,
};

use crate::support::{Mode, TestExec, containers_of_owner, shell};

const READY: Duration = Duration::from_secs(60);

fn config(size: usize) -> PoolConfig {
    PoolConfig { size, limits: SandboxLimits::default() }
}

#[tokio::test]
async fn every_job_gets_a_fresh_container_and_the_pool_refills() {
    let t = TestExec::with_mode(Mode::Warm).await;
    let exec = t.exec.clone().with_warm_pool(&config(1));
    let pool = exec.warm_pool().expect("pool");
    let mut seen = Vec::new();
    for i in 0..3 {
        assert!(pool.wait_ready(READY).await, "refill {i} did not happen: {:?}", pool.stats());
        let idle = containers_of_owner(t.engine(), exec.owner()).await;
        assert_eq!(idle.len(), 1, "one idle container: {idle:?}");
        assert!(!seen.contains(&idle[0]), "a container was offered twice");
        seen.push(idle[0].clone());
        // Anything a previous job left in its workspace or /tmp must be gone.
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let spec = shell("ls -A /work /tmp | tr -d '\\n'; echo secret > /work/left; echo secret > /tmp/left");
        let run = exec.run(spec, tokio_util::sync::CancellationToken::new(), tx);
        let collect = async {
            let mut out = Vec::new();
            while let Some(c) = rx.recv().await {
                out.extend(c.data);
            }
            String::from_utf8_lossy(&out).into_owned()
        };
        let (outcome, out) = tokio::join!(run, collect);
        assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
        assert_eq!(out, "/tmp:/work:", "job {i} saw another job's files");
        assert!(!containers_of_owner(t.engine(), exec.owner()).await.contains(&idle[0]), "used container kept");
    }
    assert_eq!(pool.stats().hits, 3);
    assert!(pool.wait_ready(READY).await);
    assert_eq!(exec.shutdown_pool().await, 1);
    assert!(containers_of_owner(t.engine(), exec.owner()).await.is_empty());
    // After shutdown, jobs still run (cold).
    let (outcome, _) = TestExec { exec: exec.clone(), mode: Mode::Cold }.run(shell("true")).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    assert_eq!(pool.stats().hits, 3);
}

#[tokio::test]
async fn jobs_the_pool_cannot_serve_run_cold_and_the_pool_follows_their_limits() {
    let t = TestExec::new().await;
    let exec = t.exec.clone().with_warm_pool(&config(1));
    let pool = exec.warm_pool().expect("pool");
    assert!(pool.wait_ready(READY).await);
    let cold = TestExec { exec: exec.clone(), mode: Mode::Cold };

    let mut networked = shell("true");
    networked.network = true;
    assert_eq!(cold.run(networked).await.0.expect("run").status, ExitStatusKind::Exited(0));
    assert_eq!((pool.stats().hits, pool.stats().misses), (0, 1));
    // Another working directory: the engine creates it for a new container, the pool's stub could not.
    let mut elsewhere = shell("pwd");
    elsewhere.workdir = Some("/work/sub".into());
    let (outcome, out) = cold.run(elsewhere).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    assert_eq!(out.stdout(), "/work/sub\n");
    assert_eq!((pool.stats().hits, pool.stats().misses), (0, 2));

    // Other limits: cold, until RETARGET_AFTER such jobs in a row switch the pool to them.
    let small = || {
        let mut s =
            shell("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max");
        s.limits.memory_bytes = 64 * 1024 * 1024;
        s
    };
    for _ in 0..RETARGET_AFTER {
        let (outcome, out) = cold.run(small()).await;
        assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
        assert_eq!(out.stdout(), "67108864\n");
    }
    assert_eq!(pool.stats().hits, 0);
    assert!(pool.wait_ready(READY).await, "the pool did not refill with the new limits");
    let (outcome, out) = cold.run(small()).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    assert_eq!(out.stdout(), "67108864\n", "the warm container has the job's memory limit");
    assert_eq!(pool.stats().hits, 1);
    exec.shutdown_pool().await;
    assert!(containers_of_owner(t.engine(), exec.owner()).await.is_empty());
}

#[tokio::test]
async fn a_dead_warm_container_is_discarded_and_the_job_runs_cold() {
    let t = TestExec::new().await;
    let exec = t.exec.clone().with_warm_pool(&config(1));
    let pool = exec.warm_pool().expect("pool");
    assert!(pool.wait_ready(READY).await);
    // What an engine restart does to running containers.
    for id in containers_of_owner(t.engine(), exec.owner()).await {
        t.engine().docker().stop_container(&id, None).await.expect("stop the warm container");
    }
    let cold = TestExec { exec: exec.clone(), mode: Mode::Cold };
    let (outcome, out) = cold.run(shell("echo still works")).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    assert_eq!(out.stdout(), "still works\n");
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.discarded), (1, 1), "{stats:?}");
    assert!(pool.wait_ready(READY).await, "the pool did not refill");
    exec.shutdown_pool().await;
    assert!(containers_of_owner(t.engine(), exec.owner()).await.is_empty());
}

#[tokio::test]
async fn pool_containers_of_a_crashed_agent_are_removed_at_start() {
    let t = TestExec::new().await;
    let exec = t.exec.clone().with_warm_pool(&config(2));
    assert!(exec.warm_pool().expect("pool").wait_ready(READY).await);
    let idle = containers_of_owner(t.engine(), exec.owner()).await;
    assert_eq!(idle.len(), 2);
    for id in &idle {
        let labels = t.engine().docker().inspect_container(id, None).await.expect("inspect").config;
        let labels = labels.and_then(|c| c.labels).unwrap_or_default();
        assert!(labels.contains_key(LABEL_POOL), "{labels:?}");
    }
    // The next agent with the same owner starts by removing them.
    assert_eq!(cleanup_leftovers(t.engine(), exec.owner()).await.expect("cleanup"), 2);
    exec.shutdown_pool().await; // finds them gone: fine
    assert!(containers_of_owner(t.engine(), exec.owner()).await.is_empty());
}

#[tokio::test]
async fn dropping_the_executor_removes_its_pool() {
    let t = TestExec::new().await;
    let exec = t.exec.clone().with_warm_pool(&config(2));
    assert!(exec.warm_pool().expect("pool").wait_ready(READY).await);
    let owner = exec.owner().to_owned();
    drop(exec);
    // Empty, and still empty a while later (a container being created at the drop is removed when it is done).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut empty_since = None;
    while empty_since.is_none_or(|t: Instant| t.elapsed() < Duration::from_secs(3)) {
        if containers_of_owner(t.engine(), &owner).await.is_empty() {
            empty_since = empty_since.or(Some(Instant::now()));
        } else {
            empty_since = None;
        }
        assert!(Instant::now() < deadline, "the dropped pool's containers were not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
