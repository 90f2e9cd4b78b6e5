//! Memory's embedder through a configured model provider, by name (`memory.embedder_provider`): the provider's
//! base URL and sealed key, as `cynode admin provider add` stored them, so the operator keeps one copy of the key
//! and rotating it there rotates it here.
//!
//! The provider is looked up again at most every [`RECHECK`]: a changed URL or key takes effect without a
//! restart, and a provider that was removed, disabled, given to one install or stripped of the model makes every
//! embedding fail with a message that says so ([`EmbedError::Misconfigured`]); memories are still stored and the
//! worker embeds them once the provider is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::PgPool;

use super::embed::{EmbedError, Embedder, EmbedderConfig, HttpEmbedder, InputKind, validate_model};
use crate::crypto::SecretBox;
use crate::outbound_guard::OutboundGuard;
use crate::providers;

/// How long a looked-up provider is used before it is looked up again.
pub const RECHECK: Duration = Duration::from_secs(10);

/// Which provider, and how to call it.
#[derive(Debug, Clone)]
pub struct ProviderChoice {
    /// The provider's name.
    pub name: String,
    /// The embedding model (sent, and stored with the vectors); the provider must list it.
    pub model: String,
    /// Send `input_type` (`query`/`passage`).
    pub input_type: bool,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// An [`Embedder`] that calls the provider named in the configuration.
pub struct ProviderEmbedder {
    pool: PgPool,
    secrets: SecretBox,
    choice: ProviderChoice,
    guard: OutboundGuard,
    recheck: Duration,
    current: tokio::sync::Mutex<Option<Current>>,
}

struct Current {
    version: chrono::DateTime<chrono::Utc>,
    checked: Instant,
    client: Arc<HttpEmbedder>,
}

impl std::fmt::Debug for ProviderEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderEmbedder")
            .field("provider", &self.choice.name)
            .field("model", &self.choice.model)
            .finish_non_exhaustive()
    }
}

impl ProviderEmbedder {
    /// An embedder as `choice` says; the provider is looked up at the first call.
    ///
    /// # Errors
    /// An invalid model name ([`validate_model`]).
    pub fn new(pool: PgPool, secrets: SecretBox, choice: ProviderChoice, guard: OutboundGuard) -> Result<Self, String> {
        validate_model(&choice.model)?;
        Ok(Self { pool, secrets, choice, guard, recheck: RECHECK, current: tokio::sync::Mutex::new(None) })
    }

    /// Looks the provider up again after `every` instead of [`RECHECK`] (tests use zero).
    #[must_use]
    pub fn with_recheck(mut self, every: Duration) -> Self {
        self.recheck = every;
        self
    }

    /// The provider's client, looked up again when the last lookup is older than the recheck interval.
    async fn client(&self) -> Result<Arc<HttpEmbedder>, EmbedError> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref()
            && c.checked.elapsed() < self.recheck
        {
            return Ok(c.client.clone());
        }
        let found = providers::for_embedding(&self.pool, &self.secrets, &self.choice.name, &self.choice.model)
            .await
            .map_err(|e| EmbedError::Unreachable(format!("the provider could not be looked up ({e})")));
        let found = match found.and_then(|r| r.map_err(EmbedError::Misconfigured)) {
            Ok(f) => f,
            Err(e) => {
                *current = None;
                return Err(e);
            }
        };
        if let Some(c) = current.as_mut()
            && c.version == found.version
        {
            c.checked = Instant::now();
            return Ok(c.client.clone());
        }
        // The provider's base URL has no `/v1` (CyNode appends `/v1/…` to it, as for its model calls).
        let base = format!("{}/v1", found.base_url.trim_end_matches('/'));
        let base_url = base.parse().map_err(|e| EmbedError::Misconfigured(format!("provider URL: {e}")))?;
        let config = EmbedderConfig {
            base_url,
            api_key: found.api_key,
            model: self.choice.model.clone(),
            input_type: self.choice.input_type,
            timeout: self.choice.timeout,
        };
        let client = Arc::new(HttpEmbedder::new(config, self.guard.clone()).map_err(EmbedError::Misconfigured)?);
        tracing::info!(provider = %self.choice.name, model = %self.choice.model, "memory embedder uses the provider");
        *current = Some(Current { version: found.version, checked: Instant::now(), client: client.clone() });
        Ok(client)
    }
}

impl Embedder for ProviderEmbedder {
    fn model(&self) -> &str {
        &self.choice.model
    }

    fn embed<'a>(&'a self, texts: &'a [String], kind: InputKind) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move { self.client().await?.embed(texts, kind).await })
    }
}
