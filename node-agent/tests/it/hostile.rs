//! Hostile jobs: each must be contained, reported clearly, and leave the node healthy.

use std::time::{Duration, Instant};

use cynode_node_agent::executor::docker::{ExitStatusKind, OutputStream, TRUNCATION_MARKER};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::{Mode, TestExec, assert_no_containers, both_modes, shell};

both_modes!(
    fork_bomb_is_contained_by_the_process_limit,
    memory_hog_is_reported_as_out_of_memory,
    cpu_spin_is_stopped_at_the_timeout,
    a_gigabyte_of_output_is_cut_at_the_limit_with_bounded_memory,
    root_is_read_only_but_tmp_and_work_are_writable,
    network_is_absent_when_not_allowed,
    no_privileges_to_gain,
);

async fn fork_bomb_is_contained_by_the_process_limit(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let mut spec = shell(
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
         bomb() { bomb | bomb & }; bomb; sleep 4; echo survived",
    );
    spec.limits.pids = 64;
    spec.limits.timeout = Duration::from_secs(20);
    let host_procs_before = host_process_count();
    let started = Instant::now();
    let (outcome, out) = t.run(spec).await;
    let outcome = outcome.expect("run");
    assert!(matches!(outcome.status, ExitStatusKind::Exited(_) | ExitStatusKind::Timeout), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(out.stdout().starts_with("64\n"), "pids limit not applied: {}", out.stdout());
    assert!(
        out.stderr().contains("can't fork") || out.stderr().contains("Resource temporarily"),
        "the bomb never hit the limit: {}",
        out.stderr()
    );
    // The host is fine: it can still spawn processes and run the next sandbox normally.
    assert!(host_process_count() < host_procs_before + 100);
    std::process::Command::new("true").status().expect("host can fork");
    let (outcome, out) = t.run(shell("echo still fine")).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    assert_eq!(out.stdout(), "still fine\n");
}

fn host_process_count() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
                .count()
        })
        .unwrap_or(0)
}

async fn memory_hog_is_reported_as_out_of_memory(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    // dd allocates and fills a 256 MiB buffer against a 32 MiB limit.
    let mut spec = shell("echo allocating; dd if=/dev/zero of=/dev/null bs=256M count=1");
    spec.limits.memory_bytes = 32 * 1024 * 1024;
    let (outcome, out) = t.run(spec).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::OutOfMemory);
    assert_eq!(out.stdout(), "allocating\n");
}

async fn cpu_spin_is_stopped_at_the_timeout(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let mut spec = shell("echo spinning; while :; do :; done");
    spec.limits.timeout = Duration::from_secs(2);
    let started = Instant::now();
    let (outcome, out) = t.run(spec).await;
    let elapsed = started.elapsed();
    let outcome = outcome.expect("run");
    assert_eq!(outcome.status, ExitStatusKind::Timeout);
    assert_eq!(out.stdout(), "spinning\n");
    // timeout (2 s) + grace (1 s) + engine overhead
    assert!(outcome.duration >= Duration::from_secs(2), "{:?}", outcome.duration);
    assert!(elapsed < Duration::from_secs(6), "took {elapsed:?}");
}

async fn a_gigabyte_of_output_is_cut_at_the_limit_with_bounded_memory(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    const LIMIT: u64 = 96 * 1024 * 1024;
    let mut spec = shell("yes cynode-output-flood | head -c 1073741824; echo unreachable >&2");
    spec.limits.max_output_bytes = LIMIT;
    spec.limits.timeout = Duration::from_secs(120);
    let job = spec.job_id;
    let exec = t.executor_for(&spec).await;
    let (tx, mut rx) = mpsc::channel(16);
    let run = exec.run(spec, CancellationToken::new(), tx);
    let count = async {
        // Count, never store: the process must not hold the output either.
        let (mut bytes, mut last, mut next_seq) = (0u64, None, 0u64);
        while let Some(chunk) = rx.recv().await {
            assert_eq!(chunk.seq, next_seq);
            next_seq += 1;
            bytes += chunk.data.len() as u64;
            last = Some(chunk);
        }
        (bytes, last)
    };
    let (outcome, (bytes, last)) = tokio::join!(run, count);
    assert_no_containers(t.engine(), job).await;
    t.finish(&exec).await;
    let outcome = outcome.expect("run");
    assert_eq!(outcome.status, ExitStatusKind::OutputLimit);
    assert!(outcome.truncated);
    assert_eq!(outcome.output_bytes, LIMIT);
    let marker = last.expect("some output");
    assert_eq!(marker.stream, OutputStream::Stderr);
    let text = String::from_utf8_lossy(&marker.data).into_owned();
    assert!(text.contains(TRUNCATION_MARKER), "{text}");
    assert_eq!(bytes, LIMIT + marker.data.len() as u64);
    let peak = peak_rss_bytes();
    assert!(peak < LIMIT, "peak RSS {peak} bytes: output was buffered, not streamed");
}

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn root_is_read_only_but_tmp_and_work_are_writable(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let (outcome, out) = t
        .run(shell(
            "touch /evil 2>&1; echo x > /bin/evil 2>&1; \
             echo a > /tmp/a && echo b > /work/b && cat /tmp/a /work/b && pwd",
        ))
        .await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    let stdout = out.stdout();
    assert!(stdout.contains("Read-only file system"), "{stdout}");
    assert!(stdout.ends_with("a\nb\n/work\n"), "{stdout}");
}

async fn network_is_absent_when_not_allowed(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let (outcome, out) = t
        .run(shell(
            "cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '; \
             wget -q -T 3 -O- http://1.1.1.1/ && echo REACHED; \
             nc -w 3 1.1.1.1 80 </dev/null && echo REACHED; \
             nslookup example.com 1.1.1.1 >/dev/null 2>&1 && echo REACHED; echo done",
        ))
        .await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    let stdout = out.stdout();
    assert_eq!(stdout, "lo\ndone\n", "interfaces or reachability: {stdout}");
    assert!(out.stderr().contains("unreachable"), "{}", out.stderr());
}

async fn no_privileges_to_gain(mode: Mode) {
    let t = TestExec::with_mode(mode).await;
    let (outcome, out) = t.run(shell("grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status")).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    let stdout = out.stdout();
    assert!(stdout.contains("CapEff:\t0000000000000000"), "{stdout}");
    assert!(stdout.contains("CapBnd:\t0000000000000000"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");
}

#[tokio::test]
async fn network_is_there_only_when_allowed() {
    let t = TestExec::new().await;
    let mut spec = shell("cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ' | sort");
    spec.network = true;
    let (outcome, out) = t.run(spec).await;
    assert_eq!(outcome.expect("run").status, ExitStatusKind::Exited(0));
    assert_eq!(out.stdout(), "eth0\nlo\n");
}
