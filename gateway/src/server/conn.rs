//! Accepting connections: hyper-util's connection builder (HTTP/1 and HTTP/2), which, unlike `axum::serve`,
//! can bound how long a client may take to send its request headers, with graceful shutdown.

use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    /// How long a client may take to send a request's headers (HTTP/1) before the connection is closed,
    /// including the wait for the next request on a kept-alive connection.
    pub header_read_timeout: Duration,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self { header_read_timeout: Duration::from_secs(10) }
    }
}

/// Serves until `shutdown` resolves, then finishes in-flight requests, with the default [`ServeSettings`].
///
/// # Errors
/// When the server fails (not on shutdown).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ServeSettings::default(), shutdown).await
}

/// Serves until `shutdown` resolves: stops accepting, lets every connection finish its in-flight request, and
/// returns when all are closed.
///
/// # Errors
/// When the server fails (not on shutdown).
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(settings.header_read_timeout);
    let (stop_tx, stop_rx) = watch::channel(());
    let (open_tx, open_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Per-connection failures (reset before accept) and resource exhaustion (EMFILE): keep
                    // serving; pause briefly so a full descriptor table does not spin the loop.
                    tracing::debug!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small responses must not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, "connection closed with an error");
                        }
                        break;
                    }
                    changed = stop.changed(), if !stopping => {
                        let _ = changed;
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(stop_tx);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}
