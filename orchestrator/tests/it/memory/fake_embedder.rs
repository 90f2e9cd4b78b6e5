//! A fake OpenAI-compatible `/v1/embeddings` server that enforces what the real API does: a bearer key when it
//! has one, a JSON body with a `model` and a non-empty `input` of strings, `encoding_format` float; it answers
//! `data[{index, embedding}]`. Its vectors are a hashed bag of words (normalised), so texts that share words are
//! near each other. It can be taken down (503) and its dimension changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Clone)]
pub struct FakeEmbedder {
    pub url: String,
    down: Arc<AtomicBool>,
    dims: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Shared {
    key: Option<String>,
    down: Arc<AtomicBool>,
    dims: Arc<AtomicUsize>,
}

/// The fake's vector of `text`: each lower-cased word (a crude stem: trailing `s` dropped) adds 1 at a hashed
/// position.
pub fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0f32; dims];
    for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2) {
        let w = w.to_lowercase();
        let w = w.strip_suffix('s').unwrap_or(&w);
        let h = w.bytes().fold(1469598103934665603u64, |h, b| (h ^ u64::from(b)).wrapping_mul(1099511628211));
        v[usize::try_from(h % dims as u64).unwrap_or(0)] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    } else {
        v[0] = 1.0;
    }
    v
}

async fn embeddings(State(s): State<Shared>, headers: HeaderMap, body: String) -> (StatusCode, Json<Value>) {
    let err =
        |code: StatusCode, m: &str| (code, Json(json!({ "error": { "message": m, "type": "invalid_request_error" } })));
    if s.down.load(Ordering::SeqCst) {
        return err(StatusCode::SERVICE_UNAVAILABLE, "the model is loading");
    }
    if let Some(key) = &s.key {
        let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
        if sent != Some(format!("Bearer {key}").as_str()) {
            return err(StatusCode::UNAUTHORIZED, "invalid api key");
        }
    }
    let Ok(req) = serde_json::from_str::<Value>(&body) else { return err(StatusCode::BAD_REQUEST, "invalid JSON") };
    if !req["model"].is_string() {
        return err(StatusCode::BAD_REQUEST, "missing 'model'");
    }
    if !matches!(req.get("encoding_format").and_then(Value::as_str), None | Some("float")) {
        return err(StatusCode::BAD_REQUEST, "only float encoding");
    }
    let texts: Vec<String> = match &req["input"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_string) => {
            a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()
        }
        _ => return err(StatusCode::BAD_REQUEST, "'input' must be a string or a non-empty array of strings"),
    };
    let dims = s.dims.load(Ordering::SeqCst);
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| json!({ "object": "embedding", "index": i, "embedding": vector(t, dims) }))
        .collect();
    (StatusCode::OK, Json(json!({ "object": "list", "data": data, "model": req["model"] })))
}

impl FakeEmbedder {
    pub async fn start(key: Option<&str>, dims: usize) -> Self {
        let shared = Shared {
            key: key.map(str::to_owned),
            down: Arc::new(AtomicBool::new(false)),
            dims: Arc::new(AtomicUsize::new(dims)),
        };
        let app = axum::Router::new().route("/v1/embeddings", post(embeddings)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, down: shared.down, dims: shared.dims }
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn set_dims(&self, dims: usize) {
        self.dims.store(dims, Ordering::SeqCst);
    }
}
