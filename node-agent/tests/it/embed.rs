//! Embed jobs on the inference executor, against a local OpenAI-compatible `/v1/embeddings` fake that enforces
//! the request shape (model and input required, input a list of strings, `input_type` only query/passage) and
//! the API key, and answers in `index` order that differs from the input order, as servers may.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cynode_node_agent::executor::inference::{InferenceConfig, InferenceEnd, InferenceError, InferenceExecutor};
use cynode_protocol::{EmbedInputType, EmbedSpec};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-embed-secret-456";

fn bad(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({"error": {"message": message, "type": "invalid_request_error"}}))).into_response()
}

/// A vector that depends on the text and on `input_type`, so a test can tell which text a vector belongs to.
fn vector(text: &str, kind: Option<&str>) -> Vec<f64> {
    let bias = match kind {
        Some("query") => 0.5,
        Some(_) => 0.25,
        None => 0.0,
    };
    vec![text.len() as f64, bias, 1.0]
}

async fn embeddings(h: HeaderMap, body: String) -> Response {
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {KEY}")) {
        return bad(StatusCode::UNAUTHORIZED, "Incorrect API key provided: sk-****-456.");
    }
    let Ok(body) = serde_json::from_str::<serde_json::Value>(&body) else {
        return bad(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let Some(model) = body["model"].as_str() else { return bad(StatusCode::BAD_REQUEST, "`model` is required") };
    let Some(input) = body["input"].as_array() else {
        return bad(StatusCode::BAD_REQUEST, "`input` must be a list of strings");
    };
    let Some(texts) = input.iter().map(|t| t.as_str()).collect::<Option<Vec<&str>>>() else {
        return bad(StatusCode::BAD_REQUEST, "`input` must be a list of strings");
    };
    let kind = match &body["input_type"] {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) if s == "query" || s == "passage" => Some(s.as_str()),
        _ => return bad(StatusCode::BAD_REQUEST, "`input_type` must be query or passage"),
    };
    if !matches!(&body["encoding_format"], serde_json::Value::Null) && body["encoding_format"] != "float" {
        return bad(StatusCode::BAD_REQUEST, "only float encoding here");
    }
    let mut data: Vec<serde_json::Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"object": "embedding", "index": i, "embedding": vector(t, kind)}))
        .collect();
    data.reverse();
    match model {
        "e5" => {}
        "short" => {
            data.pop();
        }
        "inf" => data[0]["embedding"] = serde_json::json!([1e39, 0.0, 1.0]),
        // What Python's json.dumps writes for a NaN.
        "nan" => {
            return ([("content-type", "application/json")], r#"{"data":[{"index":0,"embedding":[NaN,1.0]}]}"#)
                .into_response();
        }
        "ragged" => data[0]["embedding"] = serde_json::json!([1.0]),
        "boom" => return bad(StatusCode::INTERNAL_SERVER_ERROR, "CUDA out of memory"),
        "slow" => tokio::time::sleep(Duration::from_secs(5)).await,
        _ => return bad(StatusCode::NOT_FOUND, "model not found"),
    }
    let tokens: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    Json(serde_json::json!({"object": "list", "model": model, "data": data,
                            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    .into_response()
}

async fn fake() -> String {
    let models = || async { Json(serde_json::json!({"data": [{"id": "e5"}]})) };
    let app = axum::Router::new().route("/v1/models", get(models)).route("/v1/embeddings", post(embeddings));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

fn executor(url: &str, key: &str) -> InferenceExecutor {
    InferenceExecutor::new(InferenceConfig {
        base_url: url.to_string(),
        api_key: Some(SecretString::from(key.to_string())),
        allowed_models: Vec::new(),
        default_model: None,
    })
}

fn spec(model: &str, texts: &[&str], kind: Option<EmbedInputType>) -> EmbedSpec {
    EmbedSpec {
        model: model.into(),
        input: texts.iter().map(|t| t.to_string()).collect(),
        input_type: kind,
        timeout_s: 2,
    }
}

#[tokio::test]
async fn a_batch_comes_back_as_one_vector_per_text_in_order() {
    let exec = executor(&fake().await, KEY);
    let run = exec
        .embed(&spec("e5", &["a", "bbb two", "cc"], Some(EmbedInputType::Query)), CancellationToken::new())
        .await
        .expect("embed");
    assert_eq!(run.end, InferenceEnd::Completed);
    assert_eq!(run.vectors, vec![vec![1.0, 0.5, 1.0], vec![7.0, 0.5, 1.0], vec![2.0, 0.5, 1.0]], "in input order");
    assert_eq!(run.usage.map(|u| (u.prompt_tokens, u.completion_tokens)), Some((4, 0)));
    // Without an input type none is sent (a server that refuses unknown fields keeps working).
    let run = exec.embed(&spec("e5", &["a"], None), CancellationToken::new()).await.expect("embed");
    assert_eq!(run.vectors, vec![vec![1.0, 0.0, 1.0]]);
    let run =
        exec.embed(&spec("e5", &["a"], Some(EmbedInputType::Passage)), CancellationToken::new()).await.expect("embed");
    assert_eq!(run.vectors, vec![vec![1.0, 0.25, 1.0]]);
}

#[tokio::test]
async fn unusable_answers_and_server_errors_say_what_is_wrong_without_the_key() {
    let url = fake().await;
    let exec = executor(&url, KEY);
    let err = |model: &'static str| {
        let exec = exec.clone();
        async move {
            let e = exec.embed(&spec(model, &["a", "bb"], None), CancellationToken::new()).await.expect_err(model);
            (matches!(e, InferenceError::BadAnswer(_)), e.to_string())
        }
    };
    let (bad_answer, m) = err("short").await;
    assert!(bad_answer && m.contains("1 vectors for 2 texts"), "{m}");
    let (bad_answer, m) = err("inf").await;
    assert!(bad_answer && m.contains("not finite"), "{m}");
    let (bad_answer, m) = err("nan").await;
    assert!(bad_answer && m.contains("not JSON"), "{m}");
    let (bad_answer, m) = err("ragged").await;
    assert!(bad_answer && m.contains("dimensions"), "{m}");
    let (bad_answer, m) = err("boom").await;
    assert!(!bad_answer && m.contains("500") && m.contains("CUDA out of memory"), "{m}");
    let (_, m) = err("missing").await;
    assert!(m.contains("404") && m.contains("model not found"), "{m}");
    let wrong = executor(&url, "sk-wrong-key-789");
    let e = wrong.embed(&spec("e5", &["a"], None), CancellationToken::new()).await.expect_err("401").to_string();
    assert!(e.contains("401") && e.contains("refused the API key") && !e.contains("789"), "{e}");
    assert!(!e.contains(KEY));
}

#[tokio::test]
async fn a_slow_server_times_out_and_a_cancel_stops_the_wait() {
    let exec = executor(&fake().await, KEY);
    let run = exec.embed(&spec("slow", &["a"], None), CancellationToken::new()).await.expect("outcome");
    assert_eq!(run.end, InferenceEnd::Timeout);
    assert!(run.vectors.is_empty() && run.duration < Duration::from_secs(4));
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.cancel();
    });
    let run = exec.embed(&spec("slow", &["a"], None), cancel).await.expect("outcome");
    assert_eq!(run.end, InferenceEnd::Cancelled);
}
