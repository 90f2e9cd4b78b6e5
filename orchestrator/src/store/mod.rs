//! The store: one PostgreSQL (with pgvector) behind a connection pool, the schema migrations, and the
//! embedded server for single-machine use.

pub mod embedded;

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The one schema, compiled into the binary from `migrations/`.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Errors opening or migrating the store. Messages never contain passwords.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL does not parse.
    #[error("the database URL is not a valid PostgreSQL URL (expected postgres://USER:PASSWORD@HOST:PORT/DATABASE)")]
    BadUrl,
    /// The server cannot be reached or refuses us.
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Unreachable {
        /// `host:port/database`, without credentials.
        target: String,
        /// What the driver said.
        cause: String,
    },
    /// A migration failed; the database is left as the migrator's transaction left it.
    #[error("migrating the database failed: {0}")]
    Migrate(String),
    /// The `vector` extension is missing from the server.
    #[error(
        "PostgreSQL at {0} has no pgvector extension (CREATE EXTENSION vector failed); install pgvector, or \
         unset DATABASE_URL to use the embedded PostgreSQL"
    )]
    NoPgvector(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Maximum open connections.
    pub max_connections: u32,
    /// How long to wait for a connection (and for the first connect).
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { max_connections: 16, acquire_timeout: Duration::from_secs(5) }
    }
}

/// How long a session may sit idle inside a transaction before PostgreSQL ends it (releasing its locks). CyNode's
/// transactions are meant to wait on nothing but the database, so only a stalled or cut-off process reaches it.
pub const IDLE_IN_TRANSACTION: &str = "15s";

/// Opens a pool and checks the server answers.
///
/// # Errors
/// [`StoreError::BadUrl`] or [`StoreError::Unreachable`] with the target (never the password).
pub async fn connect(url: &str, settings: &PoolSettings) -> Result<PgPool, StoreError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::BadUrl);
    }
    let opts = PgConnectOptions::from_str(url).map_err(|_| StoreError::BadUrl)?;
    let target = format!("{}:{}/{}", opts.get_host(), opts.get_port(), opts.get_database().unwrap_or("postgres"));
    // A replica cut off from the database in the middle of a transaction (a partition, a frozen process) would
    // hold that transaction's row locks until the server notices the dead connection (TCP keepalive: hours),
    // stalling every other replica that needs those rows. The server ends such a session after this long.
    let opts = opts.options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION)]);
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(opts)
        .await
        .map_err(|e| StoreError::Unreachable { target, cause: describe(&e) })
}

fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out (is the server running and reachable?)".to_string(),
        other => other.to_string(),
    }
}

/// A separate, lazily connected pool to the same database as `pool`, with at most `max_connections`
/// connections. Background loops get their own so that however much work they have, they cannot hold every
/// connection of the main pool, and the number of server processes busy on their behalf stays bounded
/// (on a small machine those processes compete with the request path for the same cores). Its connections
/// carry `application_name` `name`, so `pg_stat_activity` shows which loop holds them.
pub fn sibling(pool: &PgPool, max_connections: u32, name: &str) -> PgPool {
    sibling_options(pool, max_connections)
        .connect_lazy_with(pool.connect_options().as_ref().clone().application_name(name))
}

/// The pool options of [`sibling`], for callers that add hooks (e.g. `after_connect`).
pub fn sibling_options(pool: &PgPool, max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .min_connections(0)
        .acquire_timeout(pool.options().get_acquire_timeout())
}

/// Applies every pending migration (safe to run concurrently: the migrator takes an advisory lock).
///
/// # Errors
/// [`StoreError::NoPgvector`] when the server lacks pgvector, [`StoreError::Migrate`] otherwise.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("vector") && text.contains("extension") {
            StoreError::NoPgvector(server_name(pool))
        } else {
            StoreError::Migrate(text)
        }
    })
}

fn server_name(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!("{}:{}", o.get_host(), o.get_port())
}

/// What `/readyz` reports about the store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    /// The newest migration compiled into this binary.
    pub expected_migration: i64,
    /// The newest migration applied to the database, if any.
    pub applied_migration: Option<i64>,
    /// Installed pgvector version, if any.
    pub pgvector: Option<String>,
}

impl Readiness {
    /// Ready: every migration applied and pgvector installed.
    pub fn is_ready(&self) -> bool {
        self.applied_migration == Some(self.expected_migration) && self.pgvector.is_some()
    }
}

/// Checks the database answers, which migrations it has, and whether pgvector is installed.
///
/// # Errors
/// When the database cannot be queried.
pub async fn readiness(pool: &PgPool) -> Result<Readiness, StoreError> {
    let expected_migration = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let has_table: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    let applied_migration = if has_table {
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(pool).await?
    } else {
        None
    };
    let pgvector =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetch_optional(pool).await?;
    Ok(Readiness { expected_migration, applied_migration, pgvector })
}
