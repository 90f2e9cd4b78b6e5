//! A shared embedded PostgreSQL for tests and a fresh database per test.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::sync::OnceCell;

use cynode_orchestrator::store::embedded::{EmbeddedOptions, EmbeddedPostgres, Ownership, effective_uid};
use cynode_orchestrator::store::{self, MIGRATOR, PoolSettings};

/// A fresh database with the current schema, on the shared test server.
#[derive(Debug)]
pub struct TestDb {
    /// Pool connected to the fresh database.
    pub pool: PgPool,
    /// Its URL (with the test server's password).
    pub url: String,
    /// Its name.
    pub name: String,
}

struct Server {
    admin_url: String,
    base_url: String,
    template: String,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

/// Where the shared test cluster lives: world-traversable `/tmp`, one per user.
pub fn test_cluster_dir() -> PathBuf {
    std::env::temp_dir().join(format!("cynode-test-pg-{}", effective_uid()))
}

fn cache_dir() -> PathBuf {
    if effective_uid() == 0 {
        return PathBuf::from("/var/cache/cynode");
    }
    match (std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
        (Some(x), _) => PathBuf::from(x).join("cynode"),
        (None, Some(h)) => PathBuf::from(h).join(".cache/cynode"),
        (None, None) => std::env::temp_dir().join("cynode-cache"),
    }
}

async fn server() -> anyhow::Result<&'static Server> {
    SERVER
        .get_or_try_init(|| async {
            let opts = EmbeddedOptions {
                data_dir: test_cluster_dir(),
                pg_bin: std::env::var_os("CYNODE_PG_BIN").map(PathBuf::from),
                cache_dir: cache_dir(),
                server_user: "cynode".into(),
                ownership: Ownership::Shared,
            };
            let pg = EmbeddedPostgres::start(&opts, &|line| eprintln!("test-db: {line}"))
                .await
                .context("starting the shared test PostgreSQL")?;
            let admin_url = pg.url("postgres");
            let base_url = pg.url("");
            let template = format!("cynode_tpl_{}", schema_fingerprint());
            ensure_template(&admin_url, &base_url, &template).await?;
            Ok(Server { admin_url, base_url, template })
        })
        .await
}

/// A short hash of the migrations, so a schema change gets a new template.
fn schema_fingerprint() -> String {
    let mut acc: u64 = 0xcbf2_9ce4_8422_2325;
    for m in MIGRATOR.iter() {
        for b in m.version.to_be_bytes().iter().chain(m.checksum.iter()) {
            acc = (acc ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{acc:016x}")
}

async fn ensure_template(admin_url: &str, base_url: &str, template: &str) -> anyhow::Result<()> {
    let admin = store::connect(admin_url, &PoolSettings::default()).await?;
    let mut conn = admin.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(727272)").execute(&mut *conn).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(template)
        .fetch_one(&mut *conn)
        .await?;
    let result = async {
        if !exists {
            exec(&mut conn, format!("CREATE DATABASE \"{template}_wip\"")).await?;
            let pool = store::connect(&format!("{base_url}{template}_wip"), &PoolSettings::default()).await?;
            store::migrate(&pool).await?;
            pool.close().await;
            exec(&mut conn, format!("ALTER DATABASE \"{template}_wip\" RENAME TO \"{template}\"")).await?;
        }
        prune_old(&mut conn).await
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(727272)").execute(&mut *conn).await?;
    result
}

async fn exec(conn: &mut sqlx::PgConnection, sql: String) -> anyhow::Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await?;
    Ok(())
}

/// Drops test databases older than two hours and half-built templates, so the shared cluster stays small.
async fn prune_old(conn: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 't\\_%' OR datname LIKE '%\\_wip'")
            .fetch_all(&mut *conn)
            .await?;
    let cutoff = now_secs().saturating_sub(2 * 3600);
    for name in names {
        let stamp = name.split('_').nth(1).and_then(|s| s.parse::<u64>().ok());
        if name.ends_with("_wip") || stamp.is_some_and(|s| s < cutoff) {
            let _ = exec(conn, format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        }
    }
    Ok(())
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TestDb {
    /// A fresh, migrated database.
    ///
    /// # Panics
    /// When the shared server cannot be started or the database cannot be created: the test cannot run.
    pub async fn new() -> Self {
        crate::init_test_log();
        Self::try_new().await.unwrap_or_else(|e| panic!("test database: {e:#}"))
    }

    async fn try_new() -> anyhow::Result<Self> {
        let server = server().await?;
        let name = format!("t_{}_{}", now_secs(), uuid::Uuid::new_v4().simple());
        let admin = store::connect(&server.admin_url, &PoolSettings::default()).await?;
        let mut conn = admin.acquire().await?;
        exec(&mut conn, format!("CREATE DATABASE \"{name}\" TEMPLATE \"{}\"", server.template)).await?;
        drop(conn);
        admin.close().await;
        let url = format!("{}{name}", server.base_url);
        let pool = store::connect(&url, &PoolSettings { max_connections: 8, ..PoolSettings::default() }).await?;
        Ok(Self { pool, url, name })
    }

    /// A database that exists but has no schema at all (to test migrations from scratch).
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn empty() -> Self {
        crate::init_test_log();
        let server = server().await.unwrap_or_else(|e| panic!("test database: {e:#}"));
        let name = format!("t_{}_{}", now_secs(), uuid::Uuid::new_v4().simple());
        let admin = store::connect(&server.admin_url, &PoolSettings::default()).await.expect("admin connection");
        let mut conn = admin.acquire().await.expect("admin connection");
        exec(&mut conn, format!("CREATE DATABASE \"{name}\"")).await.expect("create database");
        drop(conn);
        admin.close().await;
        let url = format!("{}{name}", server.base_url);
        let pool = store::connect(&url, &PoolSettings::default()).await.expect("connect");
        Self { pool, url, name }
    }
}
