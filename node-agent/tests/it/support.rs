//! Shared harness: one engine connection per test, the busybox image built once per run, output
//! collection, the "nothing left behind" check, and running each test cold and warm.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::ListContainersOptions;
use cynode_node_agent::executor::docker::{
    DockerExecutor, Engine, ExecError, LABEL_JOB, LABEL_OWNER, OutputChunk, OutputStream, PoolConfig, RunOutcome,
    SandboxSpec, connect, shell_command,
};
use cynode_node_agent::images::build_busybox_image;
use tokio::sync::{OnceCell, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The sandbox image every test uses; built (idempotently) once per test run.
pub const IMAGE: &str = "cynode/busybox:test";

static IMAGE_READY: OnceCell<()> = OnceCell::const_new();

/// Connects to the real engine. These tests exist to exercise it, so an unreachable engine is a
/// failure, never a skip.
pub async fn engine() -> Engine {
    init_logging();
    match connect().await {
        Ok(engine) => engine,
        Err(e) => {
            let ci = if std::env::var_os("CI").is_some() { " (CI)" } else { "" };
            panic!("these tests need a running Docker engine and none could be reached{ci}: {e}")
        }
    }
}

fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter("cynode_node_agent=debug").with_test_writer().try_init();
    }
}

/// How a test's jobs are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A new container per job.
    Cold,
    /// A warm pool container (of the job's limits) per job, handed to its waiting stub on stdin.
    Warm,
}

/// Defines, for each `name`, a module `name` with tests `cold` and `warm` that run `name(Mode)`: the same
/// test body against a cold executor and against a warm pool.
macro_rules! both_modes {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn cold() {
                super::$name(crate::support::Mode::Cold).await;
            }
            #[tokio::test]
            async fn warm() {
                super::$name(crate::support::Mode::Warm).await;
            }
        }
    )+};
}
pub(crate) use both_modes;

/// A connected executor allowed to run [`IMAGE`], with a private owner label so tests running in
/// parallel never clean up each other's containers.
pub struct TestExec {
    /// The executor under test (without a pool; [`TestExec::executor_for`] adds one in warm mode).
    pub exec: DockerExecutor,
    /// Cold or warm.
    pub mode: Mode,
}

impl TestExec {
    /// A cold executor on the real engine.
    pub async fn new() -> Self {
        Self::with_mode(Mode::Cold).await
    }

    /// An executor on the real engine that runs jobs in `mode`.
    pub async fn with_mode(mode: Mode) -> Self {
        Self::on(engine().await, mode).await
    }

    /// An executor on `engine` (which may be a proxy of the real one) that runs jobs in `mode`.
    pub async fn on(engine: Engine, mode: Mode) -> Self {
        IMAGE_READY
            .get_or_init(|| async {
                build_busybox_image(&engine, IMAGE)
                    .await
                    .unwrap_or_else(|e| panic!("building the test image failed: {e}"));
            })
            .await;
        let exec = DockerExecutor::new(engine, [IMAGE])
            .with_owner(format!("cynode-test-{}", Uuid::new_v4()))
            .with_stop_grace(Duration::from_secs(1));
        Self { exec, mode }
    }

    pub fn engine(&self) -> &Engine {
        self.exec.engine()
    }

    /// The executor to run `spec` with: cold mode, the plain one; warm mode, one with a one-container pool of
    /// exactly `spec`'s limits, already filled (so the job must run warm).
    pub async fn executor_for(&self, spec: &SandboxSpec) -> DockerExecutor {
        match self.mode {
            Mode::Cold => self.exec.clone(),
            Mode::Warm => {
                let exec = self.exec.clone().with_warm_pool(&PoolConfig { size: 1, limits: spec.limits.clone() });
                let pool = exec.warm_pool().expect("a pool");
                assert!(
                    pool.wait_ready(Duration::from_secs(60)).await,
                    "the warm pool did not fill: {:?}",
                    pool.stats()
                );
                exec
            }
        }
    }

    /// After one job run with `exec` from [`TestExec::executor_for`]: in warm mode, checks the job really
    /// ran in a warm container, shuts the pool down and checks nothing of this executor is left.
    pub async fn finish(&self, exec: &DockerExecutor) {
        let Some(pool) = exec.warm_pool().filter(|_| self.mode == Mode::Warm) else {
            return;
        };
        let stats = pool.stats();
        assert_eq!((stats.hits, stats.misses, stats.empty), (1, 0, 0), "the job did not run warm: {stats:?}");
        exec.shutdown_pool().await;
        let left = containers_of_owner(self.engine(), exec.owner()).await;
        assert!(left.is_empty(), "containers left behind after the pool's shutdown: {left:?}");
    }

    /// Runs `spec` to the end, collecting its output.
    pub async fn run(&self, spec: SandboxSpec) -> (Result<RunOutcome, ExecError>, Output) {
        self.run_with(spec, CancellationToken::new()).await
    }

    /// Runs `spec` with a cancel token, collecting its output, then checks nothing is left.
    pub async fn run_with(
        &self,
        spec: SandboxSpec,
        cancel: CancellationToken,
    ) -> (Result<RunOutcome, ExecError>, Output) {
        let job = spec.job_id;
        let exec = self.executor_for(&spec).await;
        let (tx, rx) = mpsc::channel(32);
        let (outcome, output) = tokio::join!(exec.run(spec, cancel, tx), collect(rx));
        assert_no_containers(self.engine(), job).await;
        self.finish(&exec).await;
        (outcome, output)
    }
}

/// A spec for `sh -c cmd` on [`IMAGE`] with a fresh job id.
pub fn shell(cmd: &str) -> SandboxSpec {
    SandboxSpec::new(Uuid::new_v4(), 1, IMAGE, shell_command(cmd))
}

/// Everything a run sent, in order.
#[derive(Debug, Default)]
pub struct Output {
    pub chunks: Vec<OutputChunk>,
}

impl Output {
    pub fn bytes(&self, stream: OutputStream) -> Vec<u8> {
        self.chunks.iter().filter(|c| c.stream == stream).flat_map(|c| c.data.iter().copied()).collect()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.bytes(OutputStream::Stdout)).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.bytes(OutputStream::Stderr)).into_owned()
    }

    /// Asserts sequence numbers are 0, 1, 2, … in arrival order.
    pub fn assert_contiguous(&self) {
        for (i, chunk) in self.chunks.iter().enumerate() {
            assert_eq!(chunk.seq, i as u64, "chunk sequence numbers must be contiguous");
        }
    }
}

pub async fn collect(mut rx: mpsc::Receiver<OutputChunk>) -> Output {
    let mut out = Output::default();
    while let Some(chunk) = rx.recv().await {
        out.chunks.push(chunk);
    }
    out
}

/// Containers (running or not) of this job: labelled with its id (cold), or named after it (a warm
/// container taken for it).
pub async fn containers_of_job(engine: &Engine, job: Uuid) -> Vec<String> {
    let mut ids = list(engine, "label", &format!("{LABEL_JOB}={job}")).await;
    ids.extend(list(engine, "name", &format!("cynode-{job}-")).await);
    ids
}

/// Containers (running or not) with this owner label.
pub async fn containers_of_owner(engine: &Engine, owner: &str) -> Vec<String> {
    list(engine, "label", &format!("{LABEL_OWNER}={owner}")).await
}

async fn list(engine: &Engine, filter: &str, value: &str) -> Vec<String> {
    let filters = HashMap::from([(filter.to_owned(), vec![value.to_owned()])]);
    engine
        .docker()
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await
        .expect("list containers")
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Fails if any container of `job` still exists.
pub async fn assert_no_containers(engine: &Engine, job: Uuid) {
    let left = containers_of_job(engine, job).await;
    assert!(left.is_empty(), "containers left behind for job {job}: {left:?}");
}
