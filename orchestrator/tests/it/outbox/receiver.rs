//! A fake webhook receiver on a real loopback socket. It verifies every request with the independent
//! `standardwebhooks` crate (answering 401 when no configured secret verifies, as a real receiver would),
//! records what arrived, and answers from a script.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::Notify;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, empty body.
    Status(u16),
    /// This status with a `Retry-After` value.
    RetryAfter(u16, &'static str),
    /// A redirect to `/elsewhere` on the same server.
    Redirect,
    /// Never answer within this long, then 200.
    Hang(Duration),
}

/// What arrived.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub raw: Bytes,
    pub body: serde_json::Value,
    /// Verified by `standardwebhooks` with one of the receiver's secrets.
    pub verified: bool,
}

impl Hit {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn msg_id(&self) -> &str {
        self.header("webhook-id")
    }

    /// The `v1,…` entries of `webhook-signature`.
    pub fn signatures(&self) -> Vec<String> {
        self.header("webhook-signature").split(' ').map(String::from).collect()
    }

    /// Whether `secret` verifies this request with only `signature` in the header.
    pub fn verifies_with(&self, secret: &str, signature: &str) -> bool {
        let mut headers = self.headers.clone();
        headers.insert("webhook-signature", HeaderValue::from_str(signature).expect("header"));
        standardwebhooks::Webhook::new(secret).expect("secret").verify(&self.raw, &headers).is_ok()
    }
}

struct Inner {
    secrets: Mutex<Vec<String>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    hits: Mutex<Vec<Hit>>,
    arrived: Notify,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port with nothing listening on it (yet).
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

impl Receiver {
    /// Starts on a free port. Requests must verify with a secret given to [`Receiver::trust`].
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: SocketAddr) -> Self {
        let inner = Arc::new(Inner {
            secrets: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::Status(204)),
            hits: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let app = Router::new().route("/{*path}", post(hook)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner, task }
    }

    /// Accepts requests signed with `secret` (a `whsec_…` string).
    pub fn trust(&self, secret: &str) {
        self.inner.secrets.lock().expect("lock").push(secret.to_string());
    }

    /// The URL of path `/hook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers these first, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.script.lock().expect("lock").extend(replies);
    }

    /// Answers this once the script is used up (default 204).
    pub fn always(&self, reply: Reply) {
        *self.inner.default.lock().expect("lock") = reply;
    }

    /// Everything received so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests arrived; panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.inner.arrived.notified();
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("expected {n} webhook requests within {within:?}, got {}", self.hits().len());
            }
        }
    }
}

async fn hook(
    State(inner): State<Arc<Inner>>,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let secrets = inner.secrets.lock().expect("lock").clone();
    let verified = secrets
        .iter()
        .any(|s| standardwebhooks::Webhook::new(s).expect("receiver secret").verify(&raw, &headers).is_ok());
    let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
    let hit = Hit { at: Instant::now(), path: format!("/{path}"), headers, raw, body, verified };
    inner.hits.lock().expect("lock").push(hit);
    inner.arrived.notify_waiters();
    if !verified {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let reply = inner.script.lock().expect("lock").pop_front();
    let reply = reply.unwrap_or_else(|| inner.default.lock().expect("lock").clone());
    let status = |c: u16| StatusCode::from_u16(c).expect("status");
    match reply {
        Reply::Status(c) => (status(c), "receiver says hi").into_response(),
        Reply::RetryAfter(c, v) => (status(c), [("retry-after", v)], "slow down").into_response(),
        Reply::Redirect => (StatusCode::FOUND, [("location", "/elsewhere")]).into_response(),
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            StatusCode::OK.into_response()
        }
    }
}
