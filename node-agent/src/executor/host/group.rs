//! The process group of a host job, and stopping it with the `kill` command (no `unsafe` needed).

use std::process::Stdio;

use tokio::process::Command;

/// The job's process group; killed when dropped unless disarmed, so a dropped run leaves nothing.
pub(super) struct GroupGuard(pub(super) Option<u32>);

impl GroupGuard {
    /// Sends `signal` (`TERM`, `KILL`) to every process of the group. A group that is already gone is
    /// not an error.
    pub(super) async fn signal(&self, signal: &str) {
        let Some(pgid) = self.0 else { return };
        let status = Command::new("kill")
            .args([format!("-{signal}"), "--".to_owned(), format!("-{pgid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if let Err(e) = status {
            tracing::warn!(error = %e, "cannot run `kill` to stop a host job's process group");
        }
    }

    pub(super) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = std::process::Command::new("kill")
                .args(["-KILL".to_owned(), "--".to_owned(), format!("-{pgid}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
