//! Docker sandbox executor: runs one job attempt in a hardened, throw-away container on a
//! Docker-compatible engine (Docker, or Podman's compatible socket) and streams its output.
//!
//! Every sandbox gets: no network (unless the job is allowed one), a read-only root, tmpfs
//! `/tmp` and `/work`, all capabilities dropped, `no-new-privileges`, a non-root user, memory
//! (without swap), CPU and process limits, stdin at EOF, a wall-clock timeout and an output cap. The
//! agent's environment never reaches it: the container environment is exactly `PATH`, `HOME` and
//! the job's allowlisted variables. Only images from the node's templates may run, and they are
//! built locally (see [`crate::images`]); nothing is pulled.
//!
//! With a warm pool ([`DockerExecutor::with_warm_pool`], module [`pool`]) a few sandboxes per image are
//! created, attached to and started ahead of time with the same hardening, each running a stub shell that
//! waits for its job on stdin. A job of the pool's limits takes one: its command, working directory and
//! allowlisted environment are written to that stdin, which is then closed, and the stub `exec`s the job,
//! which becomes the container's main process; the container is destroyed afterwards. Starting a job thus
//! costs one write instead of a container creation and start. Everything else — limits, output, stop,
//! outcome — is the same.
//!
//! Every sandbox, warm or new, runs a watchdog beside its job (see `warm::script::watchdog`): the executor holds
//! the container's stdin for the whole run, and when it closes — the agent process died or was killed — the
//! watchdog kills the job; it also ends the job at its time limit plus the stop grace period plus
//! [`WATCHDOG_MARGIN`] should the agent fail to. So a sandbox never outlives its agent by more than moments, and
//! never its time limit. Stopped sandboxes of agents that never come back are removed by any agent on the engine
//! ([`sweep_stopped`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), cynode_node_agent::executor::docker::ExecError> {
//! use cynode_node_agent::executor::docker::*;
//! let engine = connect().await?;
//! cleanup_leftovers(&engine, DEFAULT_OWNER).await?;
//! let executor = DockerExecutor::new(engine, ["cynode/busybox:1"]);
//! let (tx, mut rx) = tokio::sync::mpsc::channel(64);
//! let spec = SandboxSpec::new(uuid::Uuid::now_v7(), 1, "cynode/busybox:1", shell_command("echo hi"));
//! let run = executor.run(spec, tokio_util::sync::CancellationToken::new(), tx);
//! let (outcome, _) = tokio::join!(run, async { while let Some(chunk) = rx.recv().await { /* upload */ } });
//! assert_eq!(outcome?.status, ExitStatusKind::Exited(0));
//! # Ok(()) }
//! ```

mod config;
mod engine;
mod error;
mod output;
pub mod pool;
mod remove;
mod run;
mod spec;
mod sweep;
mod warm;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

pub use config::SANDBOX_USER;
pub use engine::{DEFAULT_ENDPOINT, Engine, EngineInfo, cleanup_leftovers, connect, connect_to, probe};
pub use error::ExecError;
pub use output::{COALESCE_WINDOW, MAX_CHUNK_BYTES, OutputChunk, OutputStream, TRUNCATION_MARKER};
/// The output pump, shared with the host executor so both number, coalesce and cap output alike.
pub(crate) use output::{Pump, PumpEnd};
pub use pool::{PoolConfig, PoolShape, PoolStats, RETARGET_AFTER, WarmPool};
pub use remove::REMOVE_RETRY_FOR;
pub use run::WATCHDOG_MARGIN;
pub use spec::{GpuRequest, SANDBOX_PATH, SandboxLimits, SandboxSpec, WORK_DIR, shell_command};
pub use sweep::{SWEEP_AFTER, SWEEP_EVERY, spawn_sweeper, sweep_stopped};

/// Label present (`true`) on every container this executor creates.
pub const LABEL_MANAGED: &str = "cynode.managed";
/// Label naming the agent instance that owns the container (scope of [`cleanup_leftovers`]).
pub const LABEL_OWNER: &str = "cynode.owner";
/// Label carrying the job id.
pub const LABEL_JOB: &str = "cynode.job";
/// Label carrying the attempt number.
pub const LABEL_ATTEMPT: &str = "cynode.attempt";
/// Label on warm pool containers, carrying the image they were created for. They have no job or attempt
/// label (labels are fixed at creation); a container taken for a job is renamed after it instead.
pub const LABEL_POOL: &str = "cynode.pool";
/// Owner label value used when none is configured.
pub const DEFAULT_OWNER: &str = "cynode-node";

/// How a sandbox run ended. Every variant is a normal outcome, not an executor failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatusKind {
    /// The command exited by itself with this code (`128 + n` when killed by signal `n`).
    Exited(i64),
    /// The wall-clock limit passed; the sandbox was stopped.
    Timeout,
    /// The kernel killed a process of the sandbox for exceeding the memory limit.
    OutOfMemory,
    /// The output limit was reached; the sandbox was killed and the output cut off.
    OutputLimit,
    /// The run was cancelled; the sandbox was stopped.
    Cancelled,
}

/// The result of one sandbox run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// How it ended.
    pub status: ExitStatusKind,
    /// Wall-clock time from container start until the engine reported it stopped.
    pub duration: Duration,
    /// Bytes of job output delivered (stdout + stderr, without the truncation notice).
    pub output_bytes: u64,
    /// Whether output was cut off at the limit.
    pub truncated: bool,
}

/// Runs [`SandboxSpec`]s on one engine, restricted to an allowlist of images.
#[derive(Debug, Clone)]
pub struct DockerExecutor {
    engine: Engine,
    allowed_images: HashSet<String>,
    owner: String,
    stop_grace: Duration,
    pool: Option<Arc<WarmPool>>,
}

impl DockerExecutor {
    /// Longest accepted stop grace period (the engine client gives up on a request after 120 s).
    pub const MAX_STOP_GRACE: Duration = Duration::from_secs(60);

    /// An executor that may run exactly `allowed_images` (the images of the node's templates),
    /// with owner [`DEFAULT_OWNER`] and a 2 s stop grace period.
    pub fn new<I, S>(engine: Engine, allowed_images: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            engine,
            allowed_images: allowed_images.into_iter().map(Into::into).collect(),
            owner: DEFAULT_OWNER.to_owned(),
            stop_grace: Duration::from_secs(2),
            pool: None,
        }
    }

    /// Sets the owner label put on containers (the scope of [`cleanup_leftovers`]).
    #[must_use]
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// Sets how long a stopped sandbox gets between SIGTERM and SIGKILL (whole seconds, rounded
    /// up, at most [`Self::MAX_STOP_GRACE`]).
    #[must_use]
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace.min(Self::MAX_STOP_GRACE);
        self
    }

    /// Starts a warm pool of `config.size` idle containers for each allowed image (none when the size is
    /// 0). Call it after [`Self::with_owner`]: pool containers carry the owner label. Clones of the returned
    /// executor share the pool; once the last one is dropped, the pool's containers are removed in the
    /// background (use [`Self::shutdown_pool`] to wait for that). A pool this value had is replaced.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    #[must_use]
    pub fn with_warm_pool(mut self, config: &PoolConfig) -> Self {
        let mut images: Vec<&String> = self.allowed_images.iter().collect();
        images.sort();
        self.pool =
            (config.size > 0).then(|| Arc::new(WarmPool::start(self.engine.clone(), &self.owner, images, config)));
        self
    }

    /// The warm pool, if one was started.
    pub fn warm_pool(&self) -> Option<&WarmPool> {
        self.pool.as_deref()
    }

    /// Stops the warm pool (if any) and removes its idle containers; returns how many it held. Jobs
    /// started afterwards run cold.
    pub async fn shutdown_pool(&self) -> usize {
        match &self.pool {
            Some(pool) => pool.shutdown().await,
            None => 0,
        }
    }

    /// The engine this executor uses.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The owner label value of this executor's containers.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The stop grace period.
    pub fn stop_grace(&self) -> Duration {
        self.stop_grace
    }

    /// Whether `image` may run here.
    pub fn is_allowed(&self, image: &str) -> bool {
        self.allowed_images.contains(image)
    }
}
