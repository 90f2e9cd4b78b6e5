//! Connection-level limits of the server that fronts ingress.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::ingress_support::IngressApp;

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    // The test server allows 1 s for headers.
    let app = IngressApp::spawn().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    slow.write_all(b"POST /slack/events HTTP/1.1\r\nHost: cynode\r\nContent-Type: appl").await.expect("write");
    let mut buf = Vec::new();
    let started = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server closed the connection");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(4), "{waited:?}");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");

    // A normal client on another connection is served meanwhile.
    let r = app.client.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(r.status(), 200);
}
