//! The HTTP server: shared state, the router with its middleware, and graceful serving.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use cynode_adapters::{Clock, SystemClock};
use cynode_orchestrator::agent::spawn_agent_worker;
use cynode_orchestrator::commands::{CommandSettings, Commands};
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::dispatch::{DispatchSettings, Dispatcher};
use cynode_orchestrator::inbound::{Recorder, spawn_interpreter};
use cynode_orchestrator::installs::Installs;
use cynode_orchestrator::memory::worker::spawn_memory_worker;
use cynode_orchestrator::memory::{Embedder, EmbedderSource, HttpEmbedder, JobEmbedder, Memories, ProviderEmbedder};
use cynode_orchestrator::nodes::TokenKeys;
use cynode_orchestrator::outbound_guard::OutboundGuard;
use cynode_orchestrator::outbox::{Deliverer, DelivererSettings, Subscriptions};
use cynode_orchestrator::store;
use cynode_orchestrator::stream::{
    DiscordSink, Sinks, SlackSink, StreamRates, StreamSettings, TelegramSink, spawn_stream_worker,
};
use cynode_protocol::paths;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::metrics::{self, Metrics};
use crate::ratelimit::RateLimits;
use crate::routes;
use crate::routes::ingress::{self, Ingress, IngressSettings};

mod conn;

pub use conn::{ServeSettings, serve, serve_with};

/// State shared by every handler. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The store.
    pub pool: PgPool,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Hands jobs to nodes.
    pub dispatcher: Arc<Dispatcher>,
    /// Executes commands.
    pub commands: Commands,
    /// Issues and verifies node tokens.
    pub tokens: TokenKeys,
    /// Platform ingress: install lookups, the group-commit recorder, rate limits.
    pub ingress: Arc<Ingress>,
    /// The time verifiers check signed timestamps against (tests swap in a `ManualClock`).
    pub clock: Arc<dyn Clock>,
    /// Outbound webhook subscriptions (management API of the outbox).
    pub subscriptions: Subscriptions,
}

/// What the orchestrator side of a gateway needs besides the pool.
#[derive(Debug, Clone, Default)]
pub struct CoreSettings {
    /// Lease and polling timing.
    pub dispatch: DispatchSettings,
    /// Command defaults.
    pub commands: CommandSettings,
    /// Platform ingress.
    pub ingress: IngressSettings,
    /// Where this gateway is reachable (listen address, public URL): webhook subscriptions may not point there.
    pub deny_hosts: Vec<String>,
    /// Which addresses outbound requests to tenant-set URLs (webhook receivers) may reach: by default no
    /// internal one (`outbound.allow_cidrs` opens ranges).
    pub outbound: OutboundGuard,
    /// Memory: the embedder (if any) and the memory settings.
    pub memory: MemoryCore,
    /// Streaming replies into threads.
    pub stream: StreamSettings,
    /// Post and edit Slack replies instead of streaming live output with `chat.startStream/appendStream/
    /// stopStream` (`stream.slack_streaming: false`).
    pub disable_slack_streaming: bool,
    /// Connections of the stream worker's own pool (`database.stream_connections`; 0: [`STREAM_CONNECTIONS`]).
    pub stream_connections: u32,
    /// Signs a checkpoint of the audit chain head at this interval (`security.audit_signing_key`).
    pub audit_checkpoints: Option<(cynode_orchestrator::audit::CheckpointKey, Duration)>,
}

/// Memory settings for the core: the embedder's configuration (None: keyword recall only) and the rest.
#[derive(Debug, Clone, Default)]
pub struct MemoryCore {
    /// The embedder (reached through the outbound guard).
    pub embedder: Option<cynode_orchestrator::memory::EmbedderSource>,
    /// Embed with `embed` jobs on the inference nodes instead (`memory.embedder = "nodes"`).
    pub node_embedder: Option<cynode_orchestrator::memory::JobEmbedderConfig>,
    /// Retention, decay, MMR, HNSW search width.
    pub settings: cynode_orchestrator::memory::MemorySettings,
}
/// How often refused platform requests are written to the audit log (one entry per platform and reason).
pub const AUDIT_REFUSALS_EVERY: Duration = Duration::from_secs(10);

/// Default size of the stream worker's pool. Replies are background work: however many streams are open, the
/// worker keeps at most this many database server processes busy, so a reply backlog cannot starve the ingress
/// writers (which have their own connections) of the database's cores.
pub const STREAM_CONNECTIONS: u32 = 4;

impl AppState {
    /// Builds the state and starts the background loops (dispatcher, ingress writers, interpreter, rate-limit
    /// eviction), which stop when `shutdown` fires.
    ///
    /// `master_key` decrypts install secrets; callers validate it first (`serve` and `up` refuse a bad key). An
    /// invalid key is logged and leaves every install undecryptable, so platform requests are refused.
    pub fn start(
        pool: PgPool,
        master_key: &SecretString,
        settings: CoreSettings,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let dispatcher = Dispatcher::new(pool.clone(), settings.dispatch);
        dispatcher.spawn_background(shutdown.clone());
        let on_nodes = settings.memory.node_embedder.clone().and_then(|config| {
            match JobEmbedder::new(pool.clone(), dispatcher.clone(), config) {
                Ok(e) => {
                    tracing::info!(model = %e.model(), "memory embeds with embed jobs on the inference nodes");
                    Some(Arc::new(e) as Arc<dyn Embedder>)
                }
                Err(e) => {
                    tracing::error!(error = %e, "memory embedder not started; recall is keyword-only");
                    None
                }
            }
        });
        let secrets = SecretBox::from_base64(master_key).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the master key is unusable; platform requests will be refused");
            // A random key opens nothing: fail closed.
            SecretBox::from_base64(&SecretBox::generate_key()).expect("a generated key is valid")
        });
        let embedder = settings.memory.embedder.clone().and_then(|source| {
            let model = source.model().to_owned();
            let built = match source {
                EmbedderSource::Url(config) => {
                    HttpEmbedder::new(config, settings.outbound.clone()).map(|e| Arc::new(e) as Arc<dyn Embedder>)
                }
                EmbedderSource::Provider(choice) => {
                    ProviderEmbedder::new(pool.clone(), secrets.clone(), choice, settings.outbound.clone())
                        .map(|e| Arc::new(e) as Arc<dyn Embedder>)
                }
            };
            match built {
                Ok(e) => {
                    tracing::info!(model = %model, "memory embedder configured");
                    Some(e)
                }
                Err(e) => {
                    tracing::error!(error = %e, "memory embedder not started; recall is keyword-only");
                    None
                }
            }
        });
        // `memory.embedder = "nodes"` and `memory.embedder_url` exclude each other (the configuration says so).
        let embedder = on_nodes.or(embedder);
        let memories = Memories::new(pool.clone(), embedder, settings.memory.settings.clone());
        spawn_memory_worker(memories.clone(), shutdown.clone());
        let commands = Commands::new(pool.clone(), dispatcher.clone(), settings.commands).with_memories(memories);
        let tokens = TokenKeys::derive(master_key.expose_secret().as_bytes());
        let mut subscriptions = Subscriptions::new(pool.clone(), secrets.clone(), settings.deny_hosts)
            .with_guard(settings.outbound.clone());
        let delivery = DelivererSettings { guard: settings.outbound, ..DelivererSettings::default() };
        match Deliverer::new(pool.clone(), secrets.clone(), delivery) {
            Ok(deliverer) => {
                dispatcher.set_outbox_waker(deliverer.waker());
                subscriptions = subscriptions.with_waker(deliverer.waker());
                drop(deliverer.spawn(shutdown.clone()));
            }
            Err(e) => tracing::error!(error = %e, "webhook deliverer not started: cannot build its HTTP client"),
        }
        let s = settings.ingress;
        let stream_installs = Arc::new(Installs::new(pool.clone(), secrets.clone(), s.install_cache_ttl));
        let sinks = stream_sinks(stream_installs, !settings.disable_slack_streaming);
        let connections = match settings.stream_connections {
            0 => STREAM_CONNECTIONS,
            n => n,
        };
        let stream_pool = store::sibling(&pool, connections, "cynode stream");
        spawn_stream_worker(stream_pool, sinks, settings.stream, shutdown.clone());
        let wake = Arc::new(tokio::sync::Notify::new());
        spawn_interpreter(pool.clone(), commands.clone(), wake.clone(), s.interpreter.clone(), shutdown.clone());
        spawn_agent_worker(commands.clone(), shutdown.clone());
        let ingress = Arc::new(Ingress {
            installs: Installs::new(pool.clone(), secrets, s.install_cache_ttl),
            recorder: Recorder::start(&pool, s.recorder.clone(), wake),
            limits: RateLimits::new(s.rate),
            settings: s,
            refusals: Arc::new(cynode_orchestrator::audit::Refusals::default()),
        });
        drop(ingress.refusals.clone().spawn_flusher(pool.clone(), AUDIT_REFUSALS_EVERY, shutdown.clone()));
        drop(cynode_orchestrator::audit::spawn_chainer(pool.clone(), shutdown.clone()));
        if let Some((key, every)) = settings.audit_checkpoints {
            drop(cynode_orchestrator::audit::checkpoint::spawn_checkpoints(pool.clone(), key, every, shutdown.clone()));
        }
        spawn_eviction(&ingress, shutdown);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let metrics = Arc::new(Metrics::default());
        Self { pool, metrics, dispatcher, commands, tokens, ingress, clock, subscriptions }
    }
}

/// The platform sinks of the stream worker: each install's bot token and `api_base_url` come from the store.
/// Slack replies stream live output when `slack_streaming` is on (with a fallback to post and edit).
fn stream_sinks(installs: Arc<Installs>, slack_streaming: bool) -> Sinks {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap_or_default();
    let rates = StreamRates::default();
    Sinks::new()
        .with(Arc::new(SlackSink::new(http.clone(), installs.clone(), rates.slack).with_streaming(slack_streaming)))
        .with(Arc::new(DiscordSink::new(http.clone(), installs.clone(), rates.discord)))
        .with(Arc::new(TelegramSink::new(http, installs, rates.telegram)))
}

/// Evicts idle rate-limit keys every 30 s, so their memory stays bounded by recent activity.
fn spawn_eviction(ingress: &Arc<Ingress>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let ingress = Arc::downgrade(ingress);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {},
                _ = shutdown.changed() => return,
            }
            let Some(ingress) = ingress.upgrade() else { return };
            ingress.limits.retain_recent();
        }
    });
}

/// Router settings.
#[derive(Debug, Clone, Copy)]
pub struct RouterSettings {
    /// Body size cap; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// Builds the router with every route and middleware.
pub fn router(state: AppState, settings: RouterSettings) -> Router {
    let limit = ingress::BodyLimit { max_body_bytes: settings.max_body_bytes, metrics: state.metrics.clone() };
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .route(paths::REGISTER, post(routes::node::register))
        .route(paths::LEASE, post(routes::node::lease))
        .route(paths::HEARTBEAT, post(routes::node::heartbeat))
        .route(paths::OUTPUT, post(routes::node::output))
        .route(paths::FINISH, post(routes::node::finish))
        .route("/slack/events", post(ingress::slack::events))
        .route("/slack/commands", post(ingress::slack::commands))
        .route("/slack/interactions", post(ingress::slack::interactions))
        .route("/discord/interactions", post(ingress::discord::interactions))
        .route("/telegram/{bot}", post(ingress::telegram::webhook))
        .route("/hooks/{endpoint}", post(ingress::webhook::hook))
        .merge(routes::api::router())
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(limit, ingress::payload_too_large))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, settings.request_timeout))
        .with_state(state)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
