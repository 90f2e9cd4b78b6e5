//! Running the real binaries as child processes and reading their output.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Path of a workspace binary (`cynode`, `cynode-node`) next to the running test executable, or in
/// `CYNODE_BIN_DIR` when that is set (a benchmark built with the dev profile running release binaries).
///
/// # Panics
/// When the binary has not been built (run the tests through `cargo test --workspace`).
pub fn bin_path(name: &str) -> PathBuf {
    let dir = match std::env::var_os("CYNODE_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("current exe");
            exe.parent()
                .and_then(|d| if d.ends_with("deps") { d.parent() } else { Some(d) })
                .expect("target dir")
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(path.exists(), "{} is not built; run `cargo build --workspace` first", path.display());
    path
}

/// A running binary whose stdout and stderr are collected line by line.
#[derive(Debug)]
pub struct BinProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl BinProcess {
    /// Starts `name` with `args` and exactly the environment `env` (plus PATH and HOME).
    ///
    /// # Panics
    /// When the process cannot be started.
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_program(&bin_path(name), args, env)
    }

    /// Starts the program at `path` (e.g. HAProxy) like [`Self::spawn`].
    ///
    /// # Panics
    /// When the process cannot be started.
    pub fn spawn_program(path: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(path);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn binary");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let verbose = std::env::var("TEST_LOG").is_ok_and(|v| v == "1");
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for reader in [Box::new(out) as Box<dyn tokio::io::AsyncRead + Unpin + Send>, Box::new(err)] {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(reader).lines();
                while let Ok(Some(line)) = r.next_line().await {
                    if verbose {
                        eprintln!("[child] {line}");
                    }
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        Self { child, lines }
    }

    /// Everything printed so far.
    pub fn output(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// Waits until a line containing `needle` appears and returns it.
    ///
    /// # Panics
    /// After `timeout`, or when the process exits first, with everything it printed.
    pub async fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self.output().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!("process exited ({status}) before printing {needle:?}:\n{}", self.output().join("\n"));
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {needle:?}:\n{}",
                self.output().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the process to exit and returns its exit code (None when killed by a signal).
    ///
    /// # Panics
    /// After `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("process did not exit:\n{}", self.output().join("\n")))
            .expect("wait");
        // Let the readers drain.
        tokio::time::sleep(Duration::from_millis(100)).await;
        status.code()
    }

    /// Sends a signal (`TERM`, `KILL`, `INT`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status();
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// A process still running when its test ends is stopped the way an operator stops it: SIGTERM, then up to 10 s
/// to shut down cleanly (a node agent removes its sandboxes and warm pool, a gateway drains), then SIGKILL. Tests
/// that want a crash send `KILL` themselves.
impl Drop for BinProcess {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        self.signal("TERM");
        for _ in 0..100 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.start_kill();
    }
}

/// Runs a binary to completion and returns (exit code, stdout, stderr).
///
/// # Panics
/// When it cannot be run or takes longer than 60 s.
pub async fn run_to_end(name: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin_path(name));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out =
        tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("finished in time").expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
