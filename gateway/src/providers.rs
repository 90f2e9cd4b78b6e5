//! This replica's provider nodes: for every enabled external model provider, an in-process node agent whose only
//! executor is `provider`, registered over loopback with the provider's own node key. Provider calls are jobs
//! like any model step (leased, fenced, retried, cancelled, counted), and N replicas share a provider's load —
//! see `cynode_orchestrator::providers`.
//!
//! The set follows the `providers` table: checked every [`REFRESH`]; a provider that was added, changed or
//! removed gets its node started, restarted or stopped. The provider's key is handed to the node's inference
//! executor only, which sends it as the `Authorization` header; requests go through the outbound guard (no
//! internal address unless `outbound.allow_cidrs` allows it).

use std::collections::HashMap;
use std::time::Duration;

use cynode_node_agent::agent::{Agent, AgentHandle, AgentStatus};
use cynode_node_agent::config::{AgentConfig, ProviderExecutor};
use cynode_node_agent::executor::inference::InferenceConfig;
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::outbound_guard::OutboundGuard;
use cynode_orchestrator::providers::{self, PROVIDER_LABEL, Served};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How often the replica looks for added, changed or removed providers.
pub const REFRESH: Duration = Duration::from_secs(5);
/// How long stopping waits for a provider node (its running calls are cancelled and reported).
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// The running supervisor.
pub struct ProviderNodes {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ProviderNodes {
    /// Stops every provider node (bounded) and the supervisor.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct Running {
    version: chrono::DateTime<chrono::Utc>,
    stop: watch::Sender<bool>,
    handle: AgentHandle,
}

/// Starts the supervisor. `gateway` is this replica's own URL (loopback); `replica` names it among replicas
/// (host and port), so each replica's provider node is a node of its own.
pub fn spawn(
    pool: PgPool,
    secrets: SecretBox,
    guard: OutboundGuard,
    gateway: String,
    replica: String,
) -> ProviderNodes {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut running: HashMap<Uuid, Running> = HashMap::new();
        loop {
            match providers::served(&pool, &secrets).await {
                Ok(wanted) => reconcile(&mut running, wanted, &guard, &gateway, &replica).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the providers; keeping the provider nodes as they are")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(REFRESH) => {}
                _ = stopped.changed() => break,
            }
        }
        for (_, r) in running.drain() {
            stop_node(r).await;
        }
    });
    ProviderNodes { stop, task }
}

async fn reconcile(
    running: &mut HashMap<Uuid, Running>,
    wanted: Vec<Served>,
    guard: &OutboundGuard,
    gateway: &str,
    replica: &str,
) {
    // A node that ended by itself (its key was revoked, a refusal retrying cannot fix) is said and started
    // again at the next check.
    let ended: Vec<Uuid> =
        running.iter().filter(|(_, r)| r.handle.status() == AgentStatus::Stopped).map(|(id, _)| *id).collect();
    for id in ended {
        if let Some(r) = running.remove(&id) {
            match r.handle.join().await {
                Ok(()) => tracing::warn!(provider.id = %id, "a provider node stopped; starting it again"),
                Err(e) => tracing::error!(provider.id = %id, error = %e, "a provider node ended; starting it again"),
            }
        }
    }
    let gone: Vec<Uuid> = running
        .iter()
        .filter(|(id, r)| !wanted.iter().any(|p| p.id == **id && p.version == r.version))
        .map(|(id, _)| *id)
        .collect();
    for id in gone {
        if let Some(r) = running.remove(&id) {
            tracing::info!(provider.id = %id, "provider removed or changed; stopping its node");
            stop_node(r).await;
        }
    }
    for p in wanted {
        if running.contains_key(&p.id) {
            continue;
        }
        match start_node(&p, guard, gateway, replica) {
            Ok(r) => {
                tracing::info!(provider = %p.name, models = ?p.models, "provider node started");
                running.insert(p.id, r);
            }
            Err(why) => tracing::error!(provider = %p.name, "provider node not started: {why}"),
        }
    }
}

fn start_node(p: &Served, guard: &OutboundGuard, gateway: &str, replica: &str) -> Result<Running, String> {
    // IP literals are judged here (the guarded client judges names when it resolves them): the allowed ranges
    // may have changed since the provider was added.
    let url = url::Url::parse(&p.base_url).map_err(|e| format!("its base URL is not a URL ({e})"))?;
    guard.check_url(&url).map_err(|e| e.to_string())?;
    let http = guard
        .client_builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("cannot build its HTTP client: {e}"))?;
    let mut name = format!("provider-{}@{replica}", p.name);
    name.truncate(128);
    let mut config = AgentConfig::new(gateway, p.node_key.clone(), name);
    config.executors.docker = false;
    config.executors.host = false;
    config.executors.templates.clear();
    config.executors.warm_pool = 0;
    config.executors.provider = Some(ProviderExecutor {
        inference: InferenceConfig {
            base_url: p.base_url.clone(),
            api_key: p.api_key.clone(),
            allowed_models: p.models.clone(),
            default_model: p.models.first().cloned(),
        },
        http,
    });
    config.labels.insert(PROVIDER_LABEL.to_string(), p.id.to_string());
    config.max_concurrent_jobs = p.max_concurrent;
    config.validate().map_err(|e| e.to_string())?;
    let (stop, rx) = watch::channel(false);
    let handle = Agent::start(config, rx);
    Ok(Running { version: p.version, stop, handle })
}

async fn stop_node(r: Running) {
    let _ = r.stop.send(true);
    match tokio::time::timeout(STOP_WITHIN, r.handle.join()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "a provider node ended with an error"),
        Err(_) => tracing::warn!("a provider node did not stop in time"),
    }
}

/// How this replica is named among replicas: its host name (as a node agent finds it) and listening port.
pub fn replica_name(port: u16) -> String {
    let host = cynode_node_agent::config::host_name(std::env::var("HOSTNAME").ok().as_deref());
    format!("{host}:{port}")
}
