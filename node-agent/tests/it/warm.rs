//! How a job runs in a warm pool container: it replaces the pool's stub shell as the container's main
//! process, with its stdin closed and exactly the environment and arguments a cold sandbox would give it.
//! (Every test in `basics`, `hostile`, `lifecycle` and `engine_failure` also runs warm, among them OOM,
//! timeout, cancel and output-limit; these are about what only the warm path could get wrong.)

use std::time::{Duration, Instant};

use cynode_node_agent::executor::docker::{ExitStatusKind, OutputStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::{Mode, TestExec, assert_no_containers, collect, shell};

/// Values that would break naive quoting of the line the stub reads.
const HOSTILE: &[&str] = &[
    "it's",
    "'",
    "a\nb",
    "trailing\n",
    "$(echo pwned)",
    "`echo pwned`",
    "${HOME}$PATH$1$@",
    "\"double\" \\\" quotes",
    "; exit 3 #",
    "tab\tand\r\nreturn",
    "-n",
    "",
];

#[tokio::test]
async fn a_warm_job_is_the_main_process_with_stdin_closed() {
    let t = TestExec::with_mode(Mode::Warm).await;
    // `cat` would block for the whole timeout if stdin were open; PPID 1 is the engine's init, so the job
    // replaced the stub instead of running under it.
    let mut spec = shell("echo first; cat; echo \"stdin:$? ppid:$PPID\"; exit 7");
    spec.limits.timeout = Duration::from_secs(20);
    let job = spec.job_id;
    let exec = t.executor_for(&spec).await;
    let (tx, rx) = mpsc::channel(8);
    let started = Instant::now();
    let (outcome, out) = tokio::join!(exec.run(spec, CancellationToken::new(), tx), collect(rx));
    let outcome = outcome.expect("run");
    assert_eq!(outcome.status, ExitStatusKind::Exited(7));
    assert!(started.elapsed() < Duration::from_secs(10), "stdin was not at EOF: took {:?}", started.elapsed());
    let first = &out.chunks[0];
    // The ready marker is stripped: the job's output starts the first chunk (which may hold more of it, as
    // `cat` ends at once).
    assert_eq!((first.stream, first.seq), (OutputStream::Stdout, 0));
    assert!(first.data.starts_with(b"first\n"), "{:?}", first.data);
    assert_eq!(out.stdout(), "first\nstdin:0 ppid:1\n");
    assert_eq!(out.stderr(), "");
    out.assert_contiguous();
    assert_no_containers(t.engine(), job).await;
    t.finish(&exec).await;
}

#[tokio::test]
async fn warm_and_cold_jobs_get_the_same_environment_and_arguments() {
    let mut results = Vec::new();
    for mode in [Mode::Cold, Mode::Warm] {
        let t = TestExec::with_mode(mode).await;
        // Exec form: `env` itself is the job, so nothing a shell exports gets in the way.
        let mut spec = shell("");
        spec.command = vec!["env".into()];
        spec.env = HOSTILE.iter().enumerate().map(|(i, &v)| (format!("V{i}"), v.to_owned())).collect();
        let (outcome, env) = t.run(spec).await;
        assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
        let mut spec = shell("");
        spec.command = ["sh", "-c", "pwd; for a; do printf '<%s>' \"$a\"; done", "argv0"]
            .iter()
            .map(|&a| a.to_owned())
            .chain(HOSTILE.iter().map(|&a| a.to_owned()))
            .collect();
        let (outcome, args) = t.run(spec).await;
        assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
        results.push((env.stdout(), args.stdout(), format!("{}{}", env.stderr(), args.stderr())));
    }
    let (env, args, errors) = &results[1];
    assert_eq!(errors, "", "warm stderr");
    let expected_args: String = HOSTILE.iter().map(|a| format!("<{a}>")).collect();
    assert_eq!(args, &format!("/work\n{expected_args}"));
    assert!(!env.lines().any(|l| l.ends_with("=pwned")), "a value was executed: {env}");
    for (i, value) in HOSTILE.iter().enumerate() {
        assert!(env.contains(&format!("V{i}={value}\n")), "V{i} missing or altered in {env:?}");
    }
    // Identical to the cold sandbox (both are named `sandbox`); only the order `env` lists them in may differ.
    let lines = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(lines(&results[0].0), lines(env), "cold and warm environments differ");
    assert_eq!((&results[0].1, &results[0].2), (args, errors), "cold and warm arguments differ");
}
