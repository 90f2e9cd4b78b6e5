//! What each subcommand does. Every failure surfaces as one line saying what is wrong and what to do.

pub mod admin;
pub mod client;
mod local_node;
mod logs;
mod memory;
mod nodes;
pub mod say;
mod serve;
mod subs;
mod tasks;
mod up;
mod usage;

use std::net::SocketAddr;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::cli::{Cli, Command, RunArgs};
use crate::config::{Config, Overrides};
use cynode_orchestrator::bootstrap::BootstrapFile;
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::store::{self, PoolSettings};

pub use serve::run_gateway;

/// Runs the parsed command line with the given environment.
///
/// # Errors
/// Any failure, already phrased for the user.
pub async fn run(cli: Cli, env: Vec<(String, String)>) -> anyhow::Result<()> {
    let args = match &cli.command {
        Command::Up(a) | Command::Serve(a) => a,
        Command::Migrate | Command::Keygen => &RunArgs::default(),
        Command::Say(_)
        | Command::Tasks(_)
        | Command::Logs(_)
        | Command::Nodes(_)
        | Command::Usage(_)
        | Command::Subs(_)
        | Command::Memory(_)
        | Command::Admin(_) => &RunArgs::default(),
    };
    let overrides =
        Overrides { listen: args.listen, data_dir: args.data_dir.clone(), bootstrap: args.bootstrap.clone() };
    let config = Config::load(cli.config.as_deref(), env, &overrides)?;
    crate::telemetry::init(config.log.format, &config.log.filter);
    match cli.command {
        Command::Up(_) => up::up(config).await,
        Command::Serve(_) => serve::serve(config).await,
        Command::Migrate => migrate(config).await,
        Command::Keygen => {
            println!("{}", SecretBox::generate_key().expose_secret());
            Ok(())
        }
        c @ (Command::Say(_)
        | Command::Tasks(_)
        | Command::Logs(_)
        | Command::Nodes(_)
        | Command::Usage(_)
        | Command::Subs(_)
        | Command::Memory(_)
        | Command::Admin(_)) => client::dispatch(c, &config).await,
    }
}

async fn migrate(config: Config) -> anyhow::Result<()> {
    let pool = connect(&config, required_url(&config, "cynode migrate")?).await?;
    store::migrate(&pool).await?;
    let r = store::readiness(&pool).await?;
    println!("database is at migration {}", r.applied_migration.unwrap_or(0));
    Ok(())
}

fn required_url<'c>(config: &'c Config, what: &str) -> anyhow::Result<&'c SecretString> {
    config.database.url.as_ref().with_context(|| {
        format!(
            "{what} needs a database: set DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/DATABASE (or \
             database.url in the config file); to try CyNode on one machine, run `cynode up` instead"
        )
    })
}

pub(crate) async fn connect(config: &Config, url: &SecretString) -> anyhow::Result<PgPool> {
    let settings = PoolSettings {
        max_connections: config.database.max_connections,
        acquire_timeout: std::time::Duration::from_secs(config.database.acquire_timeout_s),
    };
    Ok(store::connect(url.expose_secret(), &settings).await?)
}

pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!(
                "cannot listen on {addr}: address already in use by another process; stop it or pass --listen \
                 127.0.0.1:PORT (port 0 picks a free one)"
            )
        } else {
            anyhow::anyhow!("cannot listen on {addr}: {e}; check the address, or pass --listen 127.0.0.1:PORT")
        }
    })
}

/// Imports the configured bootstrap file, if any, and says what changed.
pub(crate) async fn import_bootstrap(config: &Config, pool: &PgPool, secrets: &SecretBox) -> anyhow::Result<()> {
    let Some(path) = &config.bootstrap else { return Ok(()) };
    let file = BootstrapFile::load(path)?;
    let origin = path.display().to_string();
    let report =
        cynode_orchestrator::bootstrap::import_with(pool, secrets, &file, &origin, &config.outbound.guard()).await?;
    eprintln!("cynode: bootstrap {origin}: {report}");
    tracing::info!(bootstrap.created = report.created, bootstrap.updated = report.updated, "bootstrap imported");
    Ok(())
}
