//! The node agent runtime: prepare the executors, register, lease jobs up to the free slots, run each in
//! its own task while a heartbeat task keeps the leases alive, upload output and report outcomes.
//!
//! Embedding (what `cynode up` does):
//!
//! ```no_run
//! # async fn demo(key: secrecy::SecretString) -> anyhow::Result<()> {
//! use cynode_node_agent::{Agent, AgentConfig};
//! let (stop, stopped) = tokio::sync::watch::channel(false);
//! let mut agent = Agent::start(AgentConfig::new("http://127.0.0.1:8080", key, "local"), stopped);
//! let node_id = agent.registered().await; // None: the agent ended first (join() says why)
//! // … later:
//! let _ = stop.send(true);
//! agent.join().await
//! # }
//! ```
//!
//! Stopping (a `true` on the shutdown channel, or its sender dropped): no more leases are taken, running
//! jobs are cancelled and reported as `cancelled` (there is no way to hand a lease back, and re-running a
//! user's command elsewhere without being asked could repeat its side effects), then the agent returns —
//! within [`AgentTiming::shutdown_timeout`](crate::config::AgentTiming) plus the stop grace period at
//! worst; jobs not reported by then are abandoned, and the orchestrator re-queues them when their leases
//! expire.

mod heartbeat;
mod held;
mod job;
mod lease_loop;
mod outcome;
mod runner;
mod startup;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cynode_protocol::{RegisterRequest, SUPPORTED_VERSIONS};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::held::{Held, StopReason};
use self::job::JobContext;
use self::lease_loop::stop_requested;
pub use self::startup::{Prepared, prepare};
use crate::client::{Backoff, ClientConfig, ClientError, OrchestratorClient, SessionInfo};
use crate::config::{AgentConfig, AgentTiming};

/// Where a started agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStatus {
    /// Preparing executors or (re)trying to register.
    Starting,
    /// Registered; taking work.
    Registered {
        /// The node's id.
        node_id: Uuid,
    },
    /// Ended (see [`AgentHandle::join`] for why).
    Stopped,
}

/// The node agent.
#[derive(Debug)]
pub struct Agent;

impl Agent {
    /// Runs the agent until `shutdown` turns `true` (or its sender is dropped), then stops gracefully.
    ///
    /// # Errors
    /// An invalid configuration, no usable executor, or a refusal retrying cannot fix (unknown key,
    /// executor not granted, no common protocol version), phrased for the operator.
    pub async fn run(config: AgentConfig, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        Self::start(config, shutdown).join().await
    }

    /// Starts the agent on the current Tokio runtime and returns at once.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn start(config: AgentConfig, shutdown: watch::Receiver<bool>) -> AgentHandle {
        let (status_tx, status) = watch::channel(AgentStatus::Starting);
        let task = tokio::spawn(async move {
            let result = run_agent(config, shutdown, &status_tx).await;
            status_tx.send_replace(AgentStatus::Stopped);
            result
        });
        AgentHandle { status, task }
    }
}

/// A started agent.
#[derive(Debug)]
pub struct AgentHandle {
    status: watch::Receiver<AgentStatus>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl AgentHandle {
    /// Where the agent is now.
    pub fn status(&self) -> AgentStatus {
        *self.status.borrow()
    }

    /// Waits until the agent has registered and returns the node id; `None` when it ended first.
    pub async fn registered(&mut self) -> Option<Uuid> {
        let reached = self.status.wait_for(|s| *s != AgentStatus::Starting).await.ok().map(|s| *s);
        match reached {
            Some(AgentStatus::Registered { node_id }) => Some(node_id),
            _ => None,
        }
    }

    /// Waits for the agent to end.
    ///
    /// # Errors
    /// Why it ended, if not by a requested stop.
    pub async fn join(self) -> anyhow::Result<()> {
        self.task.await.context("the node agent task failed")?
    }
}

async fn run_agent(
    config: AgentConfig,
    mut shutdown: watch::Receiver<bool>,
    status: &watch::Sender<AgentStatus>,
) -> anyhow::Result<()> {
    config.validate()?;
    let prepared = prepare(&config.executors, true).await;
    if prepared.executors().is_empty() {
        let why = prepared.docker_off.as_deref().unwrap_or("no executor is enabled");
        anyhow::bail!(
            "this node has no executor to offer: the docker executor is off ({why}) and the host executor is \
             not enabled (--enable-host-executor, development only)"
        );
    }
    let registration = RegisterRequest {
        protocol_versions: SUPPORTED_VERSIONS.to_vec(),
        name: config.name.clone(),
        capabilities: prepared.capabilities(&config),
        agent_version: Some(env!("CARGO_PKG_VERSION").to_string()),
    };
    let client = Arc::new(OrchestratorClient::new(ClientConfig {
        base_url: config.orchestrator_url.clone(),
        node_key: config.node_key.clone(),
        registration: registration.clone(),
        request_timeout: config.timing.request_timeout,
    })?);
    let Some(session) = register(&client, &config.timing, &mut shutdown).await? else {
        return Ok(());
    };
    status.send_replace(AgentStatus::Registered { node_id: session.node_id });
    let caps = &registration.capabilities;
    tracing::info!(node.id = %session.node_id, node = config.name, orchestrator = client.base_url(),
        executors = ?caps.executors, templates = ?caps.templates, max_jobs = caps.max_concurrent_jobs,
        heartbeat_interval_ms = u64::try_from(session.heartbeat_interval.as_millis()).unwrap_or(u64::MAX),
        "node registered; waiting for jobs");

    let mut runner = prepared.runner;
    runner.start_warm_pool(config.executors.warm_pool);
    let ctx = Arc::new(JobContext {
        client: client.clone(),
        held: Arc::new(Held::default()),
        runner,
        timing: config.timing.clone(),
        stopping: CancellationToken::new(),
    });
    let beats = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat::heartbeat_loop(
        client.clone(),
        ctx.held.clone(),
        session.heartbeat_interval,
        beats.clone(),
    ));
    let mut tasks = JoinSet::new();
    let wait = config.timing.lease_wait.min(session.max_wait);
    let result = lease_loop::lease_loop(&ctx, config.max_concurrent_jobs, wait, &mut shutdown, &mut tasks).await;
    stop_jobs(&ctx, &mut tasks, config.timing.shutdown_timeout).await;
    ctx.runner.shutdown_warm_pool().await;
    beats.cancel();
    let _ = heartbeat.await;
    match result {
        Ok(()) => {
            tracing::info!("node agent stopped");
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!("the orchestrator at {} refused this node: {e}", client.base_url())),
    }
}

/// Registers, retrying while the orchestrator is unreachable; `None` when asked to stop meanwhile.
async fn register(
    client: &OrchestratorClient,
    timing: &AgentTiming,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<SessionInfo>> {
    let mut backoff = Backoff::new(timing.retry_base, timing.retry_cap);
    loop {
        let result = tokio::select! {
            r = client.register() => r,
            () = stop_requested(shutdown) => return Ok(None),
        };
        match result {
            Ok(session) => return Ok(Some(session)),
            Err(e) if e.is_transient() => {
                let delay = backoff.next_delay();
                if backoff.worth_logging() {
                    tracing::warn!(orchestrator = client.base_url(), error = %e, failures = backoff.failures(),
                        "cannot register yet; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop_requested(shutdown) => return Ok(None),
                }
            }
            Err(e) => return Err(explain_refusal(client.base_url(), &e)),
        }
    }
}

fn explain_refusal(url: &str, e: &ClientError) -> anyhow::Error {
    match e.code() {
        Some("unknown_key") => anyhow::anyhow!(
            "the orchestrator at {url} does not accept this node key (unknown or revoked): check CYNODE_NODE_KEY \
             or the --key-file against `node_keys` in the orchestrator's bootstrap file"
        ),
        _ => anyhow::anyhow!("registration with the orchestrator at {url} was refused: {e}"),
    }
}

/// Cancels every running job and waits (bounded) until each is reported.
async fn stop_jobs(ctx: &JobContext, tasks: &mut JoinSet<()>, limit: Duration) {
    ctx.stopping.cancel();
    ctx.held.cancel_all(StopReason::Shutdown);
    if tasks.is_empty() {
        return;
    }
    tracing::info!(jobs = tasks.len(), "stopping: cancelling running jobs and reporting them as cancelled");
    let drained = tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            jobs = tasks.len(),
            limit_s = limit.as_secs(),
            "jobs were not reported in time; abandoning them (the orchestrator re-queues them when their leases expire)"
        );
        tasks.shutdown().await;
    }
}
