//! A unix-socket proxy in front of the real engine socket that a test can cut (every connection dropped,
//! nothing listening: what clients see while the engine restarts) and restore, without touching the
//! daemon other people use.

use std::path::PathBuf;
use std::sync::Mutex;

use tokio::net::{UnixListener, UnixStream};
use tokio::task::{JoinHandle, JoinSet};

/// The real engine socket behind the proxy.
const UPSTREAM: &str = "/var/run/docker.sock";

pub struct EngineProxy {
    _dir: tempfile::TempDir,
    path: PathBuf,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl EngineProxy {
    /// A listening proxy on a fresh socket path.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("engine.sock");
        let proxy = Self { _dir: dir, path, accept: Mutex::new(None) };
        proxy.restore();
        proxy
    }

    /// `unix://…` endpoint of the proxy.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Drops every proxied connection and stops listening (the socket file stays: connecting is refused).
    pub fn cut(&self) {
        if let Some(task) = self.accept.lock().expect("lock").take() {
            // The accept task owns the listener and every connection task; aborting it drops them all.
            task.abort();
        }
    }

    /// Listens again.
    pub fn restore(&self) {
        self.cut();
        let _ = std::fs::remove_file(&self.path);
        let listener = UnixListener::bind(&self.path).expect("bind the proxy socket");
        *self.accept.lock().expect("lock") = Some(tokio::spawn(accept_loop(listener)));
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn accept_loop(listener: UnixListener) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut client, _)) = accepted else { continue };
                connections.spawn(async move {
                    if let Ok(mut upstream) = UnixStream::connect(UPSTREAM).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
