//! Host executor: runs a job's command with `sh -c` directly on the node, with **no isolation**. It is
//! for development only and is off unless the operator passes `--enable-host-executor`.
//!
//! What it does guarantee:
//! - the command's environment is empty except `PATH` ([`HOST_PATH`] unless configured): the agent's own
//!   environment (node key, tokens, cloud credentials) never reaches it;
//! - stdin is `/dev/null`; the working directory is a fresh temporary directory, removed afterwards;
//! - the shell leads its own process group, so a timeout, a cancel or an output overflow stops
//!   everything it started: SIGTERM to the whole group, SIGKILL after the grace period (at the output
//!   limit, SIGKILL at once). When the shell exits by itself, whatever it left running in its group is
//!   killed too;
//! - a wall-clock timeout and an output cap, with the same numbered, coalesced chunks and truncation
//!   notice as the Docker executor.
//!
//! A process that leaves its process group (`setsid`) escapes all of this: that is what "no isolation"
//! means.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use bollard::container::LogOutput;
use futures_util::StreamExt as _;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::group::GroupGuard;
use super::docker::{Pump, PumpEnd};
use super::{ExitStatusKind, OutputChunk, RunOutcome};

/// `PATH` given to host jobs unless configured otherwise.
pub const HOST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long output may keep flowing after the shell exited before the stragglers holding the pipes
/// are killed.
const STRAGGLER_DRAIN: Duration = Duration::from_millis(200);
/// Upper bound on reading the rest of the output and the exit status once everything was killed.
const SETTLE: Duration = Duration::from_secs(5);

/// One run of one job on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// The job (for logs).
    pub job_id: Uuid,
    /// Attempt number (for logs).
    pub attempt: i32,
    /// Shell command line, run as `sh -c <command>`.
    pub command: String,
    /// Wall-clock limit from start to exit.
    pub timeout: Duration,
    /// Maximum bytes of stdout + stderr delivered; past it the job is killed.
    pub max_output_bytes: u64,
}

impl HostSpec {
    /// Checks the spec before anything is started.
    ///
    /// # Errors
    /// [`HostError::InvalidSpec`] naming the problem.
    pub fn validate(&self) -> Result<(), HostError> {
        let invalid = |m: &str| Err(HostError::InvalidSpec(m.to_owned()));
        if self.command.trim().is_empty() {
            return invalid("the command is empty");
        }
        if self.command.contains('\0') {
            return invalid("the command contains a NUL byte");
        }
        if self.timeout.is_zero() {
            return invalid("the timeout must be positive");
        }
        if self.max_output_bytes == 0 {
            return invalid("the output limit must be positive");
        }
        Ok(())
    }
}

/// Why a host job could not be run. A job that ran and failed is a [`RunOutcome`], not an error.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The spec is unusable (empty command, zero limits).
    #[error("invalid host job: {0}")]
    InvalidSpec(String),
    /// The shell could not be started.
    #[error("cannot start /bin/sh on this node: {0}")]
    Spawn(String),
}

/// Runs [`HostSpec`]s on this machine. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HostExecutor {
    path: String,
    stop_grace: Duration,
}

impl Default for HostExecutor {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the first phase of a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Natural,
    Timeout,
    Cancelled,
    OutputLimit,
}

impl HostExecutor {
    /// An executor with [`HOST_PATH`] and a 2 s stop grace period.
    pub fn new() -> Self {
        Self { path: HOST_PATH.to_owned(), stop_grace: Duration::from_secs(2) }
    }

    /// Sets the `PATH` jobs get (the only variable in their environment).
    #[must_use]
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets how long a stopped job gets between SIGTERM and SIGKILL.
    #[must_use]
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Runs `spec` to the end, sending its output to `output`, and reports how it ended.
    ///
    /// The wall-clock limit counts from start. On timeout or `cancel` the process group gets SIGTERM
    /// and, after the grace period, SIGKILL; at the output limit it is killed at once. A token
    /// cancelled before the call yields `Cancelled` without starting anything. Dropping the future
    /// kills the process group.
    ///
    /// # Errors
    /// [`HostError::InvalidSpec`] or [`HostError::Spawn`].
    pub async fn run(
        &self,
        spec: HostSpec,
        cancel: CancellationToken,
        output: mpsc::Sender<OutputChunk>,
    ) -> Result<RunOutcome, HostError> {
        spec.validate()?;
        if cancel.is_cancelled() {
            let status = ExitStatusKind::Cancelled;
            return Ok(RunOutcome { status, duration: Duration::ZERO, output_bytes: 0, truncated: false });
        }
        let dir = tempfile::Builder::new()
            .prefix("cynode-host-")
            .tempdir()
            .map_err(|e| HostError::Spawn(format!("cannot create a working directory: {e}")))?;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&spec.command)
            .env_clear()
            .env("PATH", &self.path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| HostError::Spawn(e.to_string()))?;
        let started = Instant::now();
        let mut group = GroupGuard(child.id());
        let stdout = child.stdout.take().map(|o| {
            ReaderStream::new(o).filter_map(|r| async move { r.ok().map(|message| LogOutput::StdOut { message }) })
        });
        let stderr = child.stderr.take().map(|e| {
            ReaderStream::new(e).filter_map(|r| async move { r.ok().map(|message| LogOutput::StdErr { message }) })
        });
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return Err(HostError::Spawn("the output pipes were not set up".into()));
        };
        let mut frames = futures_util::stream::select(stdout.boxed(), stderr.boxed()).map(Ok);
        let mut pump = Pump::new(output, spec.max_output_bytes);
        let deadline = started + spec.timeout;
        let mut wait = std::pin::pin!(child.wait());
        let mut exit: Option<std::io::Result<ExitStatus>> = None;
        let mut eof = false;

        let mut ending = tokio::select! {
            end = pump.pump(&mut frames) => match end {
                PumpEnd::LimitReached => Ending::OutputLimit,
                PumpEnd::Eof | PumpEnd::Broken(_) => { eof = true; Ending::Natural }
            },
            status = &mut wait => { exit = Some(status); Ending::Natural },
            () = tokio::time::sleep_until(deadline) => Ending::Timeout,
            () = cancel.cancelled() => Ending::Cancelled,
        };
        if ending == Ending::Natural && exit.is_none() {
            // The output is closed; the shell may still run (it closed its pipes).
            tokio::select! {
                status = &mut wait => exit = Some(status),
                () = tokio::time::sleep_until(deadline) => ending = Ending::Timeout,
                () = cancel.cancelled() => ending = Ending::Cancelled,
            }
        } else if ending == Ending::Natural && !eof {
            // The shell exited; give buffered output a moment, then stop whatever still holds the pipes.
            match tokio::time::timeout(STRAGGLER_DRAIN, pump.pump(&mut frames)).await {
                Ok(PumpEnd::LimitReached) => ending = Ending::OutputLimit,
                Ok(_) => eof = true,
                Err(_) => {}
            }
        }
        match ending {
            // Whatever the shell left running in its group goes with it; at the limit, everything at once.
            Ending::Natural | Ending::OutputLimit => group.signal("KILL").await,
            Ending::Timeout | Ending::Cancelled => {
                // Keep reading while the group stops, so nothing blocks on a full pipe.
                let stop = async {
                    group.signal("TERM").await;
                    if exit.is_none() {
                        tokio::select! {
                            status = &mut wait => exit = Some(status),
                            () = tokio::time::sleep(self.stop_grace) => {},
                        }
                    }
                    group.signal("KILL").await;
                };
                let drain = tokio::time::timeout(self.stop_grace + SETTLE, pump.pump(&mut frames));
                let ((), drained) = tokio::join!(stop, drain);
                eof = drained.is_ok();
            }
        }
        if !eof {
            let _ = tokio::time::timeout(SETTLE, pump.pump(&mut frames)).await;
        }
        let status = match exit {
            Some(status) => status,
            None => tokio::time::timeout(SETTLE, &mut wait)
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("no exit status after SIGKILL"))),
        };
        group.disarm();
        let duration = started.elapsed();
        let code = match status {
            Ok(s) => s.code().map_or_else(|| 128 + i64::from(s.signal().unwrap_or(0)), i64::from),
            Err(e) => {
                tracing::warn!(job.id = %spec.job_id, error = %e, "could not read the host job's exit status");
                -1
            }
        };
        let status = match ending {
            Ending::Natural => ExitStatusKind::Exited(code),
            Ending::Timeout => ExitStatusKind::Timeout,
            Ending::Cancelled => ExitStatusKind::Cancelled,
            Ending::OutputLimit => ExitStatusKind::OutputLimit,
        };
        tracing::info!(
            job.id = %spec.job_id,
            job.attempt = spec.attempt,
            status = ?status,
            duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            output_bytes = pump.accepted(),
            "host job finished"
        );
        Ok(RunOutcome { status, duration, output_bytes: pump.accepted(), truncated: pump.truncated() })
    }
}

mod group;
#[cfg(test)]
mod tests;
