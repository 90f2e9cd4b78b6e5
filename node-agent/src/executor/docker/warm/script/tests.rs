//! The stub and the job line, run through the host's `/bin/sh` (a POSIX shell other than the image's
//! busybox `ash`, which the integration tests use).

use std::io::Write;
use std::process::{Command, Stdio};

use super::*;
use crate::executor::docker::spec::{SandboxSpec, WORK_DIR};

const HOSTILE: &[&str] = &[
    "it's",
    "'",
    "''\\'",
    "a\nb",
    "\n",
    "trailing\n",
    "$(touch /tmp/cynode-pwned)",
    "`touch /tmp/cynode-pwned`",
    "${HOME}$PATH$1$@$*",
    "\"double\" \\\" quotes",
    "; exit 3 #",
    "&& false || true",
    "tab\tand\r\nreturn",
    "-n",
    "",
    "ünïcødé ☃",
];

/// Runs the stub under `env -i /bin/sh -c`, feeding it `input`; returns its exit code and stdout.
fn run_stub(input: &[u8]) -> (Option<i32>, Vec<u8>) {
    let mut child = Command::new("env")
        .args(["-i", "/bin/sh", "-c", STUB_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run /bin/sh");
    child.stdin.take().expect("stdin").write_all(input).expect("write the line");
    let out = child.wait_with_output().expect("wait");
    (out.status.code(), out.stdout)
}

fn spec(command: Vec<String>) -> SandboxSpec {
    let mut spec = SandboxSpec::new(uuid::Uuid::nil(), 1, "img", command);
    spec.workdir = Some("/".to_owned());
    spec
}

#[test]
fn the_line_is_one_line_whatever_the_values() {
    let mut s = spec(HOSTILE.iter().map(|&a| a.to_owned()).collect());
    s.command.insert(0, "x".to_owned());
    s.env = HOSTILE.iter().enumerate().map(|(i, &v)| (format!("V{i}"), v.to_owned())).collect();
    let line = job_script(&s);
    assert_eq!(line.matches('\n').count(), 1);
    assert!(line.ends_with('\n'));
}

#[test]
fn hostile_arguments_reach_the_command_verbatim() {
    let mut argv: Vec<String> =
        ["/bin/sh", "-c", "for a; do printf '<%s>' \"$a\"; done", "argv0"].iter().map(|&a| a.to_owned()).collect();
    argv.extend(HOSTILE.iter().map(|&a| a.to_owned()));
    let (code, out) = run_stub(job_script(&spec(argv)).as_bytes());
    assert_eq!(code, Some(0));
    let expected: String = HOSTILE.iter().map(|a| format!("<{a}>")).collect();
    assert_eq!(out[0], READY_MARKER);
    assert_eq!(String::from_utf8_lossy(&out[1..]), expected);
    assert!(!std::path::Path::new("/tmp/cynode-pwned").exists(), "a value was executed");
}

#[test]
fn the_environment_is_exactly_the_allowlist_with_hostile_values() {
    // `env -0` (coreutils) separates entries with NUL, so values with newlines stay whole.
    let mut s = spec(vec!["env".to_owned(), "-0".to_owned()]);
    s.env = HOSTILE.iter().enumerate().map(|(i, &v)| (format!("V{i}"), v.to_owned())).collect();
    // Names the stub itself uses must not matter.
    s.env.push(("s".to_owned(), "not the script".to_owned()));
    s.env.push(("IFS".to_owned(), "x".to_owned()));
    let (code, out) = run_stub(job_script(&s).as_bytes());
    assert_eq!(code, Some(0));
    assert_eq!(out[0], READY_MARKER);
    let env = String::from_utf8_lossy(&out[1..]).into_owned();
    let mut printed: Vec<&str> = env.split_terminator('\0').collect();
    printed.sort_unstable();
    let mut expected = sandbox_env(&s);
    expected.sort();
    assert_eq!(printed, expected);
}

#[test]
fn the_job_runs_in_its_working_directory_with_stdin_at_eof() {
    let mut s = spec(vec!["/bin/sh".to_owned(), "-c".to_owned(), "pwd; cat; echo \"rest:$?\"".to_owned()]);
    s.workdir = Some("/tmp".to_owned());
    let (code, out) = run_stub(job_script(&s).as_bytes());
    assert_eq!(code, Some(0));
    assert_eq!(String::from_utf8_lossy(&out[1..]), "/tmp\nrest:0\n");
}

#[test]
fn a_cut_line_runs_nothing() {
    let line = job_script(&spec(vec!["/bin/sh".to_owned(), "-c".to_owned(), "echo ran".to_owned()]));
    let (code, out) = run_stub(line.trim_end().as_bytes());
    assert_eq!((code, out), (Some(125), Vec::new()));
    let (code, out) = run_stub(b"");
    assert_eq!((code, out), (Some(125), Vec::new()));
}

#[test]
fn only_jobs_the_stub_runs_exactly_like_a_cold_sandbox_run_in_it() {
    let job = |command: &[&str], workdir: Option<&str>| {
        let mut s = SandboxSpec::new(uuid::Uuid::nil(), 1, "img", command.iter().map(|&a| a.to_owned()).collect());
        s.workdir = workdir.map(str::to_owned);
        runs_in_stub(&s)
    };
    assert!(job(&["sh"], None));
    assert!(job(&["sh"], Some(WORK_DIR)));
    // `exec` would take these for its options.
    assert!(!job(&["-a", "x"], None));
    assert!(!job(&[], None));
    // The engine creates a missing working directory of a new container; the stub cannot.
    assert!(!job(&["sh"], Some("/work/sub")));
    assert!(!job(&["sh"], Some("/tmp")));
}

/// The watchdog is only ever composed into what runs inside a sandbox (it kills every process its user may
/// signal), so it is checked here as text and run for real by the integration tests, in containers.
#[test]
fn cold_sandboxes_run_the_watchdog_then_the_same_line_as_the_stub() {
    let deadline = std::time::Duration::from_millis(12_500);
    let dog = watchdog(deadline);
    assert!(dog.contains("sleep 13;") && dog.matches("kill -9 -1").count() == 2, "{dog}");
    assert!(dog.contains("& ); exec 9<&-; "), "detached (its parent subshell exits at once), fd 9 closed: {dog}");
    assert!(dog.contains("<&9 >/dev/null 2>&1"), "reads the container's stdin, silent, no hold on output: {dog}");
    let s = spec(vec!["echo".to_owned(), "a\nb".to_owned()]);
    let command = supervised_command(&s, deadline).expect("supervised");
    assert_eq!(command[..2], ["sh", "-c"]);
    assert_eq!(command[2], format!("set -- '\n'; {dog}{}", job_script(&s)));
    assert!(job_script(&s).ends_with(" </dev/null\n"), "the job reads /dev/null, not the lifeline");
    let dashed = spec(vec!["-weird".to_owned()]);
    assert_eq!(supervised_command(&dashed, deadline), None, "exec would take it for an option");
}
