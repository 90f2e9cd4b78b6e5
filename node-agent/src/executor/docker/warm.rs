//! Running a job in a warm pool container. The container's main process is a stub shell waiting on its
//! stdin (see [`script`]), attached to when the pool created it. Taking it for a job writes one line to that
//! stdin — the sandbox's watchdog, the job's working directory, its allowlisted environment and its command —
//! and keeps it open until the run ends (the watchdog kills the job when it closes: the agent is gone); the
//! stub answers with [`READY_MARKER`] on stdout and `exec`s the job, which from then on *is* the container's
//! main process: its output, exit code, OOM flag, stop (SIGTERM, then SIGKILL) and timeout are those of a
//! cold sandbox, read the same way. The marker is stripped from the output; a container whose stream ends
//! (or that never answers) before it is unusable, and the job runs cold instead — nothing of it ran there.
//!
//! Shortly after the job has started, the container is renamed after it (`cynode-JOB-ATTEMPT-…`, like a cold
//! sandbox) and the pool starts creating its replacement — not before, so neither competes with the job's
//! start.

mod script;

use std::pin::Pin;

use bollard::container::LogOutput;
use bollard::query_parameters::RenameContainerOptions;
use futures_util::{FutureExt, StreamExt, stream};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use script::{READY_MARKER, STUB_SCRIPT, runs_in_stub, supervised_command};

use super::DockerExecutor;
use super::remove::Pending;
use super::run::{Frames, SETTLE, Started, sandbox_name};
use super::spec::SandboxSpec;

/// How long after a job was started in a warm container the pool's refill and the container's renaming
/// begin (unless the job ended earlier).
const AFTER_START: std::time::Duration = std::time::Duration::from_millis(200);

/// An idle warm container: its id and the attach connection made before it started (stdin, stdout, stderr).
pub(crate) struct Idle {
    /// Container id.
    pub(crate) id: String,
    /// Its stdout and stderr (nothing arrives while it is idle).
    pub(crate) output: Frames,
    /// Its stdin, where the job goes.
    pub(crate) input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Why a warm container cannot take the job (it stopped, its connection broke, it does not answer): the job
/// runs cold instead. Nothing of the job ran in it.
#[derive(Debug)]
pub(super) struct Unusable(pub(super) String);

impl DockerExecutor {
    /// Hands `spec` to the warm container `idle` and waits until the job has started in it.
    pub(super) async fn start_warm(&self, spec: &SandboxSpec, idle: Idle) -> Result<Started, Unusable> {
        let Idle { id, mut output, mut input } = idle;
        // Its output ended (the container stopped, the engine dropped the connection) or, unexpectedly, it
        // printed something while idle.
        if let Some(frame) = output.next().now_or_never() {
            let why = match frame {
                None => "its output stream has ended".to_owned(),
                Some(Err(e)) => format!("its output stream broke: {e}"),
                Some(Ok(_)) => "it printed output while idle".to_owned(),
            };
            return Err(Unusable(why));
        }
        // The watchdog first (it reads the rest of stdin, which stays open: the lifeline), then the job.
        let line = format!("{}{}", script::watchdog(self.watchdog_deadline(spec)), script::job_script(spec));
        let sent = async {
            input.write_all(line.as_bytes()).await?;
            input.flush().await
        };
        sent.await.map_err(|e| Unusable(format!("cannot write to its stdin: {e}")))?;
        let frames = wait_ready(output, Instant::now() + SETTLE).await?;

        // Off the start's critical path: creating the replacement or renaming would compete with the job.
        let (engine, name) = (self.engine.clone(), sandbox_name(spec));
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
        Ok(Started { frames, lifeline: Some(input), warm: true, pending: Some(Pending { call_off, task }) })
    }
}

/// Reads `output` up to the stub's [`READY_MARKER`] (the first stdout byte) and returns the job's output:
/// what came on stderr meanwhile, then everything after the marker.
async fn wait_ready(mut output: Frames, deadline: Instant) -> Result<Frames, Unusable> {
    let mut before = Vec::new();
    loop {
        let frame = tokio::time::timeout_at(deadline, output.next())
            .await
            .map_err(|_| Unusable("it did not take the job in time".to_owned()))?;
        match frame {
            None => return Err(Unusable("it ended before taking the job".to_owned())),
            Some(Err(e)) => return Err(Unusable(format!("its output stream broke: {e}"))),
            Some(Ok(LogOutput::StdOut { message })) if !message.is_empty() => {
                if message[0] != READY_MARKER {
                    return Err(Unusable("it answered with something other than the ready marker".to_owned()));
                }
                let rest = message.slice(1..);
                if !rest.is_empty() {
                    before.push(Ok(LogOutput::StdOut { message: rest }));
                }
                return Ok(Box::pin(stream::iter(before).chain(output)));
            }
            Some(Ok(LogOutput::StdOut { .. })) => {}
            Some(Ok(other)) => before.push(Ok(other)),
        }
    }
}
