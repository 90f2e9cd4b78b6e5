//! Getting ready to take work: probe the container engine, remove what a crashed predecessor left
//! behind, check which template images are present, and work out the capabilities to register with.

use std::collections::BTreeMap;

use bollard::errors::Error as BollardError;
use cynode_protocol::{Capabilities, ExecutorKind};

use super::runner::JobRunner;
use crate::config::{AgentConfig, ExecutorConfig, Template};
use crate::executor::docker::{
    DockerExecutor, Engine, EngineInfo, cleanup_leftovers, connect_to, probe, spawn_sweeper,
};
use crate::executor::host::HostExecutor;
use crate::executor::inference::InferenceExecutor;

/// What the node can offer, and why not more.
#[derive(Debug)]
pub struct Prepared {
    /// The engine, when reachable and Docker is enabled.
    pub engine: Option<EngineInfo>,
    /// Why the Docker executor is off, when it is.
    pub docker_off: Option<String>,
    /// Templates whose image is missing on the engine (not offered).
    pub missing: Vec<Template>,
    /// Models the inference server serves (allowlisted).
    pub models: Vec<String>,
    /// GPUs found through NVML.
    pub gpus: Vec<cynode_protocol::GpuInfo>,
    /// Executors by kind.
    pub(crate) runner: JobRunner,
    /// Whether this is a provider node (its inference executor is offered as `provider`).
    pub provider: bool,
}

impl Prepared {
    /// The executors offered.
    pub fn executors(&self) -> Vec<ExecutorKind> {
        let mut e = Vec::new();
        if self.runner.docker.is_some() {
            e.push(ExecutorKind::Docker);
        }
        if self.runner.host.is_some() {
            e.push(ExecutorKind::Host);
        }
        if self.runner.inference.is_some() {
            e.push(if self.provider { ExecutorKind::Provider } else { ExecutorKind::Inference });
        }
        e
    }

    /// The templates offered: name → image.
    pub fn templates(&self) -> &BTreeMap<String, String> {
        &self.runner.templates
    }

    /// The capabilities to register with.
    pub fn capabilities(&self, config: &AgentConfig) -> Capabilities {
        let mut labels = config.labels.clone();
        if self.runner.inference.is_some() {
            // Embed jobs go only to agents that carry this (one that predates them could not read the lease).
            labels.insert(cynode_protocol::EMBED_LABEL.into(), cynode_protocol::EMBED_LABEL_VALUE.into());
        }
        Capabilities {
            executors: self.executors(),
            templates: self.runner.templates.keys().cloned().collect(),
            labels,
            gpus: self.gpus.clone(),
            models: self.models.clone(),
            max_concurrent_jobs: config.max_concurrent_jobs,
            colocated: self.runner.docker.is_some() && self.runner.inference.is_some(),
        }
    }
}

/// Probes and prepares the executors `config` enables; with `cleanup`, first removes sandboxes a crashed
/// agent with the same owner left behind. Never fails: what is unavailable is reported in the result (and
/// logged).
pub async fn prepare(config: &ExecutorConfig, cleanup: bool) -> Prepared {
    if let Some(p) = &config.provider {
        // A provider node: the provider's models as configured (an external API may list thousands, or need
        // a scope to list any), nothing else probed.
        tracing::info!(models = ?p.inference.allowed_models, upstream = %p.inference.base_url, "provider executor ready");
        return Prepared {
            engine: None,
            docker_off: Some("a provider node runs no sandboxes".into()),
            missing: Vec::new(),
            models: p.inference.allowed_models.clone(),
            gpus: Vec::new(),
            runner: JobRunner {
                inference: Some(InferenceExecutor::with_client(p.inference.clone(), p.http.clone())),
                ..JobRunner::default()
            },
            provider: true,
        };
    }
    let gpu = crate::gpu::discover();
    tracing::info!(gpus = gpu.gpus.len(), "{}", gpu.note);
    let mut prepared = Prepared {
        engine: None,
        docker_off: None,
        missing: Vec::new(),
        models: Vec::new(),
        runner: JobRunner { has_gpus: !gpu.gpus.is_empty(), ..JobRunner::default() },
        gpus: gpu.gpus,
        provider: false,
    };
    if let Some(inference) = &config.inference {
        let exec = InferenceExecutor::new(inference.clone());
        match exec.models().await {
            Ok(models) => {
                tracing::info!(models = ?models, upstream = %inference.base_url, "inference executor ready");
                prepared.models = models;
                prepared.runner.inference = Some(exec);
            }
            Err(e) => tracing::warn!(error = %e, "inference executor disabled: the inference server is unreachable"),
        }
    }
    if config.host {
        tracing::warn!(
            "HOST EXECUTOR ENABLED: host jobs run directly on this machine with NO ISOLATION \
             (only PATH in their environment, own process group, time and output limits); development only"
        );
        prepared.runner.host = Some(HostExecutor::new().with_stop_grace(config.stop_grace));
    }
    if !config.docker {
        prepared.docker_off = Some("disabled by --no-docker".into());
        return prepared;
    }
    let engine = match connect_to(config.docker_endpoint.as_deref()).await {
        Ok(engine) => engine,
        Err(e) => {
            tracing::warn!(error = %e, "docker executor disabled: the container engine is unreachable");
            prepared.docker_off = Some(e.to_string());
            return prepared;
        }
    };
    match probe(&engine).await {
        Ok(info) => {
            tracing::info!(engine = %info.product, version = %info.version, api = %info.api_version,
                endpoint = engine.endpoint(), "container engine reachable");
            prepared.engine = Some(info);
        }
        Err(e) => {
            tracing::warn!(error = %e, "docker executor disabled: the container engine does not answer");
            prepared.docker_off = Some(e.to_string());
            return prepared;
        }
    }
    if cleanup {
        if let Err(e) = cleanup_leftovers(&engine, &config.owner).await {
            tracing::warn!(error = %e, owner = config.owner, "could not remove leftover sandboxes");
        }
        // Stopped sandboxes of agents (any owner) that never came back.
        spawn_sweeper(engine.clone());
    }
    for t in &config.templates {
        if image_present(&engine, &t.image).await {
            prepared.runner.templates.insert(t.name.clone(), t.image.clone());
        } else {
            tracing::warn!(
                template = t.name,
                image = t.image,
                "template not offered: its image is missing on the engine (for busybox images: \
                `cynode-node images build --tag IMAGE`)"
            );
            prepared.missing.push(t.clone());
        }
    }
    let images: Vec<String> = prepared.runner.templates.values().cloned().collect();
    prepared.runner.docker =
        Some(DockerExecutor::new(engine, images).with_owner(config.owner.clone()).with_stop_grace(config.stop_grace));
    prepared
}

async fn image_present(engine: &Engine, image: &str) -> bool {
    match engine.docker().inspect_image(image).await {
        Ok(_) => true,
        Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => false,
        Err(e) => {
            tracing::warn!(image, error = %e, "cannot inspect a template image; offering it anyway");
            true
        }
    }
}
