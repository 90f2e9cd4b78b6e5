//! The soak's webhook receiver: answers 204 to every delivery and verifies each one on arrival with the
//! independent `standardwebhooks` crate (the secret is known once the subscription was made). It keeps the body of
//! the first delivery of every `webhook-id`, so the end of the soak can say whether a repeated id carried the same
//! message (at least once: duplicates allowed, but only as the same message).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

#[derive(Default)]
struct Inner {
    secret: Option<String>,
    /// `webhook-id` → the first body received with it.
    first: HashMap<String, String>,
    received: u64,
    bad_signature: u64,
    /// Repeats of an id with the same body, and with another body (never allowed).
    repeats: u64,
    conflicting: u64,
}

/// What the receiver saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Requests received.
    pub received: u64,
    /// Distinct `webhook-id`s.
    pub distinct: usize,
    /// Requests whose signature did not verify (or arrived before the secret was known).
    pub bad_signature: u64,
    /// Repeated ids with the same body.
    pub repeats: u64,
    /// Repeated ids with another body.
    pub conflicting: u64,
}

/// A running receiver at [`Receiver::url`].
#[derive(Clone)]
pub struct Receiver {
    url: String,
    inner: Arc<Mutex<Inner>>,
}

async fn hook(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: String) -> StatusCode {
    let mut g = inner.lock().expect("receiver");
    g.received += 1;
    let valid = g
        .secret
        .as_deref()
        .is_some_and(|s| standardwebhooks::Webhook::new(s).is_ok_and(|w| w.verify(body.as_bytes(), &headers).is_ok()));
    if !valid {
        g.bad_signature += 1;
    }
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    match g.first.get(&id) {
        Some(first) if *first == body => g.repeats += 1,
        Some(_) => g.conflicting += 1,
        None => {
            g.first.insert(id, body);
        }
    }
    StatusCode::NO_CONTENT
}

impl Receiver {
    /// Listens on a loopback port.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, inner }
    }

    /// Where deliveries go.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sets the subscription's signing secret (`whsec_…`).
    pub fn set_secret(&self, secret: &str) {
        self.inner.lock().expect("receiver").secret = Some(secret.to_owned());
    }

    /// The distinct `webhook-id`s received.
    pub fn ids(&self) -> Vec<String> {
        self.inner.lock().expect("receiver").first.keys().cloned().collect()
    }

    /// Counts so far.
    pub fn seen(&self) -> Seen {
        let g = self.inner.lock().expect("receiver");
        Seen {
            received: g.received,
            distinct: g.first.len(),
            bad_signature: g.bad_signature,
            repeats: g.repeats,
            conflicting: g.conflicting,
        }
    }
}
