//! Routes a leased job to its executor, converting the protocol's spec into the executor's, and turns
//! whatever happens into an [`Outcome`]. This is the one place that decides which job kinds this node
//! can run.

use std::collections::BTreeMap;
use std::time::Duration;

use cynode_protocol::{self as proto, JobSpec, Lease, Outcome};
use tokio::sync::mpsc;

use super::held::JobControl;
use super::outcome::{self, JobLimits};
use crate::executor::OutputChunk;
use crate::executor::docker::{self, DockerExecutor, GpuRequest, shell_command};
use crate::executor::host::{HostExecutor, HostSpec};
use crate::executor::inference::{InferenceError, InferenceExecutor};

const MIB: u64 = 1024 * 1024;

/// The executors this node offers.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobRunner {
    /// Sandboxes, when the engine was reachable at start and Docker is enabled.
    pub docker: Option<DockerExecutor>,
    /// Host commands, when explicitly enabled.
    pub host: Option<HostExecutor>,
    /// Prompts, when an inference server is configured and reachable.
    pub inference: Option<InferenceExecutor>,
    /// Offered templates: name → image (only templates whose image is present).
    pub templates: BTreeMap<String, String>,
    /// Whether the node has GPUs to hand to sandboxes (none are detected yet).
    pub has_gpus: bool,
}

impl JobRunner {
    /// Starts the Docker executor's warm pool: `size` idle containers per template, created with the
    /// protocol's default limits (the pool follows the limits jobs actually ask for).
    pub(crate) fn start_warm_pool(&mut self, size: usize) {
        if let Some(docker) = self.docker.take() {
            let limits = sandbox_limits(&proto::SandboxLimits::default()).unwrap_or_default();
            self.docker = Some(docker.with_warm_pool(&docker::PoolConfig { size, limits }));
        }
    }

    /// Stops the warm pool and removes its idle containers.
    pub(crate) async fn shutdown_warm_pool(&self) {
        if let Some(docker) = &self.docker {
            docker.shutdown_pool().await;
        }
    }

    /// Runs the job of `lease` to its end; never fails: problems become rejected or error outcomes.
    pub(crate) async fn run(&self, lease: &Lease, control: &JobControl, output: mpsc::Sender<OutputChunk>) -> Outcome {
        match &lease.spec {
            JobSpec::Sandbox(spec) => self.sandbox(lease, spec, control, output).await,
            JobSpec::Host(spec) => self.host(lease, spec, control, output).await,
            JobSpec::Inference(spec) => self.inference(spec, control, output).await,
            JobSpec::Embed(spec) => self.embed(spec, control).await,
        }
    }

    async fn sandbox(
        &self,
        lease: &Lease,
        spec: &proto::SandboxSpec,
        control: &JobControl,
        output: mpsc::Sender<OutputChunk>,
    ) -> Outcome {
        let Some(exec) = &self.docker else {
            return outcome::rejected("the docker executor is not available on this node");
        };
        let sandbox = match sandbox_spec(lease, spec, &self.templates, self.has_gpus) {
            Ok(s) => s,
            Err(message) => return outcome::rejected(message),
        };
        let limits = JobLimits {
            timeout_s: spec.limits.timeout_s,
            memory_mb: Some(spec.limits.memory_mb),
            max_output_bytes: spec.limits.max_output_bytes,
        };
        match exec.run(sandbox, control.stop_token(), output).await {
            Ok(run) => outcome::completed(&run, &limits, control.reason()),
            Err(e) => outcome::from_exec_error(&e),
        }
    }

    async fn inference(
        &self,
        spec: &proto::InferenceSpec,
        control: &JobControl,
        output: mpsc::Sender<OutputChunk>,
    ) -> Outcome {
        let Some(exec) = &self.inference else {
            return outcome::rejected("no inference server is configured on this node (--inference-url)");
        };
        match exec.run(spec, control.stop_token(), output).await {
            Ok(run) => outcome::from_inference(&run, spec.timeout_s, control.reason()),
            Err(e @ InferenceError::ModelNotAllowed(..)) => outcome::rejected(e.to_string()),
            Err(e) => outcome::error(e.to_string()),
        }
    }

    async fn embed(&self, spec: &proto::EmbedSpec, control: &JobControl) -> Outcome {
        let Some(exec) = &self.inference else {
            return outcome::rejected("no inference server is configured on this node (--inference-url)");
        };
        if let Err(message) = spec.validate() {
            return outcome::rejected(message);
        }
        match exec.embed(spec, control.stop_token()).await {
            Ok(run) => outcome::from_embed(run, spec.timeout_s, control.reason()),
            Err(e @ InferenceError::ModelNotAllowed(..)) => outcome::rejected(e.to_string()),
            Err(e @ InferenceError::BadAnswer(_)) => outcome::failed(e.to_string()),
            Err(e) => outcome::error(e.to_string()),
        }
    }

    async fn host(
        &self,
        lease: &Lease,
        spec: &proto::HostSpec,
        control: &JobControl,
        output: mpsc::Sender<OutputChunk>,
    ) -> Outcome {
        let Some(exec) = &self.host else {
            return outcome::rejected("the host executor is not enabled on this node (--enable-host-executor)");
        };
        let host = HostSpec {
            job_id: lease.job_id,
            attempt: lease.attempt,
            command: spec.command.clone(),
            timeout: Duration::from_secs(spec.timeout_s),
            max_output_bytes: spec.max_output_bytes,
        };
        let limits = JobLimits { timeout_s: spec.timeout_s, memory_mb: None, max_output_bytes: spec.max_output_bytes };
        match exec.run(host, control.stop_token(), output).await {
            Ok(run) => outcome::completed(&run, &limits, control.reason()),
            Err(e) => outcome::from_host_error(&e),
        }
    }
}

/// Converts a protocol sandbox spec into the executor's, resolving the template to this node's image.
///
/// # Errors
/// A message for the user when the template is not offered here, the image does not match it, a GPU is
/// asked for on a node without one, or a limit cannot be represented.
pub(crate) fn sandbox_spec(
    lease: &Lease,
    spec: &proto::SandboxSpec,
    templates: &BTreeMap<String, String>,
    has_gpus: bool,
) -> Result<docker::SandboxSpec, String> {
    let Some(image) = templates.get(&spec.template) else {
        let offered: Vec<&str> = templates.keys().map(String::as_str).collect();
        return Err(format!(
            "template `{}` is not offered by this node (it offers: {})",
            spec.template,
            offered.join(", ")
        ));
    };
    if !spec.image.is_empty() && spec.image != *image {
        return Err(format!(
            "template `{}` runs image `{image}` on this node, but the job asks for `{}`; make the template's \
             image the same in the bootstrap file and on the node (--template {}={image})",
            spec.template, spec.image, spec.template
        ));
    }
    if spec.gpu && !has_gpus {
        return Err("the job asks for a GPU and this node has none".into());
    }
    let mut out = docker::SandboxSpec::new(lease.job_id, lease.attempt, image.clone(), shell_command(&spec.command));
    out.env.clone_from(&spec.env);
    out.network = spec.network;
    out.gpus = spec.gpu.then_some(GpuRequest::All);
    out.limits = sandbox_limits(&spec.limits)?;
    Ok(out)
}

/// Converts the protocol's limits into the executor's.
///
/// # Errors
/// A message for the user when a limit cannot be represented.
pub(crate) fn sandbox_limits(l: &proto::SandboxLimits) -> Result<docker::SandboxLimits, String> {
    let memory_bytes = l
        .memory_mb
        .checked_mul(MIB)
        .and_then(|b| i64::try_from(b).ok())
        .ok_or_else(|| format!("memory limit of {} MiB is too large", l.memory_mb))?;
    if !l.cpus.is_finite() || l.cpus <= 0.0 || l.cpus > 1024.0 {
        return Err(format!("CPU limit {} must be a positive number of cores", l.cpus));
    }
    let pids = i64::try_from(l.pids).map_err(|_| format!("process limit {} is too large", l.pids))?;
    Ok(docker::SandboxLimits {
        memory_bytes,
        nano_cpus: (l.cpus * 1e9).round() as i64,
        pids,
        timeout: Duration::from_secs(l.timeout_s),
        max_output_bytes: l.max_output_bytes,
        ..docker::SandboxLimits::default()
    })
}

#[cfg(test)]
mod tests;
