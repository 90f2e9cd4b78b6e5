//! Host executor tests: real `sh` processes on this machine.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{HostError, HostExecutor, HostSpec};
use crate::executor::{ExitStatusKind, OutputChunk, OutputStream, RunOutcome, TRUNCATION_MARKER};

fn spec(command: &str) -> HostSpec {
    HostSpec {
        job_id: Uuid::new_v4(),
        attempt: 1,
        command: command.to_owned(),
        timeout: Duration::from_secs(10),
        max_output_bytes: 1024 * 1024,
    }
}

struct Ran {
    outcome: Result<RunOutcome, HostError>,
    chunks: Vec<OutputChunk>,
}

impl Ran {
    fn text(&self, stream: OutputStream) -> String {
        let bytes: Vec<u8> =
            self.chunks.iter().filter(|c| c.stream == stream).flat_map(|c| c.data.iter().copied()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn outcome(&self) -> &RunOutcome {
        self.outcome.as_ref().unwrap_or_else(|e| panic!("run failed: {e}"))
    }
}

async fn run_with(exec: &HostExecutor, spec: HostSpec, cancel: CancellationToken) -> Ran {
    let (tx, mut rx) = mpsc::channel(8);
    let collect = async {
        let mut chunks = Vec::new();
        while let Some(c) = rx.recv().await {
            chunks.push(c);
        }
        chunks
    };
    let (outcome, chunks) = tokio::join!(exec.run(spec, cancel, tx), collect);
    Ran { outcome, chunks }
}

async fn run(spec: HostSpec) -> Ran {
    run_with(&HostExecutor::new(), spec, CancellationToken::new()).await
}

/// Waits until `pid` no longer exists (killed and reaped), for at most 3 s.
async fn assert_gone(pid: u32) {
    for _ in 0..60 {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        // Gone, or a zombie waiting for its (new) parent: either way it no longer runs.
        if state.as_deref().is_none_or(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z'))) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("process {pid} survived the end of its job");
}

fn pid_from(text: &str) -> u32 {
    text.lines().find_map(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("no pid in {text:?}"))
}

#[tokio::test]
async fn output_streams_and_exit_code_are_reported() {
    let ran = run(spec("echo out; echo err >&2; echo more; exit 3")).await;
    let o = ran.outcome();
    assert_eq!(o.status, ExitStatusKind::Exited(3));
    assert_eq!(ran.text(OutputStream::Stdout), "out\nmore\n");
    assert_eq!(ran.text(OutputStream::Stderr), "err\n");
    assert_eq!(o.output_bytes, 13);
    assert!(!o.truncated);
    let seqs: Vec<u64> = ran.chunks.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (0..ran.chunks.len() as u64).collect::<Vec<_>>(), "one sequence across both streams");
}

#[tokio::test]
async fn the_environment_is_empty_except_path_and_stdin_is_closed() {
    let ran = run(spec("env; cat; pwd")).await;
    assert_eq!(ran.outcome().status, ExitStatusKind::Exited(0));
    let out = ran.text(OutputStream::Stdout);
    let names: Vec<&str> = out.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    assert!(names.contains(&"PATH"), "{out}");
    // The shell itself may set PWD (and OLDPWD, SHLVL); nothing of the agent's environment arrives.
    for name in names {
        assert!(["PATH", "PWD", "OLDPWD", "SHLVL", "_"].contains(&name), "unexpected variable {name} in {out}");
    }
    let cwd = out.lines().last().unwrap_or_default();
    assert!(cwd.contains("cynode-host-"), "works in a fresh temporary directory, got {cwd}");
    assert!(!std::path::Path::new(cwd).exists(), "the working directory is removed afterwards");
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let mut s = spec("sleep 30 & echo $!; sleep 30");
    s.timeout = Duration::from_millis(500);
    let exec = HostExecutor::new().with_stop_grace(Duration::from_millis(500));
    let ran = run_with(&exec, s, CancellationToken::new()).await;
    let o = ran.outcome();
    assert_eq!(o.status, ExitStatusKind::Timeout);
    assert!(o.duration < Duration::from_secs(4), "{:?}", o.duration);
    assert_gone(pid_from(&ran.text(OutputStream::Stdout))).await;
}

#[tokio::test]
async fn cancel_escalates_to_sigkill_when_sigterm_is_ignored() {
    let exec = HostExecutor::new().with_stop_grace(Duration::from_millis(300));
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        stopper.cancel();
    });
    let ran = run_with(&exec, spec("trap '' TERM; echo $$; sleep 30; echo survived"), cancel).await;
    let o = ran.outcome();
    assert_eq!(o.status, ExitStatusKind::Cancelled);
    assert!(o.duration < Duration::from_secs(3), "{:?}", o.duration);
    let out = ran.text(OutputStream::Stdout);
    assert!(!out.contains("survived"), "{out}");
    assert_gone(pid_from(&out)).await;
}

#[tokio::test]
async fn a_cancelled_token_starts_nothing() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let ran = run_with(&HostExecutor::new(), spec("echo should-not-run"), cancel).await;
    assert_eq!(ran.outcome().status, ExitStatusKind::Cancelled);
    assert!(ran.chunks.is_empty());
}

#[tokio::test]
async fn output_over_the_limit_is_cut_and_the_job_killed() {
    let mut s = spec("yes cynode");
    s.max_output_bytes = 10_000;
    let ran = run(s).await;
    let o = ran.outcome();
    assert_eq!(o.status, ExitStatusKind::OutputLimit);
    assert!(o.truncated);
    assert_eq!(o.output_bytes, 10_000);
    assert_eq!(ran.text(OutputStream::Stdout).len(), 10_000);
    assert!(ran.text(OutputStream::Stderr).contains(TRUNCATION_MARKER));
}

#[tokio::test]
async fn background_stragglers_do_not_hold_the_job_open() {
    let ran = run(spec("sleep 30 & echo $!; echo bye")).await;
    let o = ran.outcome();
    assert_eq!(o.status, ExitStatusKind::Exited(0));
    assert!(o.duration < Duration::from_secs(3), "{:?}", o.duration);
    assert_gone(pid_from(&ran.text(OutputStream::Stdout))).await;
}

#[tokio::test]
async fn a_signal_death_reports_128_plus_the_signal() {
    let ran = run(spec("kill -KILL $$")).await;
    assert_eq!(ran.outcome().status, ExitStatusKind::Exited(128 + 9));
}

#[tokio::test]
async fn invalid_specs_are_refused_before_anything_runs() {
    for (s, what) in [
        (spec("   "), "empty"),
        (HostSpec { timeout: Duration::ZERO, ..spec("true") }, "timeout"),
        (HostSpec { max_output_bytes: 0, ..spec("true") }, "output limit"),
        (spec("echo \0"), "NUL"),
    ] {
        let ran = run(s).await;
        assert!(matches!(&ran.outcome, Err(HostError::InvalidSpec(m)) if m.contains(what)), "{what}");
    }
}
