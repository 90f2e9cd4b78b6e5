//! Connecting to the local container engine, probing it, and cleaning up after a crashed agent.

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};

use super::error::{ExecError, is_not_found};
use super::{LABEL_MANAGED, LABEL_OWNER};

/// The default engine endpoint when `DOCKER_HOST` is not set.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// A connection to a Docker-compatible engine, with the endpoint remembered for error messages.
///
/// Cheap to clone (the underlying client is reference-counted).
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    endpoint: String,
}

impl Engine {
    /// Wraps an already configured bollard client; `endpoint` is only used in messages.
    pub fn from_docker(docker: Docker, endpoint: impl Into<String>) -> Self {
        Self { docker, endpoint: endpoint.into() }
    }

    /// The underlying bollard client.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// Where this engine is reached (socket path or URL).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Maps a bollard error raised while doing `action` on this engine.
    pub(crate) fn err(&self, action: &'static str, err: bollard::errors::Error) -> ExecError {
        ExecError::engine(&self.endpoint, action, err)
    }
}

/// What the engine says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// Engine version, e.g. `20.10.24+dfsg1` (Docker) or `5.4.2` (Podman).
    pub version: String,
    /// The API version the engine speaks (and that this client negotiated down to if older).
    pub api_version: String,
    /// Operating system of the engine host, e.g. `linux`.
    pub os: String,
    /// CPU architecture of the engine host, e.g. `amd64`.
    pub arch: String,
    /// Kernel version of the engine host.
    pub kernel_version: String,
    /// Product name when the engine reports components (e.g. `Podman Engine`), else `Engine`.
    pub product: String,
}

/// Connects to the local engine the way the `docker` CLI does: `DOCKER_HOST` when set
/// (`unix://`, `tcp://` or `http://`), else [`DEFAULT_ENDPOINT`]. Podman's Docker-compatible
/// socket works the same (point `DOCKER_HOST` at it).
///
/// Pings the engine and negotiates the API version, so an older engine (e.g. Docker 20.10, API
/// 1.41) is spoken to in its own dialect.
///
/// # Errors
/// [`ExecError::EngineUnavailable`] naming the endpoint when nothing answers there.
pub async fn connect() -> Result<Engine, ExecError> {
    let host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
    connect_to(host.as_deref()).await
}

/// Connects to an explicit endpoint (`unix:///path`, `tcp://host:port`, `http://host:port`);
/// `None` means [`DEFAULT_ENDPOINT`]. See [`connect`].
///
/// # Errors
/// [`ExecError::EngineUnavailable`] when the endpoint is malformed or does not answer.
pub async fn connect_to(endpoint: Option<&str>) -> Result<Engine, ExecError> {
    let endpoint = endpoint.unwrap_or(DEFAULT_ENDPOINT).to_owned();
    let docker = Docker::connect_with_host(&endpoint)
        .map_err(|e| ExecError::EngineUnavailable { endpoint: endpoint.clone(), detail: e.to_string() })?;
    let docker =
        docker.negotiate_version().await.map_err(|e| ExecError::engine(&endpoint, "negotiate the API version", e))?;
    let engine = Engine::from_docker(docker, endpoint);
    engine.docker.ping().await.map_err(|e| engine.err("answer a ping", e))?;
    Ok(engine)
}

/// Asks the engine for its version and platform.
///
/// # Errors
/// [`ExecError::EngineUnavailable`] or [`ExecError::Engine`] when the engine cannot answer.
pub async fn probe(engine: &Engine) -> Result<EngineInfo, ExecError> {
    let v = engine.docker.version().await.map_err(|e| engine.err("report its version", e))?;
    let product =
        v.components.as_ref().and_then(|c| c.first()).map(|c| c.name.clone()).unwrap_or_else(|| "Engine".to_owned());
    let unknown = || "unknown".to_owned();
    Ok(EngineInfo {
        version: v.version.unwrap_or_else(unknown),
        api_version: v.api_version.unwrap_or_else(unknown),
        os: v.os.unwrap_or_else(unknown),
        arch: v.arch.unwrap_or_else(unknown),
        kernel_version: v.kernel_version.unwrap_or_else(unknown),
        product,
    })
}

/// Force-removes every container labelled `cynode.managed=true` and `cynode.owner=<owner>`,
/// running or not: what a crashed agent with that owner left behind. Call it when the agent
/// starts, before accepting work. Returns how many containers were removed.
///
/// The owner scope keeps two agents (or two test runs) on one engine from removing each other's
/// sandboxes; an agent uses the same owner as its executor
/// ([`DockerExecutor::with_owner`](super::DockerExecutor::with_owner)).
///
/// # Errors
/// [`ExecError`] when the engine cannot list or remove containers. A container that vanished
/// meanwhile is not an error.
pub async fn cleanup_leftovers(engine: &Engine, owner: &str) -> Result<usize, ExecError> {
    let filters =
        HashMap::from([("label".to_owned(), vec![format!("{LABEL_MANAGED}=true"), format!("{LABEL_OWNER}={owner}")])]);
    let found = engine
        .docker
        .list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() }))
        .await
        .map_err(|e| engine.err("list leftover sandboxes", e))?;
    let mut removed = 0;
    for id in found.into_iter().filter_map(|c| c.id) {
        match remove_forced(engine, &id).await {
            Ok(()) => removed += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine.err("remove a leftover sandbox", e)),
        }
    }
    if removed > 0 {
        tracing::info!(count = removed, owner, "removed leftover sandbox containers");
    }
    Ok(removed)
}

/// Force-removes one container (and its anonymous volumes).
pub(crate) async fn remove_forced(engine: &Engine, id: &str) -> Result<(), bollard::errors::Error> {
    engine
        .docker
        .remove_container(id, Some(RemoveContainerOptions { force: true, v: true, ..Default::default() }))
        .await
}
