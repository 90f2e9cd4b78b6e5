//! A Standard Webhooks receiver for tests: a real HTTP server that checks every request with **two independent
//! verifiers** — the `standardwebhooks` crate (its own HMAC, `hmac-sha256`) and [`SpecVerifier`], written here
//! from the specification's text on RustCrypto's `hmac`/`sha2` — and refuses what a real receiver refuses: `400`
//! when a `webhook-*` header is missing or malformed, `401` for a signature that matches no `v1` entry or a
//! timestamp more than five minutes from now. Only requests both verifiers accept are recorded as [`Hit`]s and
//! answered `204`, after [`WebhookReceiver::set_delay`] (a slow receiver keeps deliveries in flight); refusals and
//! any disagreement between the verifiers are recorded apart, for the test to assert on.
//!
//! The receiver also tracks which accepted requests are still being answered ([`WebhookReceiver::in_flight`]),
//! with the sender's address, so a test can tell which process has deliveries in flight right now.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Receivers allow timestamps this far from their clock, either way (the specification's five minutes).
pub const TOLERANCE_S: i64 = 5 * 60;

/// Why [`SpecVerifier`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A `webhook-*` header is absent or not text (`400`).
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not an integer number of seconds (`400`).
    BadTimestamp,
    /// The timestamp is more than [`TOLERANCE_S`] from now (`401`: a replay or a skewed clock).
    Stale,
    /// No `v1` signature in `webhook-signature` matches (`401`).
    BadSignature,
}

impl Refusal {
    /// The status a receiver answers.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingHeader(_) | Self::BadTimestamp => StatusCode::BAD_REQUEST,
            Self::Stale | Self::BadSignature => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Standard Webhooks verification as the specification states it, independent of CyNode's signer and of the
/// `standardwebhooks` crate: the key is the base64 after `whsec_`; the signed content is
/// `{webhook-id}.{webhook-timestamp}.{raw body}`; `webhook-signature` is a space-separated list of
/// `version,base64(HMAC-SHA256)`, of which any `v1` entry may match (compared in constant time).
#[derive(Clone)]
pub struct SpecVerifier {
    key: Vec<u8>,
}

impl std::fmt::Debug for SpecVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpecVerifier { key: <hidden> }")
    }
}

impl SpecVerifier {
    /// A verifier for a `whsec_…` secret.
    ///
    /// # Errors
    /// When the secret is not `whsec_` followed by base64 of at least one byte.
    pub fn new(secret: &str) -> Result<Self, String> {
        let encoded = secret.strip_prefix("whsec_").ok_or("a Standard Webhooks secret starts with whsec_")?;
        let key = STANDARD.decode(encoded).map_err(|e| format!("the secret is not base64: {e}"))?;
        if key.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(Self { key })
    }

    /// Verifies a message received at `now` (Unix seconds).
    ///
    /// # Errors
    /// The [`Refusal`] a receiver answers with.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), Refusal> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .ok_or(Refusal::MissingHeader(name))
        };
        let id = header("webhook-id")?;
        let timestamp = header("webhook-timestamp")?;
        let signatures = header("webhook-signature")?;
        let ts: i64 = timestamp.parse().map_err(|_| Refusal::BadTimestamp)?;
        if (now - ts).abs() > TOLERANCE_S {
            return Err(Refusal::Stale);
        }
        let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
        content.extend_from_slice(id.as_bytes());
        content.push(b'.');
        content.extend_from_slice(timestamp.as_bytes());
        content.push(b'.');
        content.extend_from_slice(body);
        let matches = signatures.split(' ').filter_map(|entry| entry.split_once(',')).any(|(version, sig)| {
            let Ok(tag) = STANDARD.decode(sig) else { return false };
            let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key) else { return false };
            mac.update(&content);
            version == "v1" && mac.verify_slice(&tag).is_ok()
        });
        if matches { Ok(()) } else { Err(Refusal::BadSignature) }
    }
}

/// One accepted delivery.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Arrival order at the receiver.
    pub seq: u64,
    /// `webhook-id`.
    pub webhook_id: String,
    /// `webhook-timestamp`.
    pub timestamp: i64,
    /// The raw body.
    pub body: Bytes,
    /// Who sent it (the sender's end of the connection).
    pub peer: SocketAddr,
    /// When it arrived.
    pub at: Instant,
}

impl Hit {
    /// The body as JSON.
    ///
    /// # Panics
    /// When the body is not JSON.
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// A refused request (or one the two verifiers judged differently).
#[derive(Debug, Clone)]
pub struct Refused {
    /// `webhook-id`, when present.
    pub webhook_id: Option<String>,
    /// What the specification verifier said.
    pub spec: Result<(), Refusal>,
    /// What the `standardwebhooks` crate said.
    pub standardwebhooks: Result<(), String>,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug)]
struct Inner {
    /// The `whsec_…` secret deliveries are signed with (none yet: everything is refused).
    secret: Mutex<Option<String>>,
    delay: Mutex<Duration>,
    seq: AtomicU64,
    hits: Mutex<Vec<Hit>>,
    refused: Mutex<Vec<Refused>>,
    in_flight: Mutex<HashMap<u64, Hit>>,
}

/// Removes an accepted request from the in-flight set when its answer is done (or the connection is dropped).
struct Answering<'a>(&'a Inner, u64);

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.in_flight.lock().expect("in flight").remove(&self.1);
    }
}

/// A running receiver; see the module docs. Stops with the test's runtime.
#[derive(Debug, Clone)]
pub struct WebhookReceiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

async fn receive(
    State(inner): State<Arc<Inner>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let now = chrono::Utc::now().timestamp();
    let secret = inner.secret.lock().expect("secret").clone().unwrap_or_default();
    let spec =
        SpecVerifier::new(&secret).map_err(|_| Refusal::BadSignature).and_then(|v| v.verify(&headers, &body, now));
    let crate_says = standardwebhooks::Webhook::new(&secret)
        .map_err(|e| e.to_string())
        .and_then(|w| w.verify(&body, &headers).map_err(|e| e.to_string()));
    let webhook_id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if spec.is_err() || crate_says.is_err() {
        let status = spec.as_ref().err().map_or(StatusCode::UNAUTHORIZED, Refusal::status);
        inner.refused.lock().expect("refused").push(Refused {
            webhook_id,
            spec,
            standardwebhooks: crate_says,
            status: status.as_u16(),
        });
        return (status, "refused: the Standard Webhooks signature does not verify");
    }
    let seq = inner.seq.fetch_add(1, Ordering::SeqCst);
    let timestamp = headers["webhook-timestamp"].to_str().ok().and_then(|t| t.parse().ok()).unwrap_or_default();
    let hit = Hit { seq, webhook_id: webhook_id.unwrap_or_default(), timestamp, body, peer, at: Instant::now() };
    inner.hits.lock().expect("hits").push(hit.clone());
    inner.in_flight.lock().expect("in flight").insert(seq, hit);
    let _answering = Answering(&inner, seq);
    let delay = *inner.delay.lock().expect("delay");
    tokio::time::sleep(delay).await;
    (StatusCode::NO_CONTENT, "")
}

impl WebhookReceiver {
    /// Starts a receiver on a free loopback port; it refuses everything until [`Self::set_secret`].
    ///
    /// # Panics
    /// When no port can be bound.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner {
            secret: Mutex::new(None),
            delay: Mutex::new(Duration::ZERO),
            seq: AtomicU64::new(0),
            hits: Mutex::default(),
            refused: Mutex::default(),
            in_flight: Mutex::default(),
        });
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(
            async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await },
        );
        Self { addr, inner }
    }

    /// The endpoint, `http://127.0.0.1:PORT/hook`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Accepts messages signed with `secret` (`whsec_…`, as a subscription's creation returned it).
    ///
    /// # Panics
    /// When the secret is not a Standard Webhooks secret.
    pub fn set_secret(&self, secret: &str) {
        SpecVerifier::new(secret).expect("a whsec_ secret");
        *self.inner.secret.lock().expect("secret") = Some(secret.to_owned());
    }

    /// Answers accepted requests only after `delay` from now on.
    pub fn set_delay(&self, delay: Duration) {
        *self.inner.delay.lock().expect("delay") = delay;
    }

    /// Every accepted delivery, in arrival order.
    #[must_use]
    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().expect("hits").clone()
    }

    /// Accepted deliveries whose answer has not been sent yet.
    #[must_use]
    pub fn in_flight(&self) -> Vec<Hit> {
        let mut v: Vec<Hit> = self.inner.in_flight.lock().expect("in flight").values().cloned().collect();
        v.sort_by_key(|h| h.seq);
        v
    }

    /// Every refused request.
    #[must_use]
    pub fn refused(&self) -> Vec<Refused> {
        self.inner.refused.lock().expect("refused").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PLATFORMS.md's vector (the official libraries' test).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(id: &str, ts: i64, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().expect("id"));
        h.insert("webhook-timestamp", ts.to_string().parse().expect("ts"));
        h.insert("webhook-signature", signature.parse().expect("signature"));
        h
    }

    #[test]
    fn the_spec_verifier_accepts_the_official_vector_and_nothing_altered() {
        let v = SpecVerifier::new(SECRET).expect("secret");
        assert_eq!(v.verify(&headers(ID, TS, SIGNATURE), BODY, TS), Ok(()));
        // Another entry first (rotation), an unknown version, then the right one.
        let listed = format!("v1,AAAA v2,xyz {SIGNATURE}");
        assert_eq!(v.verify(&headers(ID, TS, &listed), BODY, TS + TOLERANCE_S), Ok(()));
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(v.verify(&headers(ID, TS, SIGNATURE), tampered, TS), Err(Refusal::BadSignature));
        assert_eq!(v.verify(&headers("msg_other", TS, SIGNATURE), BODY, TS), Err(Refusal::BadSignature));
        let other_version = SIGNATURE.replacen("v1,", "v1a,", 1);
        assert_eq!(v.verify(&headers(ID, TS, &other_version), BODY, TS), Err(Refusal::BadSignature));
        assert_eq!(v.verify(&headers(ID, TS, SIGNATURE), BODY, TS + TOLERANCE_S + 1), Err(Refusal::Stale));
        assert_eq!(v.verify(&headers(ID, TS, SIGNATURE), BODY, TS - TOLERANCE_S - 1), Err(Refusal::Stale));
        let mut missing = headers(ID, TS, SIGNATURE);
        missing.remove("webhook-signature");
        assert_eq!(v.verify(&missing, BODY, TS), Err(Refusal::MissingHeader("webhook-signature")));
        let mut bad_ts = headers(ID, TS, SIGNATURE);
        bad_ts.insert("webhook-timestamp", "soon".parse().expect("value"));
        assert_eq!(v.verify(&bad_ts, BODY, TS), Err(Refusal::BadTimestamp));
        assert!(SpecVerifier::new("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err(), "the prefix is required");
    }

    #[tokio::test]
    async fn the_receiver_refuses_what_either_verifier_refuses() {
        let rx = WebhookReceiver::start().await;
        let http = reqwest::Client::new();
        let post = |h: HeaderMap, body: &'static [u8]| http.post(rx.url()).headers(h).body(body).send();
        // Before the secret is known, nothing verifies; then the vector's timestamp is years old (stale), a
        // signature of another timestamp does not match, and a request without the headers is malformed.
        let now = chrono::Utc::now().timestamp();
        let signed = standardwebhooks::Webhook::new(SECRET).expect("secret").sign(ID, now, BODY).expect("sign");
        assert_eq!(post(headers(ID, now, &signed), BODY).await.expect("send").status(), 401, "no secret set yet");
        rx.set_secret(SECRET);
        assert_eq!(post(headers(ID, TS, SIGNATURE), BODY).await.expect("send").status(), 401);
        assert_eq!(post(headers(ID, now, SIGNATURE), BODY).await.expect("send").status(), 401);
        assert_eq!(post(HeaderMap::new(), BODY).await.expect("send").status(), 400);
        let refused = rx.refused();
        assert_eq!(refused.len(), 4, "{refused:?}");
        assert!(refused.iter().all(|r| r.spec.is_err() && r.standardwebhooks.is_err()), "{refused:?}");
        assert!(rx.hits().is_empty());
        // A fresh message signed with the key is accepted by both and answered 204.
        assert_eq!(post(headers(ID, now, &signed), BODY).await.expect("send").status(), 204);
        let hits = rx.hits();
        assert_eq!((hits.len(), hits[0].webhook_id.as_str(), &hits[0].body[..]), (1, ID, BODY));
        assert!(rx.in_flight().is_empty());
    }
}
