//! The inference executor against a local OpenAI-compatible fake that enforces the request shape and the
//! API key, and streams server-sent events like llama.cpp's server and vLLM do.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cynode_node_agent::executor::OutputChunk;
use cynode_node_agent::executor::inference::{InferenceConfig, InferenceEnd, InferenceError, InferenceExecutor};
use cynode_protocol::InferenceSpec;
use secrecy::SecretString;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-upstream-secret-123";

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {KEY}"))
}

/// OpenAI's answer to a wrong key: 401, and a message that repeats the key's head and tail.
fn refused(h: &HeaderMap) -> Response {
    let given = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().trim_start_matches("Bearer ");
    let masked = format!("{}****{}", &given[..given.len().min(3)], &given[given.len().saturating_sub(4)..]);
    let message = format!("Incorrect API key provided: {masked}.");
    let body =
        serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}});
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

async fn models(h: HeaderMap) -> Response {
    if !authorized(&h) {
        return refused(&h);
    }
    Json(serde_json::json!({"object": "list", "data": [{"id": "tiny"}, {"id": "other"}]})).into_response()
}

async fn chat(h: HeaderMap, Json(body): Json<serde_json::Value>) -> Response {
    if !authorized(&h) {
        return refused(&h);
    }
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let prompt = body["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str());
    if model.is_empty() || prompt.is_none() || body["stream"] != true {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": {"message": "model, messages, stream required"}})),
        )
            .into_response();
    }
    if model != "tiny" && model != "other" {
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": {"message": "model not found"}})))
            .into_response();
    }
    let prompt = prompt.unwrap_or_default().to_string();
    let slow = prompt.contains("slow");
    let stream = async_stream(prompt, slow);
    ([("content-type", "text/event-stream")], axum::body::Body::from_stream(stream)).into_response()
}

fn async_stream(prompt: String, slow: bool) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    let words: Vec<String> = format!("echo: {prompt}").split(' ').map(|w| format!("{w} ")).collect();
    let n = words.len() as u64;
    futures_util::stream::unfold((words.into_iter(), false), move |(mut it, done)| async move {
        if done {
            return None;
        }
        if slow {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        match it.next() {
            Some(w) => {
                let ev = serde_json::json!({"choices": [{"delta": {"content": w}}]});
                Some((Ok(format!("data: {ev}\n\n")), (it, false)))
            }
            None => {
                let usage = serde_json::json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": n}});
                Some((Ok(format!("data: {usage}\n\ndata: [DONE]\n\n")), (it, true)))
            }
        }
    })
}

async fn fake() -> String {
    let app = axum::Router::new().route("/v1/models", get(models)).route("/v1/chat/completions", post(chat));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

fn config(url: &str, key: &str, allowed: &[&str]) -> InferenceConfig {
    InferenceConfig {
        base_url: url.to_string(),
        api_key: Some(SecretString::from(key.to_string())),
        allowed_models: allowed.iter().map(|s| s.to_string()).collect(),
        default_model: None,
    }
}

fn spec(prompt: &str, timeout_s: u64) -> InferenceSpec {
    InferenceSpec {
        model: String::new(),
        prompt: prompt.into(),
        messages: Vec::new(),
        tools: Vec::new(),
        tool_choice: None,
        system: None,
        max_tokens: 64,
        timeout_s,
    }
}

async fn collect(mut rx: mpsc::Receiver<OutputChunk>) -> String {
    let mut out = Vec::new();
    while let Some(c) = rx.recv().await {
        out.extend(c.data);
    }
    String::from_utf8(out).expect("utf8")
}

#[tokio::test]
async fn streams_tokens_and_reports_usage() {
    let url = fake().await;
    let exec = InferenceExecutor::new(config(&url, KEY, &[]));
    assert_eq!(exec.models().await.expect("models"), vec!["tiny", "other"]);
    let (tx, rx) = mpsc::channel(64);
    let reader = tokio::spawn(collect(rx));
    let run = exec.run(&spec("hello there", 30), CancellationToken::new(), tx).await.expect("run");
    assert_eq!(run.end, InferenceEnd::Completed);
    assert_eq!(run.model, "tiny", "the first listed model is the default");
    assert_eq!(run.usage.map(|u| (u.prompt_tokens, u.completion_tokens)), Some((3, 3)));
    let text = reader.await.expect("join");
    assert_eq!(text, "echo: hello there ");
    assert!(!text.contains(KEY));
}

#[tokio::test]
async fn allowlist_and_upstream_errors_are_clear_and_keyless() {
    let url = fake().await;
    let exec = InferenceExecutor::new(config(&url, KEY, &["other"]));
    assert_eq!(exec.models().await.expect("models"), vec!["other"]);
    let mut s = spec("hi", 30);
    s.model = "tiny".into();
    let (tx, _rx) = mpsc::channel(8);
    let err = exec.run(&s, CancellationToken::new(), tx).await.expect_err("not allowed");
    assert!(matches!(err, InferenceError::ModelNotAllowed(..)), "{err}");

    let wrong = InferenceExecutor::new(config(&url, "sk-wrong-key", &[]));
    let err = wrong.models().await.expect_err("401");
    let msg = err.to_string();
    // Not even the masked key the server repeats reaches the error (which becomes a job's result).
    assert!(msg.contains("401") && msg.contains("refused the API key"), "{msg}");
    assert!(!msg.contains("sk-wrong-key") && !msg.contains("-key") && !msg.contains("sk-"), "{msg}");

    let down = InferenceExecutor::new(config("http://127.0.0.1:9", KEY, &[]));
    let err = down.models().await.expect_err("down");
    assert!(err.to_string().contains("unreachable") && !err.to_string().contains(KEY), "{err}");
}

#[tokio::test]
async fn timeout_and_cancel_end_the_stream() {
    let url = fake().await;
    let exec = InferenceExecutor::new(config(&url, KEY, &[]));
    let (tx, rx) = mpsc::channel(64);
    let reader = tokio::spawn(collect(rx));
    let run =
        exec.run(&spec("slow slow slow slow slow slow slow slow", 1), CancellationToken::new(), tx).await.expect("run");
    assert_eq!(run.end, InferenceEnd::Timeout);
    assert!(run.duration < Duration::from_secs(2), "{:?}", run.duration);
    let partial = reader.await.expect("join");
    assert!(partial.starts_with("echo:") && partial.len() < "echo: slow".len() * 8, "{partial}");

    let cancel = CancellationToken::new();
    let (tx, _rx) = mpsc::channel(64);
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c2.cancel();
    });
    let run = exec.run(&spec("slow slow slow slow slow slow", 30), cancel, tx).await.expect("run");
    assert_eq!(run.end, InferenceEnd::Cancelled);
}
