//! Embed jobs: a batch of texts to the server's OpenAI-compatible `/v1/embeddings`, its answer checked (one
//! vector per input, ordered by `index`, all of one size, finite numbers, within the protocol's bounds).

use std::time::{Duration, Instant};

use cynode_protocol::{EmbedSpec, MAX_EMBED_VALUES, Usage};
use tokio_util::sync::CancellationToken;

use super::{InferenceEnd, InferenceError, InferenceExecutor, upstream};

/// The result of one embed job.
#[derive(Debug, Clone)]
pub struct EmbedOutcome {
    /// How it ended (the vectors only when it completed).
    pub end: InferenceEnd,
    /// Wall-clock time.
    pub duration: Duration,
    /// One vector per input, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read, when the server reports them.
    pub usage: Option<Usage>,
}

impl InferenceExecutor {
    /// Embeds `spec.input` with `spec.model`.
    ///
    /// # Errors
    /// [`InferenceError`] when the job cannot run or the server's answer is unusable; timeouts and cancellation
    /// are outcomes, not errors.
    pub async fn embed(&self, spec: &EmbedSpec, cancel: CancellationToken) -> Result<EmbedOutcome, InferenceError> {
        let start = Instant::now();
        let model = self.pick_model(&spec.model).await?;
        let mut body = serde_json::json!({ "model": model, "input": spec.input, "encoding_format": "float" });
        if let Some(t) = spec.input_type {
            body["input_type"] = t.as_str().into();
        }
        let ended = |end| EmbedOutcome { end, duration: start.elapsed(), vectors: Vec::new(), usage: None };
        let deadline = start + Duration::from_secs(spec.timeout_s.max(1));
        let call = async {
            let resp =
                self.request(self.http.post(self.url("/v1/embeddings"))).json(&body).send().await.map_err(|e| {
                    InferenceError::Unreachable(self.config.base_url.clone(), e.without_url().to_string())
                })?;
            let status = resp.status();
            let text = resp.text().await.map_err(|e| InferenceError::Stream(e.without_url().to_string()))?;
            if !status.is_success() {
                return Err(upstream(status.as_u16(), &serde_json::from_str(&text).unwrap_or_default()));
            }
            Ok(text)
        };
        let text = tokio::select! {
            r = call => r?,
            () = cancel.cancelled() => return Ok(ended(InferenceEnd::Cancelled)),
            () = tokio::time::sleep_until(deadline.into()) => return Ok(ended(InferenceEnd::Timeout)),
        };
        let (vectors, usage) = parse(&text, spec.input.len()).map_err(InferenceError::BadAnswer)?;
        Ok(EmbedOutcome { end: InferenceEnd::Completed, duration: start.elapsed(), vectors, usage })
    }
}

/// The vectors of an OpenAI-style answer (`data[].embedding`, ordered by `index`), `n` of them, all of one
/// non-zero size, finite, at most [`MAX_EMBED_VALUES`] numbers in all; and the prompt tokens, when reported.
pub(crate) fn parse(text: &str, n: usize) -> Result<(Vec<Vec<f32>>, Option<Usage>), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| "the answer is not JSON".to_owned())?;
    let data = v["data"].as_array().ok_or("the answer has no `data` array")?;
    if data.len() != n {
        return Err(format!("the server returned {} vectors for {n} texts", data.len()));
    }
    let mut out: Vec<Option<Vec<f32>>> = vec![None; n];
    for (pos, item) in data.iter().enumerate() {
        let idx = match &item["index"] {
            serde_json::Value::Null => pos,
            i => i.as_u64().and_then(|i| usize::try_from(i).ok()).ok_or("an `index` that is not a number")?,
        };
        let slot = out.get_mut(idx).ok_or_else(|| format!("`index` {idx} is out of range for {n} texts"))?;
        if slot.is_some() {
            return Err(format!("`index` {idx} appears twice"));
        }
        let arr = item["embedding"].as_array().ok_or("an `embedding` that is not an array of numbers")?;
        #[expect(clippy::cast_possible_truncation, reason = "vector components are f32 by design")]
        let vec: Option<Vec<f32>> = arr.iter().map(|x| x.as_f64().map(|f| f as f32)).collect();
        let vec = vec.ok_or("an `embedding` that is not an array of numbers")?;
        if vec.is_empty() {
            return Err(format!("vector {idx} is empty"));
        }
        if vec.iter().any(|x| !x.is_finite()) {
            return Err(format!("vector {idx} has a number that is not finite"));
        }
        *slot = Some(vec);
    }
    let out: Vec<Vec<f32>> = out.into_iter().collect::<Option<_>>().ok_or("a vector is missing")?;
    let dims = out.first().map_or(0, Vec::len);
    if let Some(i) = out.iter().position(|v| v.len() != dims) {
        return Err(format!("vector {i} has {} dimensions, vector 0 has {dims}", out[i].len()));
    }
    if n * dims > MAX_EMBED_VALUES {
        return Err(format!(
            "{n} vectors of {dims} dimensions are more than the {MAX_EMBED_VALUES} numbers one embed job may \
             return; embed fewer texts per job"
        ));
    }
    let usage = v["usage"]["prompt_tokens"].as_u64().map(|p| Usage { prompt_tokens: p, completion_tokens: 0 });
    Ok((out, usage))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn answers_are_checked() {
        let ok = r#"{"data":[{"index":1,"embedding":[0.0,1.0]},{"index":0,"embedding":[1.0,0.0]}],
                     "usage":{"prompt_tokens":7,"total_tokens":7}}"#;
        let (v, u) = parse(ok, 2).expect("ok");
        assert_eq!(v, vec![vec![1.0, 0.0], vec![0.0, 1.0]], "ordered by index");
        assert_eq!(u.map(|u| u.prompt_tokens), Some(7));
        let err = |t: &str, n| parse(t, n).expect_err("bad");
        assert!(err(ok, 3).contains("2 vectors for 3 texts"));
        assert!(err("<html>", 1).contains("not JSON"));
        assert!(err(r#"{"data":[{"embedding":"AAAA"}]}"#, 1).contains("not an array"));
        assert!(err(r#"{"data":[{"embedding":[1.0]},{"embedding":[1.0,2.0]}]}"#, 2).contains("1 has 2 dimensions"));
        assert!(err(r#"{"data":[{"embedding":[]}]}"#, 1).contains("empty"));
        assert!(err(r#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[1]}]}"#, 2).contains("twice"));
        assert!(err(r#"{"data":[{"index":5,"embedding":[1]}]}"#, 1).contains("out of range"));
        assert!(err(r#"{"data":[{"embedding":[1e39]}]}"#, 1).contains("not finite"), "overflows f32");
        let big = format!(r#"{{"data":[{{"embedding":[{}]}}]}}"#, vec!["0.5"; 65_537].join(","));
        assert!(err(&big, 1).contains("65536 numbers"));
    }
}
