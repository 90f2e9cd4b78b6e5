//! Inference executor: sends a job's prompt to an OpenAI-compatible server on the node (Ollama, vLLM,
//! llama.cpp's server), streams the generated tokens back as numbered chunks, and reports token usage. Embed jobs
//! send a batch of texts to the same server's `/v1/embeddings` ([`InferenceExecutor::embed`]).
//!
//! The upstream's base URL, optional API key and allowed models are node configuration. The API key is sent
//! only as the `Authorization` header: it never appears in job output, outcomes, errors or logs.

use std::time::{Duration, Instant};

use cynode_protocol::{InferenceSpec, Usage};
use futures_util::StreamExt as _;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{OutputChunk, OutputStream};

mod calls;
mod embed;

pub use embed::EmbedOutcome;

/// How the node reaches its inference server.
#[derive(Debug, Clone)]
pub struct InferenceConfig {
    /// Base URL of the OpenAI-compatible API, e.g. `http://127.0.0.1:11434` (the `/v1/…` paths are appended).
    pub base_url: String,
    /// Bearer key for the upstream, if it needs one.
    pub api_key: Option<SecretString>,
    /// Models jobs may use; empty means whatever the server lists.
    pub allowed_models: Vec<String>,
    /// Model for jobs that name none; default: the first the server lists.
    pub default_model: Option<String>,
}

impl PartialEq for InferenceConfig {
    fn eq(&self, other: &Self) -> bool {
        self.base_url == other.base_url
            && self.allowed_models == other.allowed_models
            && self.default_model == other.default_model
            && self.api_key.as_ref().map(|k| k.expose_secret().to_owned())
                == other.api_key.as_ref().map(|k| k.expose_secret().to_owned())
    }
}

/// Why an inference job could not run. Messages are safe to show users: no key, no prompt.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// The server is unreachable.
    #[error("the inference server at {0} is unreachable: {1}")]
    Unreachable(String, String),
    /// The model is not allowed on this node or not served.
    #[error("model `{0}` is not available on this node (available: {1})")]
    ModelNotAllowed(String, String),
    /// The server answered with an error status.
    #[error("the inference server answered {status}: {detail}")]
    Upstream {
        /// HTTP status.
        status: u16,
        /// A short excerpt of its error message.
        detail: String,
    },
    /// The stream broke or carried something unreadable.
    #[error("the inference stream broke: {0}")]
    Stream(String),
    /// An embeddings answer that is not one usable vector per text.
    #[error("the inference server's embeddings are unusable: {0}")]
    BadAnswer(String),
}

/// How a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InferenceEnd {
    /// The model finished (stop token or `max_tokens`).
    Completed,
    /// The wall-clock limit was reached.
    Timeout,
    /// Cancelled by the orchestrator or the agent.
    Cancelled,
}

/// The result of one generation.
#[derive(Debug, Clone)]
pub struct InferenceOutcome {
    /// How it ended.
    pub end: InferenceEnd,
    /// Wall-clock time.
    pub duration: Duration,
    /// Bytes generated.
    pub output_bytes: u64,
    /// Token usage, when the server reports it.
    pub usage: Option<Usage>,
    /// The model that answered.
    pub model: String,
    /// The tool calls the model made (assembled from the stream's deltas).
    pub tool_calls: Vec<cynode_protocol::ToolCall>,
}

/// Talks to one OpenAI-compatible server.
#[derive(Debug, Clone)]
pub struct InferenceExecutor {
    http: reqwest::Client,
    config: InferenceConfig,
}

const FLUSH_EVERY: Duration = Duration::from_millis(50);
const MAX_CHUNK: usize = 16 * 1024;

impl InferenceExecutor {
    /// An executor for `config`.
    pub fn new(config: InferenceConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { http, config }
    }

    /// An executor for `config` that sends its requests with `http` (a client with its own resolver and
    /// policy, e.g. a gateway's outbound guard).
    pub fn with_client(config: InferenceConfig, http: reqwest::Client) -> Self {
        Self { http, config }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.api_key {
            Some(k) => builder.bearer_auth(k.expose_secret()),
            None => builder,
        }
    }

    /// Models the server serves, filtered by the allowlist (`GET /v1/models`).
    ///
    /// # Errors
    /// [`InferenceError::Unreachable`] or [`InferenceError::Upstream`].
    pub async fn models(&self) -> Result<Vec<String>, InferenceError> {
        let resp = self
            .request(self.http.get(self.url("/v1/models")))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| InferenceError::Unreachable(self.config.base_url.clone(), e.without_url().to_string()))?;
        let status = resp.status();
        let body: serde_json::Value =
            resp.json().await.map_err(|e| InferenceError::Stream(e.without_url().to_string()))?;
        if !status.is_success() {
            return Err(upstream(status.as_u16(), &body));
        }
        let served = body["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_string)).collect::<Vec<_>>());
        let served = served.unwrap_or_default();
        Ok(if self.config.allowed_models.is_empty() {
            served
        } else {
            served.into_iter().filter(|m| self.config.allowed_models.contains(m)).collect()
        })
    }

    async fn pick_model(&self, requested: &str) -> Result<String, InferenceError> {
        let wanted = if requested.is_empty() { self.config.default_model.clone() } else { Some(requested.to_string()) };
        if let Some(m) = &wanted
            && !self.config.allowed_models.is_empty()
            && !self.config.allowed_models.contains(m)
        {
            return Err(InferenceError::ModelNotAllowed(m.clone(), self.config.allowed_models.join(", ")));
        }
        match wanted {
            Some(m) => Ok(m),
            None => {
                let served = self.models().await?;
                served
                    .first()
                    .cloned()
                    .ok_or_else(|| InferenceError::ModelNotAllowed("(default)".into(), "none".into()))
            }
        }
    }

    /// Generates an answer for `spec`, streaming it to `output` as stdout chunks.
    ///
    /// # Errors
    /// [`InferenceError`] when the job cannot run at all; timeouts and cancellation are outcomes, not errors.
    pub async fn run(
        &self,
        spec: &InferenceSpec,
        cancel: CancellationToken,
        output: mpsc::Sender<OutputChunk>,
    ) -> Result<InferenceOutcome, InferenceError> {
        let start = Instant::now();
        let model = self.pick_model(&spec.model).await?;
        let body = request_body(spec, &model);
        let deadline = start + Duration::from_secs(spec.timeout_s.max(1));
        let send = self.request(self.http.post(self.url("/v1/chat/completions"))).json(&body).send();
        let resp = tokio::select! {
            r = send => r.map_err(|e| InferenceError::Unreachable(self.config.base_url.clone(), e.without_url().to_string()))?,
            () = cancel.cancelled() => return Ok(outcome(InferenceEnd::Cancelled, start, 0, None, model, calls::Calls::default())),
            () = tokio::time::sleep_until(deadline.into()) => return Ok(outcome(InferenceEnd::Timeout, start, 0, None, model, calls::Calls::default())),
        };
        let status = resp.status();
        if !status.is_success() {
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            return Err(upstream(status.as_u16(), &body));
        }
        let mut stream = resp.bytes_stream();
        let mut sink = Sink { tx: output, seq: 0, buf: String::new(), last: None, bytes: 0 };
        let mut pending = String::new();
        let mut usage = None;
        let mut tools = calls::Calls::default();
        loop {
            let next = tokio::select! {
                n = stream.next() => n,
                () = cancel.cancelled() => {
                    sink.flush().await;
                    return Ok(outcome(InferenceEnd::Cancelled, start, sink.bytes, usage, model, tools));
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    sink.flush().await;
                    return Ok(outcome(InferenceEnd::Timeout, start, sink.bytes, usage, model, tools));
                }
            };
            let Some(piece) = next else { break };
            let piece = piece.map_err(|e| InferenceError::Stream(e.without_url().to_string()))?;
            pending.push_str(&String::from_utf8_lossy(&piece));
            while let Some(end) = pending.find('\n') {
                let line = pending[..end].trim().to_string();
                pending.drain(..=end);
                let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
                if data == "[DONE]" {
                    sink.flush().await;
                    return Ok(outcome(InferenceEnd::Completed, start, sink.bytes, usage, model, tools));
                }
                let event: serde_json::Value =
                    serde_json::from_str(data).map_err(|_| InferenceError::Stream("unreadable event".into()))?;
                let choice = &event["choices"][0];
                if let Some(text) = choice["delta"]["content"].as_str() {
                    sink.push(text).await;
                }
                if let Some(deltas) = choice["delta"]["tool_calls"].as_array() {
                    tools.push(deltas);
                }
                if let (Some(p), Some(c)) =
                    (event["usage"]["prompt_tokens"].as_u64(), event["usage"]["completion_tokens"].as_u64())
                {
                    usage = Some(Usage { prompt_tokens: p, completion_tokens: c });
                }
            }
        }
        sink.flush().await;
        Ok(outcome(InferenceEnd::Completed, start, sink.bytes, usage, model, tools))
    }
}

/// The chat-completions request for `spec`: its conversation (or the prompt with an optional system message),
/// and its tools with `tool_choice` when it has any.
fn request_body(spec: &InferenceSpec, model: &str) -> serde_json::Value {
    let messages = if spec.messages.is_empty() {
        let mut messages = Vec::new();
        if let Some(system) = &spec.system {
            messages.push(serde_json::json!({ "role": "system", "content": system }));
        }
        messages.push(serde_json::json!({ "role": "user", "content": spec.prompt }));
        messages
    } else {
        spec.messages.iter().map(wire_message).collect()
    };
    let mut body = serde_json::json!({
        "model": model,
        "messages": messages,
        "max_tokens": spec.max_tokens,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    if !spec.tools.is_empty() {
        body["tools"] = serde_json::Value::Array(spec.tools.clone());
        body["tool_choice"] = spec.tool_choice.clone().unwrap_or_else(|| "auto".into());
    }
    body
}

/// One message as the chat-completions API takes it (tool calls in their `function` envelope). `content` is always
/// a string: llama-cpp-python's server refuses `null` (and fails on a missing one) where OpenAI allows it.
fn wire_message(m: &cynode_protocol::ChatMessage) -> serde_json::Value {
    let mut v = serde_json::json!({ "role": m.role, "content": m.content.clone().unwrap_or_default() });
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments },
                })
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = id.clone().into();
    }
    v
}

fn outcome(
    end: InferenceEnd,
    start: Instant,
    bytes: u64,
    usage: Option<Usage>,
    model: String,
    tools: calls::Calls,
) -> InferenceOutcome {
    InferenceOutcome { end, duration: start.elapsed(), output_bytes: bytes, usage, model, tool_calls: tools.finish() }
}

fn upstream(status: u16, body: &serde_json::Value) -> InferenceError {
    // An authentication failure's message may repeat (part of) the key that was sent, as OpenAI's does: it is
    // never passed on.
    if status == 401 || status == 403 {
        let detail = "the server refused the API key (check the key configured for it)".to_string();
        return InferenceError::Upstream { status, detail };
    }
    let msg = body["error"]["message"].as_str().or_else(|| body["error"].as_str()).unwrap_or("no detail");
    InferenceError::Upstream { status, detail: msg.chars().take(200).collect() }
}

/// Coalesces tokens into chunks: the first token at once, then at most one chunk per 50 ms.
struct Sink {
    tx: mpsc::Sender<OutputChunk>,
    seq: u64,
    buf: String,
    last: Option<Instant>,
    bytes: u64,
}

impl Sink {
    async fn push(&mut self, text: &str) {
        self.bytes += text.len() as u64;
        self.buf.push_str(text);
        let due = self.last.is_none_or(|t| t.elapsed() >= FLUSH_EVERY);
        if due || self.buf.len() >= MAX_CHUNK {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let data = std::mem::take(&mut self.buf).into_bytes();
        let chunk = OutputChunk { stream: OutputStream::Stdout, seq: self.seq, data };
        self.seq += 1;
        self.last = Some(Instant::now());
        let _ = self.tx.send(chunk).await;
    }
}
