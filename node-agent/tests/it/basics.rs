//! Ordinary jobs: output, exit codes, streams, chunking, environment.

use cynode_node_agent::executor::docker::{ExitStatusKind, MAX_CHUNK_BYTES, OutputStream};

use crate::support::{Mode, TestExec, both_modes, shell};

both_modes!(
    echo_hi_streams_stdout_and_exits_zero,
    non_zero_exit_codes_are_reported,
    stderr_is_kept_apart_from_stdout,
    chatty_output_is_coalesced_into_few_bounded_chunks,
    job_environment_is_exactly_what_the_spec_allows,
    agent_environment_never_reaches_the_sandbox,
    background_processes_do_not_keep_a_finished_job_alive,
    a_job_killing_itself_is_not_out_of_memory,
);

async fn echo_hi_streams_stdout_and_exits_zero(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let (outcome, out) = t.run(shell("echo hi")).await;
    let outcome = outcome.expect("run");
    assert_eq!(outcome.status, ExitStatusKind::Exited(0));
    assert_eq!(out.stdout(), "hi\n");
    assert_eq!(out.stderr(), "");
    assert_eq!(outcome.output_bytes, 3);
    assert!(!outcome.truncated);
    out.assert_contiguous();
}

async fn non_zero_exit_codes_are_reported(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let (outcome, _) = t.run(shell("exit 3")).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(3));
    let (outcome, out) = t.run(shell("no-such-command")).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(127));
    assert!(out.stderr().contains("not found"), "{}", out.stderr());
    // Exec form without a shell: the failed exec is reported on stderr (cold: by the init process, "No such
    // file or directory"; warm: by the pool's stub shell, whose `exec` says "not found").
    let mut spec = shell("");
    spec.command = vec!["/no/such/binary".into(), "arg".into()];
    let (outcome, out) = t.run(spec).await;
    let outcome = outcome.expect("run");
    assert!(matches!(outcome.status, ExitStatusKind::Exited(c) if c != 0), "{outcome:?}");
    let err = out.stderr().to_lowercase();
    assert!(err.contains("/no/such/binary") && (err.contains("no such file") || err.contains("not found")), "{err}");
}

async fn stderr_is_kept_apart_from_stdout(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let (outcome, out) = t.run(shell("echo out; echo err >&2; echo out2")).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    assert_eq!(out.stdout(), "out\nout2\n");
    assert_eq!(out.stderr(), "err\n");
    assert!(out.chunks.iter().any(|c| c.stream == OutputStream::Stderr));
}

async fn chatty_output_is_coalesced_into_few_bounded_chunks(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let (outcome, out) = t.run(shell("i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done")).await;
    let outcome = outcome.expect("run");
    assert_eq!(outcome.status, ExitStatusKind::Exited(0));
    let stdout = out.stdout();
    assert_eq!(stdout.lines().count(), 20_000);
    assert!(stdout.ends_with("line 19999\n"));
    assert_eq!(outcome.output_bytes, stdout.len() as u64);
    out.assert_contiguous();
    assert!(out.chunks.iter().all(|c| c.data.len() <= MAX_CHUNK_BYTES));
    // 20,000 writes; without coalescing this would be about as many chunks.
    assert!(out.chunks.len() < 500, "{} chunks", out.chunks.len());
}

async fn job_environment_is_exactly_what_the_spec_allows(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let mut spec = shell("env; echo ---; id");
    spec.env.push(("GREETING".into(), "hello world".into()));
    let (outcome, out) = t.run(spec).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    let stdout = out.stdout();
    assert!(stdout.contains("GREETING=hello world\n"), "{stdout}");
    assert!(stdout.contains("HOME=/work\n"), "{stdout}");
    assert!(stdout.contains("uid=65534(sandbox) gid=65534(sandbox)"), "{stdout}");
    let (env, _) = stdout.split_once("---\n").expect("separator");
    for line in env.lines() {
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            ["GREETING", "HOME", "PATH", "HOSTNAME", "PWD", "SHLVL"].contains(&name),
            "unexpected variable {name} in the sandbox"
        );
    }
}

/// The agent's own environment must never reach a sandbox. The test re-runs itself with a
/// secret-looking variable set (setting one in-process would need `unsafe`), and the child
/// checks the sandbox cannot see it.
async fn agent_environment_never_reaches_the_sandbox(mode: Mode) {
    const VAR: &str = "CYNODE_TEST_SECRET";
    const VALUE: &str = "s3cr3t-d0-n0t-l3ak-7f3a";
    let t = TestExec::with_mode(mode).await; // the image is ready before the child starts
    if std::env::var(VAR).ok().as_deref() != Some(VALUE) {
        let exe = std::env::current_exe().expect("test binary path");
        let name = format!(
            "basics::agent_environment_never_reaches_the_sandbox::{}",
            if mode == Mode::Cold { "cold" } else { "warm" }
        );
        let child = std::process::Command::new(exe)
            .args([name.as_str(), "--exact", "--test-threads=1"])
            .env(VAR, VALUE)
            .env("DOCKER_SECRET_TOKEN", VALUE)
            .output()
            .expect("re-run the test binary");
        assert!(
            child.status.success(),
            "the child run failed ({}):\n{}\n{}",
            child.status,
            String::from_utf8_lossy(&child.stdout),
            String::from_utf8_lossy(&child.stderr)
        );
        let report = String::from_utf8_lossy(&child.stdout);
        assert!(report.contains("1 passed"), "the child ran no test: {report}");
        return;
    }
    let (outcome, out) = t.run(shell("env; cat /proc/1/environ; echo")).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    let all = format!("{}{}", out.stdout(), out.stderr());
    assert!(all.contains("PATH="), "env printed nothing: {all}");
    assert!(!all.contains(VALUE), "the agent's secret leaked into the sandbox");
    assert!(!all.contains(VAR) && !all.contains("DOCKER_SECRET_TOKEN"));
}

/// A job that leaves a process behind holding its output ends when its own process does: the sandbox
/// (cold, or warm — there the job replaced the stub as main process) stops with its main process.
async fn background_processes_do_not_keep_a_finished_job_alive(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let started = std::time::Instant::now();
    let (outcome, out) = t.run(shell("sleep 60 & echo hi")).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    assert_eq!(out.stdout(), "hi\n");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "took {:?}", started.elapsed());
}

/// Exit 137 alone is not an OOM kill: only the kernel's OOM killer makes one.
async fn a_job_killing_itself_is_not_out_of_memory(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let (outcome, out) = t.run(shell("echo bye; kill -9 $$")).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(137));
    assert_eq!(out.stdout(), "bye\n");
}
