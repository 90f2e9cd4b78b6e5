//! Memory: what a team told its agent, kept in PostgreSQL with pgvector, scoped, with provenance, recalled by a
//! hybrid of vector and full-text search.
//!
//! - **Scope** ([`Scope`]) decides who sees a memory, and it is enforced in SQL ([`store::VISIBLE`]): every
//!   query that reads memories carries the viewer's install, channel, thread and user as parameters, so no query
//!   can return another install's memory, a channel's memory outside that channel, or someone's private memory.
//! - **Provenance** ([`Provenance`]) says where a memory came from — a user said it, the agent inferred it, a
//!   tool's output, an import, an admin. Only `user`, `import` and `admin` memories are trusted; the model is told
//!   which are which, and a memory the model writes is `agent` at most (`tool` once the turn has read tool
//!   output), so remembered tool output can never pass for something a person said.
//! - **Recall** ([`recall`]) fuses a filtered HNSW kNN (pgvector 0.8 iterative scans, so filters keep their
//!   recall) and a full-text ranking by reciprocal rank fusion, with temporal decay and optional MMR diversity.
//!   Without an embedder it is keyword-only, and says so.
//! - **Embeddings** come from an OpenAI-compatible `/v1/embeddings` endpoint ([`embed`]): a URL, or a configured
//!   model provider by name ([`provider`]); or from the inference nodes as batched `embed` jobs ([`jobs`]).
//!   Memories written while it is down, and memories of an older model, are embedded by a background worker
//!   ([`worker`]), a batch per call.

/// A statement assembled from this module's own fragments: the scope filter's parameter numbers, column lists,
/// and — in recall — the model's dimension (an integer) and name (checked by [`EmbedderConfig::validate`] and
/// quote-escaped). User input is always a bound parameter.
macro_rules! safe_sql {
    ($($t:tt)*) => { sqlx::AssertSqlSafe(format!($($t)*)) };
}

pub mod embed;
pub mod jobs;
pub mod provider;
pub mod recall;
pub mod store;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

pub use embed::{EmbedError, Embedder, EmbedderConfig, EmbedderSource, HttpEmbedder, InputKind};
pub use jobs::{JobEmbedder, JobEmbedderConfig};
pub use provider::{ProviderChoice, ProviderEmbedder};
pub use recall::{Recall, Recalled};
pub use store::{Forget, NewMemory};

/// The longest memory accepted, in characters.
pub const MAX_TEXT: usize = 2_000;

/// Who may see a memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every install of the deployment (written by a deployment admin or an import).
    Shared,
    /// Everyone in the install (writing needs an approver of the install).
    Install,
    /// One channel, any of its threads.
    Channel,
    /// One thread.
    Thread,
    /// One user (private).
    User,
}

impl Scope {
    /// All scopes, widest first.
    pub const ALL: [Scope; 5] = [Scope::Shared, Scope::Install, Scope::Channel, Scope::Thread, Scope::User];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Shared => "shared",
            Scope::Install => "install",
            Scope::Channel => "channel",
            Scope::Thread => "thread",
            Scope::User => "user",
        }
    }

    /// Parses a stored or typed name.
    ///
    /// # Errors
    /// A message naming the scopes there are.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|x| x.as_str() == s.to_ascii_lowercase()).ok_or_else(|| {
            format!("unknown scope `{}`; scopes are shared, install, channel, thread and user", clip(s, 40))
        })
    }
}

/// Where a memory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// A person said it (`remember …`, the API with a user token).
    User,
    /// The agent inferred it (its `remember` tool, before it read any tool output).
    Agent,
    /// It came from tool output (the agent remembered after reading a command's output): untrusted.
    Tool,
    /// An import.
    Import,
    /// An admin wrote it.
    Admin,
}

impl Provenance {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::User => "user",
            Provenance::Agent => "agent",
            Provenance::Tool => "tool",
            Provenance::Import => "import",
            Provenance::Admin => "admin",
        }
    }

    /// Parses a stored name.
    ///
    /// # Errors
    /// A message naming the provenances there are.
    pub fn parse(s: &str) -> Result<Self, String> {
        [Provenance::User, Provenance::Agent, Provenance::Tool, Provenance::Import, Provenance::Admin]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown provenance `{}`", clip(s, 40)))
    }

    /// Whether a person (or an operator) stands behind it. `agent` and `tool` memories are data the model made
    /// or read, never instructions.
    pub fn trusted(self) -> bool {
        matches!(self, Provenance::User | Provenance::Import | Provenance::Admin)
    }
}

/// Who is reading or writing: the install, the place (channel and thread) and the user. Every read of memories
/// is filtered by it in SQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Viewer {
    /// The install (None: the local console, or a global API token).
    pub install_id: Option<Uuid>,
    /// The channel the request came from (None: the API).
    pub channel: Option<String>,
    /// The thread within it ('' when not threaded).
    pub thread: Option<String>,
    /// The user (platform id or API token name).
    pub user: String,
    /// The conversation (for the source of what is written).
    pub conversation_id: Option<Uuid>,
    /// May forget others' memories and write install-wide memory (an approver of the install, or an admin
    /// token).
    pub approver: bool,
}

impl Viewer {
    /// The viewer of a request: its install, requester and — when it came from a conversation — that
    /// conversation's channel and thread; `approver` from the install's policy or the requester's team role.
    ///
    /// # Errors
    /// Store failures.
    pub async fn of(pool: &PgPool, origin: &crate::tasks::Origin) -> Result<Self, sqlx::Error> {
        let place: Option<(String, String)> = match origin.conversation_id {
            Some(c) => {
                sqlx::query_as("SELECT channel, thread FROM conversations WHERE id = $1")
                    .bind(c)
                    .fetch_optional(pool)
                    .await?
            }
            None => None,
        };
        // An approver by the install's policy, or by team role (in this conversation's channel) in chat.
        let by_role = match origin.install_id.filter(|_| origin.source == "chat") {
            Some(install) => {
                let standing = crate::team::standing(pool, install, origin.conversation_id, &origin.requester).await?;
                standing.role >= crate::team::TeamRole::Approver
            }
            None => false,
        };
        let approver = by_role || crate::policy::is_approver(pool, origin.install_id, &origin.requester).await?;
        let (channel, thread) = place.map_or((None, None), |(c, t)| (Some(c), Some(t)));
        Ok(Self {
            install_id: origin.install_id,
            channel,
            thread,
            user: origin.requester.clone(),
            conversation_id: origin.conversation_id,
            approver,
        })
    }
}

/// One stored memory, as a reader sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Id.
    pub id: Uuid,
    /// Scope.
    pub scope: Scope,
    /// The channel (channel and thread scope).
    pub channel: Option<String>,
    /// The thread (thread scope).
    pub thread: Option<String>,
    /// The owner (user scope).
    pub user_id: Option<String>,
    /// Who wrote it.
    pub author: String,
    /// The text.
    pub text: String,
    /// Where it came from.
    pub provenance: Provenance,
    /// Whether a person stands behind it ([`Provenance::trusted`]).
    pub trusted: bool,
    /// Source conversation.
    pub source_conversation: Option<Uuid>,
    /// Source job.
    pub source_job: Option<Uuid>,
    /// Source label (an import's name).
    pub source_label: Option<String>,
    /// Exempt from decay.
    pub pinned: bool,
    /// When it was written.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it expires (retention).
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The model it is embedded with (None: not yet; keyword recall only until the worker embeds it).
    pub embedding_model: Option<String>,
    /// An install-wide memory proposed by someone who is not an approver: recalled by no one until an approver
    /// approves it ([`Memories::review`]).
    #[serde(default)]
    pub awaiting_approval: bool,
}

/// Memory settings (`memory.*` in the configuration).
#[derive(Debug, Clone)]
pub struct MemorySettings {
    /// Retention per scope: memories of a scope expire this long after they were written (None: kept until
    /// forgotten).
    pub retention: Vec<(Scope, Duration)>,
    /// Half-life of the temporal decay in recall (pinned memories do not decay).
    pub half_life: Duration,
    /// Re-rank recall for diversity (maximal marginal relevance) with this λ (1.0: relevance only).
    pub mmr_lambda: Option<f32>,
    /// Candidates each half of hybrid recall contributes.
    pub candidates: i64,
    /// `hnsw.ef_search` for the vector half.
    pub ef_search: i32,
    /// Memories the worker embeds per request.
    pub embed_batch: i64,
    /// How often the worker looks for work when idle.
    pub worker_poll: Duration,
    /// How long a write waits for its embedding before leaving it to the worker.
    pub inline_embed_timeout: Duration,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            retention: Vec::new(),
            half_life: Duration::from_secs(90 * 86_400),
            mmr_lambda: None,
            candidates: 40,
            ef_search: 100,
            embed_batch: 32,
            worker_poll: Duration::from_secs(5),
            inline_embed_timeout: Duration::from_secs(3),
        }
    }
}

/// What went wrong with a memory request. [`MemoryError::Invalid`], [`MemoryError::NotFound`] and
/// [`MemoryError::Forbidden`] are the caller's mistakes (a reply, a 4xx); [`MemoryError::Store`] is ours.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// Bad input: the message says what and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// No memory with that id that the caller can see (another install's ids included).
    #[error("there is no memory `{0}`")]
    NotFound(String),
    /// Visible but not the caller's to change.
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// The memory service: the store, the embedder (if any) and the settings. Cheap to clone.
#[derive(Clone)]
pub struct Memories {
    pool: PgPool,
    embedder: Option<Arc<dyn Embedder>>,
    settings: Arc<MemorySettings>,
}

impl std::fmt::Debug for Memories {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memories")
            .field("embedder", &self.embedder.as_ref().map(|e| e.model().to_owned()))
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Memories {
    /// Memories over `pool`, embedding with `embedder` (None: keyword recall only).
    pub fn new(pool: PgPool, embedder: Option<Arc<dyn Embedder>>, settings: MemorySettings) -> Self {
        Self { pool, embedder, settings: Arc::new(settings) }
    }

    /// The store.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The embedder, if one is configured.
    pub fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        self.embedder.as_ref()
    }

    /// The settings.
    pub fn settings(&self) -> &MemorySettings {
        &self.settings
    }
}

pub(crate) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { format!("{}…", s.chars().take(n).collect::<String>()) }
}
