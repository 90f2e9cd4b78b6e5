//! Turning how an executor run ended into the protocol's [`Outcome`].

use cynode_protocol::{FinishStatus, Outcome};

use super::held::StopReason;
use crate::executor::docker::ExecError;
use crate::executor::host::HostError;
use crate::executor::{ExitStatusKind, RunOutcome};

/// The limits a job ran under, for the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JobLimits {
    /// Wall-clock limit in seconds.
    pub timeout_s: u64,
    /// Memory limit in MiB (sandboxes only).
    pub memory_mb: Option<u64>,
    /// Output cap in bytes.
    pub max_output_bytes: u64,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The outcome of a run that reached an end (by itself, or stopped by a limit or a cancel).
pub(crate) fn completed(run: &RunOutcome, limits: &JobLimits, reason: Option<StopReason>) -> Outcome {
    use FinishStatus as S;
    let (status, exit_code, message) = match run.status {
        ExitStatusKind::Exited(0) => (S::Succeeded, Some(0), None),
        ExitStatusKind::Exited(n) => (S::Failed, Some(n), Some(format!("exited with code {n}"))),
        ExitStatusKind::Timeout => {
            (S::TimedOut, None, Some(format!("stopped at its time limit of {} s", limits.timeout_s)))
        }
        ExitStatusKind::OutOfMemory => (
            S::OutOfMemory,
            None,
            Some(limits.memory_mb.map_or_else(
                || "killed: out of memory".to_owned(),
                |m| format!("killed: it used more than its memory limit of {m} MiB"),
            )),
        ),
        ExitStatusKind::OutputLimit => (
            S::OutputLimit,
            None,
            Some(format!(
                "stopped: its output passed the limit of {} bytes; the rest was cut",
                limits.max_output_bytes
            )),
        ),
        ExitStatusKind::Cancelled => (
            S::Cancelled,
            None,
            Some(match reason {
                Some(StopReason::Shutdown) => "cancelled: the node agent was stopped while the job ran".to_owned(),
                Some(StopReason::CancelRequested) | None => "cancelled on request".to_owned(),
            }),
        ),
    };
    Outcome {
        exit_code,
        output_bytes: run.output_bytes,
        truncated: run.truncated || status == S::OutputLimit,
        message,
        ..Outcome::new(status, ms(run.duration))
    }
}

/// Refused before running (not allowed, not present, invalid, not supported here).
pub(crate) fn rejected(message: impl Into<String>) -> Outcome {
    not_run(FinishStatus::Rejected, message.into())
}

/// It ran and failed (an unusable answer).
pub(crate) fn failed(message: impl Into<String>) -> Outcome {
    not_run(FinishStatus::Failed, message.into())
}

/// The node could not run the job (engine down, cannot spawn).
pub(crate) fn error(message: impl Into<String>) -> Outcome {
    not_run(FinishStatus::Error, message.into())
}

fn not_run(status: FinishStatus, message: String) -> Outcome {
    Outcome { message: Some(message), ..Outcome::new(status, 0) }
}

/// A Docker executor failure.
pub(crate) fn from_exec_error(e: &ExecError) -> Outcome {
    match e {
        ExecError::ImageNotAllowed(_) | ExecError::ImageMissing(_) | ExecError::InvalidSpec(_) => {
            rejected(e.to_string())
        }
        ExecError::EngineUnavailable { .. } | ExecError::Engine { .. } => error(e.to_string()),
    }
}

/// A host executor failure.
pub(crate) fn from_host_error(e: &HostError) -> Outcome {
    match e {
        HostError::InvalidSpec(_) => rejected(e.to_string()),
        HostError::Spawn(_) => error(e.to_string()),
    }
}

/// The outcome of an inference run.
pub(crate) fn from_inference(
    run: &crate::executor::inference::InferenceOutcome,
    timeout_s: u64,
    reason: Option<StopReason>,
) -> Outcome {
    use crate::executor::inference::InferenceEnd;
    let (status, message) = match run.end {
        InferenceEnd::Completed => (FinishStatus::Succeeded, None),
        InferenceEnd::Timeout => (FinishStatus::TimedOut, Some(format!("stopped at its time limit of {timeout_s} s"))),
        InferenceEnd::Cancelled => (
            FinishStatus::Cancelled,
            Some(match reason {
                Some(StopReason::Shutdown) => "cancelled: the node agent was stopped while the job ran".to_owned(),
                Some(StopReason::CancelRequested) | None => "cancelled on request".to_owned(),
            }),
        ),
    };
    Outcome {
        output_bytes: run.output_bytes,
        message,
        usage: run.usage,
        tool_calls: run.tool_calls.clone(),
        ..Outcome::new(status, ms(run.duration))
    }
}

/// The outcome of an embed job: its vectors when it completed.
pub(crate) fn from_embed(
    run: crate::executor::inference::EmbedOutcome,
    timeout_s: u64,
    reason: Option<StopReason>,
) -> Outcome {
    let as_inference = crate::executor::inference::InferenceOutcome {
        end: run.end,
        duration: run.duration,
        output_bytes: 0,
        usage: run.usage,
        model: String::new(),
        tool_calls: Vec::new(),
    };
    Outcome { embeddings: run.vectors, ..from_inference(&as_inference, timeout_s, reason) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: JobLimits = JobLimits { timeout_s: 30, memory_mb: Some(256), max_output_bytes: 1000 };

    fn run(status: ExitStatusKind) -> RunOutcome {
        RunOutcome { status, duration: Duration::from_millis(1500), output_bytes: 42, truncated: false }
    }

    #[test]
    fn every_run_ending_maps_to_a_status() {
        let o = completed(&run(ExitStatusKind::Exited(0)), &LIMITS, None);
        assert_eq!(
            (o.status, o.exit_code, o.duration_ms, o.output_bytes),
            (FinishStatus::Succeeded, Some(0), 1500, 42)
        );
        assert!(o.message.is_none());
        let o = completed(&run(ExitStatusKind::Exited(3)), &LIMITS, None);
        assert_eq!((o.status, o.exit_code), (FinishStatus::Failed, Some(3)));
        let o = completed(&run(ExitStatusKind::Timeout), &LIMITS, None);
        assert_eq!(o.status, FinishStatus::TimedOut);
        assert!(o.message.as_deref().is_some_and(|m| m.contains("30 s")));
        let o = completed(&run(ExitStatusKind::OutOfMemory), &LIMITS, None);
        assert!(o.status == FinishStatus::OutOfMemory && o.message.as_deref().is_some_and(|m| m.contains("256 MiB")));
        let o = completed(&run(ExitStatusKind::OutputLimit), &LIMITS, None);
        assert!(o.status == FinishStatus::OutputLimit && o.truncated);
        let o = completed(&run(ExitStatusKind::Cancelled), &LIMITS, Some(StopReason::Shutdown));
        assert!(o.status == FinishStatus::Cancelled && o.message.as_deref().is_some_and(|m| m.contains("stopped")));
        let o = completed(&run(ExitStatusKind::Cancelled), &LIMITS, Some(StopReason::CancelRequested));
        assert_eq!(o.message.as_deref(), Some("cancelled on request"));
    }

    #[test]
    fn executor_failures_are_rejections_or_errors() {
        let o = from_exec_error(&ExecError::ImageNotAllowed("evil:latest".into()));
        assert!(o.status == FinishStatus::Rejected && o.message.as_deref().is_some_and(|m| m.contains("evil:latest")));
        assert_eq!(from_exec_error(&ExecError::ImageMissing("x".into())).status, FinishStatus::Rejected);
        assert_eq!(from_exec_error(&ExecError::InvalidSpec("x".into())).status, FinishStatus::Rejected);
        let down = ExecError::EngineUnavailable { endpoint: "unix:///x".into(), detail: "gone".into() };
        assert_eq!(from_exec_error(&down).status, FinishStatus::Error);
        assert_eq!(from_host_error(&HostError::InvalidSpec("x".into())).status, FinishStatus::Rejected);
        assert_eq!(from_host_error(&HostError::Spawn("x".into())).status, FinishStatus::Error);
    }
}
