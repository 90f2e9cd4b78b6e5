//! Running a job in a warm pool container: the job's command is started with `exec` (its environment,
//! the sandbox user, the per-job workspace as working directory, no stdin, no TTY), its output streamed
//! like a cold sandbox's, and its exit status read from the exec. Shortly after the process has started,
//! the container is renamed after the job (`cynode-JOB-ATTEMPT-…`, like a cold sandbox) and the pool starts
//! creating its replacement — not before, so neither competes with the job's start.
//!
//! The engine's OOM flag is only set when a container's main process dies, not when an exec'd process is
//! OOM-killed, so an exit by SIGKILL (137) is checked against the container's memory cgroup: its
//! `oom_kill` counter (cgroup v2 `memory.events`, v1 `memory.oom_control`) is read from inside the
//! sandbox with shell builtins. A fresh pool container starts at 0, so any kill counted there happened
//! during this job.

use bollard::errors::Error as BollardError;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::RenameContainerOptions;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{SANDBOX_USER, sandbox_env};
use super::error::ExecError;
use super::remove::Pending;
use super::run::{SETTLE, Started, sandbox_name};
use super::spec::{SandboxSpec, WORK_DIR};
use super::{DockerExecutor, ExitStatusKind};

/// Prints the memory cgroup's `oom_kill` counter (v2, then v1), using shell builtins only.
const OOM_PROBE: &str = "for f in /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; do \
     [ -r \"$f\" ] && while read -r k v; do [ \"$k\" = oom_kill ] && echo \"$v\"; done < \"$f\"; done";

/// How long after a job process was started in a warm container the pool's refill and the container's
/// renaming begin (unless the job ended earlier).
const AFTER_START: std::time::Duration = std::time::Duration::from_millis(200);

/// Why a job could not be started in a warm container.
pub(super) enum WarmError {
    /// The container is stopped or gone (the engine restarted, someone removed it): run the job cold.
    Unusable(String),
    /// The engine failed otherwise; a cold start would fail the same way.
    Exec(ExecError),
}

impl DockerExecutor {
    /// Starts `spec`'s command in the warm container `id`.
    pub(super) async fn start_warm(&self, spec: &SandboxSpec, id: &str) -> Result<Started, WarmError> {
        let docker = self.engine.docker();
        let config = ExecConfig {
            attach_stdin: Some(false),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            env: Some(sandbox_env(spec)),
            cmd: Some(spec.command.clone()),
            privileged: Some(false),
            user: Some(SANDBOX_USER.to_owned()),
            working_dir: Some(spec.workdir.clone().unwrap_or_else(|| WORK_DIR.to_owned())),
            ..Default::default()
        };
        let exec = docker
            .create_exec(id, config)
            .await
            .map_err(|e| self.warm_err("create the job process in a warm sandbox", e))?
            .id;
        let options = StartExecOptions { detach: false, tty: false, output_capacity: None };
        match docker.start_exec(&exec, Some(options)).await {
            Ok(StartExecResults::Attached { output, .. }) => {
                // Off the start's critical path: the engine starts the process after answering, and
                // creating the replacement or renaming would compete with that.
                let (engine, id, name) = (self.engine.clone(), id.to_owned(), sandbox_name(spec));
                let refiller = self.pool.as_ref().map(|p| p.refiller());
                let call_off = CancellationToken::new();
                let called_off = call_off.clone();
                let task = tokio::spawn(async move {
                    let ended_early = tokio::select! {
                        () = tokio::time::sleep(AFTER_START) => false,
                        () = called_off.cancelled() => true,
                    };
                    if let Some(refiller) = refiller {
                        refiller.refill_soon();
                    }
                    if ended_early {
                        return;
                    }
                    if let Err(e) = engine.docker().rename_container(&id, RenameContainerOptions { name }).await {
                        tracing::debug!(container.id = id, error = %e, "could not name the warm sandbox after its job");
                    }
                });
                Ok(Started { frames: output, exec: Some(exec), pending: Some(Pending { call_off, task }) })
            }
            Ok(StartExecResults::Detached) => Err(WarmError::Exec(ExecError::Engine {
                action: "start the job process in a warm sandbox",
                detail: "the engine did not attach to its output".to_owned(),
            })),
            Err(e) => Err(self.warm_err("start the job process in a warm sandbox", e)),
        }
    }

    fn warm_err(&self, action: &'static str, e: BollardError) -> WarmError {
        match e {
            BollardError::DockerResponseServerError { status_code: status @ (404 | 409), message } => {
                WarmError::Unusable(format!("{message} (HTTP {status})"))
            }
            other => WarmError::Exec(self.engine.err(action, other)),
        }
    }

    /// How the job process `exec` in container `id` ended, once its output has ended.
    pub(super) async fn exec_status(&self, id: &str, exec: &str) -> Result<ExitStatusKind, ExecError> {
        let code = self.exec_exit_code(exec).await?;
        if code == 137 && self.oom_killed_in(id).await {
            return Ok(ExitStatusKind::OutOfMemory);
        }
        Ok(ExitStatusKind::Exited(code))
    }

    async fn exec_exit_code(&self, exec: &str) -> Result<i64, ExecError> {
        let deadline = Instant::now() + self.stop_grace + SETTLE;
        loop {
            let state = self
                .engine
                .docker()
                .inspect_exec(exec)
                .await
                .map_err(|e| self.engine.err("inspect the finished job process", e))?;
            if state.running == Some(false)
                && let Some(code) = state.exit_code
            {
                return Ok(code);
            }
            if Instant::now() >= deadline {
                return Err(ExecError::Engine {
                    action: "wait for the job process to exit",
                    detail: "no exit status within the expected time".to_owned(),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Whether the kernel OOM-killed a process of container `id`: its cgroup counter, read from inside;
    /// when that is impossible (the container stopped), the engine's flag.
    async fn oom_killed_in(&self, id: &str) -> bool {
        match self.read_oom_kills(id).await {
            Some(kills) => kills > 0,
            None => self
                .engine
                .docker()
                .inspect_container(id, None)
                .await
                .ok()
                .and_then(|c| c.state)
                .and_then(|s| s.oom_killed)
                .unwrap_or(false),
        }
    }

    async fn read_oom_kills(&self, id: &str) -> Option<u64> {
        let docker = self.engine.docker();
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(false),
            cmd: Some(vec!["sh".to_owned(), "-c".to_owned(), OOM_PROBE.to_owned()]),
            user: Some(SANDBOX_USER.to_owned()),
            env: Some(Vec::new()),
            ..Default::default()
        };
        let exec = docker.create_exec(id, config).await.ok()?.id;
        let StartExecResults::Attached { mut output, .. } = docker.start_exec(&exec, None).await.ok()? else {
            return None;
        };
        let mut text = Vec::new();
        let read = async {
            while let Some(Ok(frame)) = output.next().await {
                text.extend_from_slice(&frame.into_bytes());
                if text.len() > 4096 {
                    break;
                }
            }
        };
        tokio::time::timeout(SETTLE, read).await.ok()?;
        String::from_utf8_lossy(&text).lines().find_map(|l| l.trim().parse().ok())
    }
}
