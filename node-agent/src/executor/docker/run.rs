//! The life of one sandbox: create (or take a warm one), attach, start, stream, stop, collect, remove.

use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, KillContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::container_body;
use super::error::{ExecError, is_not_found};
use super::output::{OutputChunk, Pump, PumpEnd};
use super::remove::{Pending, RemoveGuard};
use super::warm::{Unusable, supervised_command};
use super::{DockerExecutor, ExitStatusKind, RunOutcome, SandboxSpec};

/// Extra time, beyond the stop grace period, allowed for the output stream and the exit status
/// to arrive after the sandbox was told to stop.
pub(super) const SETTLE: Duration = Duration::from_secs(10);

/// Why streaming ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Exited,
    Timeout,
    Cancelled,
    OutputLimit,
}

impl Ending {
    /// The status of a run stopped by the executor (for `Exited`, the exit code decides instead).
    fn status(self) -> ExitStatusKind {
        match self {
            Self::Timeout => ExitStatusKind::Timeout,
            Self::Cancelled => ExitStatusKind::Cancelled,
            Self::OutputLimit => ExitStatusKind::OutputLimit,
            Self::Exited => ExitStatusKind::Exited(0),
        }
    }
}

/// The output frames of a started sandbox process.
pub(super) type Frames = Pin<Box<dyn Stream<Item = Result<LogOutput, BollardError>> + Send>>;

/// The executor's end of a sandbox's stdin: while it is held, the sandbox's watchdog lets the job run; when it
/// is dropped — or the agent process dies and the engine closes the attach — the job is killed.
pub(super) type Lifeline = Pin<Box<dyn AsyncWrite + Send>>;

/// Margin, beyond the time limit and the stop grace period, before a sandbox's own watchdog kills it: the
/// agent's timer (SIGTERM, SIGKILL after the grace period) normally ends the job first.
pub const WATCHDOG_MARGIN: Duration = Duration::from_secs(5);

/// A sandbox whose job process has started.
pub(super) struct Started {
    /// Its stdout and stderr.
    pub(super) frames: Frames,
    /// Its stdin, held until the run ends (`None`: a sandbox without a watchdog).
    pub(super) lifeline: Option<Lifeline>,
    /// Whether the job runs in a warm pool container (either way it is the container's main process).
    pub(super) warm: bool,
    /// Work on the container to settle before removing it.
    pub(super) pending: Option<Pending>,
}

/// The container name of a job's sandbox: `cynode-JOB-ATTEMPT-RANDOM`.
pub(super) fn sandbox_name(spec: &SandboxSpec) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("cynode-{}-{}-{}", spec.job_id, spec.attempt, &suffix[..8])
}

impl DockerExecutor {
    /// Runs `spec` to the end and reports how it ended.
    ///
    /// With a warm pool ([`DockerExecutor::with_warm_pool`]) and a job of the pool's shape, the job runs in
    /// an already started container of the pool (see [`super::pool`]); otherwise the container is created,
    /// attached to *before* it starts (no output is lost), and started. Either way its output is sent to
    /// `output` as [`OutputChunk`]s (a full channel slows the sandbox down rather than growing memory; a
    /// dropped receiver makes the output be discarded). The wall-clock limit counts from start. On timeout
    /// or `cancel` the sandbox gets SIGTERM and, after the stop grace period, SIGKILL; at the output limit
    /// it is killed at once. The container is always removed, also when this future is dropped, and
    /// removal is retried in the background while the engine is unreachable. A token cancelled before the
    /// call yields `Cancelled` without creating anything.
    ///
    /// # Errors
    /// [`ExecError::ImageNotAllowed`] (checked before the engine is contacted),
    /// [`ExecError::InvalidSpec`], [`ExecError::ImageMissing`],
    /// [`ExecError::EngineUnavailable`] or [`ExecError::Engine`].
    pub async fn run(
        &self,
        spec: SandboxSpec,
        cancel: CancellationToken,
        output: mpsc::Sender<OutputChunk>,
    ) -> Result<RunOutcome, ExecError> {
        if !self.is_allowed(&spec.image) {
            return Err(ExecError::ImageNotAllowed(spec.image));
        }
        spec.validate()?;
        if cancel.is_cancelled() {
            return Ok(RunOutcome {
                status: ExitStatusKind::Cancelled,
                duration: Duration::ZERO,
                output_bytes: 0,
                truncated: false,
            });
        }
        let result = match self.start(&spec).await {
            Ok((mut guard, mut started)) => {
                let warm = started.warm;
                guard.after(started.pending.take());
                let result = self.drive(&spec, &guard.id, started, cancel, output).await;
                guard.remove_now().await;
                if let Some(pool) = self.pool.as_ref().filter(|_| warm) {
                    pool.refill_soon();
                }
                result
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(o) => tracing::info!(
                job.id = %spec.job_id,
                job.attempt = spec.attempt,
                status = ?o.status,
                duration_ms = o.duration.as_millis() as u64,
                output_bytes = o.output_bytes,
                "sandbox finished"
            ),
            Err(e) => tracing::warn!(
                job.id = %spec.job_id, job.attempt = spec.attempt, error = %e, "sandbox failed"
            ),
        }
        result
    }

    /// Starts the job: in a warm container when the pool has one for it (falling back to a cold start
    /// when that container turns out unusable), else in a new one. A container whose start failed is
    /// removed before returning the error.
    async fn start(&self, spec: &SandboxSpec) -> Result<(RemoveGuard, Started), ExecError> {
        if let Some(pool) = &self.pool
            && let Some(idle) = pool.take(spec)
        {
            let mut guard = RemoveGuard::new(self.engine.clone(), idle.id.clone());
            match self.start_warm(spec, idle).await {
                Ok(started) => return Ok((guard, started)),
                Err(Unusable(why)) => {
                    tracing::warn!(job.id = %spec.job_id, container.id = guard.id, reason = why,
                        "warm sandbox unusable; discarding it and running the job cold");
                    pool.discarded();
                    guard.remove_now().await;
                }
            }
        }
        let mut body = container_body(spec, &self.owner);
        let supervised = match supervised_command(spec, self.watchdog_deadline(spec)) {
            Some(command) => {
                body.cmd = Some(command);
                true
            }
            None => {
                // Runs as given, without a watchdog: its stdin is closed from the start.
                (body.open_stdin, body.stdin_once, body.attach_stdin) = (Some(false), Some(false), Some(false));
                false
            }
        };
        let created = self
            .engine
            .docker()
            .create_container(
                Some(CreateContainerOptions { name: Some(sandbox_name(spec)), ..Default::default() }),
                body,
            )
            .await
            .map_err(|e| {
                if is_not_found(&e) {
                    ExecError::ImageMissing(spec.image.clone())
                } else {
                    self.engine.err("create the sandbox container", e)
                }
            })?;
        let mut guard = RemoveGuard::new(self.engine.clone(), created.id);
        match self.start_cold(&guard.id, supervised).await {
            Ok(started) => Ok((guard, started)),
            Err(e) => {
                guard.remove_now().await;
                Err(e)
            }
        }
    }

    /// Attaches to the created container `id` (also to its stdin when it is `supervised`: the watchdog's
    /// lifeline), then starts it.
    async fn start_cold(&self, id: &str, supervised: bool) -> Result<Started, ExecError> {
        let docker = self.engine.docker();
        let options = AttachContainerOptions {
            stream: true,
            stdin: supervised,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let attach = docker
            .attach_container(id, Some(options))
            .await
            .map_err(|e| self.engine.err("attach to the sandbox output", e))?;
        docker.start_container(id, None).await.map_err(|e| self.engine.err("start the sandbox", e))?;
        let lifeline = supervised.then_some(attach.input);
        Ok(Started { frames: attach.output, lifeline, warm: false, pending: None })
    }

    /// When a sandbox's watchdog kills it by itself: the time limit, the stop grace period and
    /// [`WATCHDOG_MARGIN`] after the job started.
    pub(super) fn watchdog_deadline(&self, spec: &SandboxSpec) -> Duration {
        spec.limits.timeout + self.stop_grace + WATCHDOG_MARGIN
    }

    async fn drive(
        &self,
        spec: &SandboxSpec,
        id: &str,
        started: Started,
        cancel: CancellationToken,
        output: mpsc::Sender<OutputChunk>,
    ) -> Result<RunOutcome, ExecError> {
        let Started { mut frames, lifeline, .. } = started;
        let started = Instant::now();
        let mut pump = Pump::new(output, spec.limits.max_output_bytes);
        let ending = tokio::select! {
            end = pump.pump(&mut frames) => match end {
                PumpEnd::Eof => Ending::Exited,
                PumpEnd::LimitReached => Ending::OutputLimit,
                PumpEnd::Broken(e) => return Err(self.engine.err("stream the sandbox output", e)),
            },
            () = tokio::time::sleep_until(started + spec.limits.timeout) => Ending::Timeout,
            () = cancel.cancelled() => Ending::Cancelled,
        };

        if ending != Ending::Exited {
            // Keep reading while the sandbox stops, so it is never blocked on a full pipe.
            let drain = tokio::time::timeout(self.stop_grace + SETTLE, pump.pump(&mut frames));
            let (stopped, _) = tokio::join!(self.stop(id, ending), drain);
            stopped?;
        }
        let status = self.container_status(id, ending).await;
        // The sandbox has stopped (or the engine failed us): its watchdog may go now.
        drop(lifeline);
        let status = status?;
        let duration = started.elapsed();
        Ok(RunOutcome { status, duration, output_bytes: pump.accepted(), truncated: pump.truncated() })
    }

    /// How a sandbox ended: waits for the container to stop, then reads its exit code and OOM flag.
    async fn container_status(&self, id: &str, ending: Ending) -> Result<ExitStatusKind, ExecError> {
        let docker = self.engine.docker();
        let code = self.wait_exit(id).await?;
        let state = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.engine.err("inspect the finished sandbox", e))?
            .state;
        let mut oom_killed = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
        // The engine learns of an OOM kill from an asynchronous event: a SIGKILLed exit (137) may be reported
        // before the flag is set. Look again briefly before calling it a plain exit.
        let mut looks = 0;
        while ending == Ending::Exited && code == 137 && !oom_killed && looks < 10 {
            looks += 1;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            oom_killed = docker
                .inspect_container(id, None)
                .await
                .ok()
                .and_then(|c| c.state)
                .and_then(|s| s.oom_killed)
                .unwrap_or(false);
        }
        Ok(match ending {
            Ending::Exited if oom_killed => ExitStatusKind::OutOfMemory,
            Ending::Exited => ExitStatusKind::Exited(code),
            other => other.status(),
        })
    }

    /// SIGKILL at the output limit; otherwise SIGTERM, then SIGKILL after the grace period.
    async fn stop(&self, id: &str, ending: Ending) -> Result<(), ExecError> {
        let docker = self.engine.docker();
        let result = if ending == Ending::OutputLimit {
            let kill = KillContainerOptions { signal: "SIGKILL".to_owned() };
            docker.kill_container(id, Some(kill)).await
        } else {
            let grace = self.stop_grace.as_secs() + u64::from(self.stop_grace.subsec_nanos() > 0);
            let stop = StopContainerOptions { t: Some(i32::try_from(grace).unwrap_or(i32::MAX)), signal: None };
            docker.stop_container(id, Some(stop)).await
        };
        match result {
            Ok(()) => Ok(()),
            // 409: it already exited on its own meanwhile.
            Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(self.engine.err("stop the sandbox", e)),
        }
    }

    /// Waits until the container is stopped and returns its exit code.
    async fn wait_exit(&self, id: &str) -> Result<i64, ExecError> {
        let wait = async {
            let mut stream = self.engine.docker().wait_container(id, None::<WaitContainerOptions>);
            match stream.next().await {
                Some(Ok(r)) => Ok(r.status_code),
                // bollard reports a non-zero exit as an error.
                Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
                Some(Err(e)) => Err(self.engine.err("wait for the sandbox to exit", e)),
                None => Err(ExecError::Engine {
                    action: "wait for the sandbox to exit",
                    detail: "the engine closed the wait without an exit status".to_owned(),
                }),
            }
        };
        // The output stream has ended, so the container is stopping; this bound only guards
        // against an engine that never answers.
        tokio::time::timeout(self.stop_grace + SETTLE, wait).await.map_err(|_| ExecError::Engine {
            action: "wait for the sandbox to exit",
            detail: "no exit status within the expected time".to_owned(),
        })?
    }
}
