//! A local webhook receiver for tests: records every request (path, headers, raw body), answers 204 — or, on demand,
//! hangs (never answers), like a stuck receiver.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

/// One request received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Hit {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    pub fn webhook_id(&self) -> String {
        self.headers["webhook-id"].to_str().expect("ascii").to_string()
    }

    pub fn event_type(&self) -> String {
        self.json()["type"].as_str().expect("type").to_string()
    }

    /// Verifies the signature with the independent `standardwebhooks` crate.
    pub fn verifies_with(&self, secret: &str) -> bool {
        standardwebhooks::Webhook::new(secret).expect("secret").verify(self.body.as_bytes(), &self.headers).is_ok()
    }
}

#[derive(Default)]
struct Inner {
    hits: Mutex<Vec<Hit>>,
    hang: AtomicBool,
}

/// A running receiver; `url(name)` is `http://127.0.0.1:PORT/hook/{name}`.
#[derive(Clone)]
pub struct Receiver {
    base: String,
    inner: Arc<Inner>,
}

async fn hook(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    inner.hits.lock().expect("lock").push(Hit { path: name, headers, body });
    if inner.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    StatusCode::NO_CONTENT
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new().route("/hook/{name}", axum::routing::post(hook)).with_state(inner.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", l.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(l, app).await });
        Self { base, inner }
    }

    pub fn url(&self, name: &str) -> String {
        format!("{}/hook/{name}", self.base)
    }

    /// Never answer from now on (until `hang(false)`).
    pub fn hang(&self, on: bool) {
        self.inner.hang.store(on, Ordering::SeqCst);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().expect("lock").clone()
    }

    /// Waits (generously) until `done` holds for the hits so far and returns them.
    pub async fn wait(&self, what: &str, done: impl Fn(&[Hit]) -> bool) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let hits = self.hits();
            if done(&hits) {
                return hits;
            }
            let summary: Vec<String> = hits.iter().map(|h| format!("{} {}", h.path, h.body)).collect();
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; got {summary:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits until no delivery is pending: the receiver's answers are recorded shortly after they arrive.
pub async fn settled(pool: &sqlx::PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'pending'")
            .fetch_one(pool)
            .await
            .expect("count");
        if pending == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{pending} deliveries still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
