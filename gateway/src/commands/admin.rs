//! `cynode admin token|node-key|install …`: API tokens, node keys and installs, managed directly in the database
//! (tokens are needed before any API call). The database is `DATABASE_URL`, else the embedded PostgreSQL of a running `cynode up` in the data
//! directory.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use cynode_orchestrator::admin;
use cynode_orchestrator::api_tokens::{self, Role};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::cli::{AdminCommand, InstallCommand, NodeKeyCommand, TokenCommand};
use crate::config::Config;

/// Name of the local admin token file in the data directory (mode 0600), written by `cynode up`.
pub const LOCAL_TOKEN_FILE: &str = "api.token";
/// Name of the local admin token.
pub const LOCAL_TOKEN_NAME: &str = "local-admin";

/// The local admin API token of a one-machine install: read from `data_dir/api.token`, or created (global,
/// role admin, named `local-admin`) and written there with mode 0600 on first use. If a token of that name
/// exists in the database but its file was lost, that token is revoked and replaced.
///
/// # Errors
/// Store failures, or the file cannot be written.
pub async fn ensure_local_token(pool: &PgPool, data_dir: &Path) -> anyhow::Result<SecretString> {
    let path = data_dir.join(LOCAL_TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = SecretString::from(t.trim().to_string());
        if api_tokens::verify(pool, t.expose_secret()).await?.is_some() {
            return Ok(t);
        }
        std::fs::remove_file(&path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    if api_tokens::list(pool).await?.iter().any(|t| t.name == LOCAL_TOKEN_NAME && t.revoked_at.is_none()) {
        api_tokens::revoke(pool, "cynode-up", LOCAL_TOKEN_NAME).await?;
    }
    let created = api_tokens::create(pool, "cynode-up", LOCAL_TOKEN_NAME, None, Role::Admin).await?;
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(created.token.expose_secret().as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(created.token)
}

/// Connects to `DATABASE_URL`, else to the embedded PostgreSQL of a `cynode up` running on `data_dir`.
pub(crate) async fn database(config: &Config, data_dir: &Path) -> anyhow::Result<PgPool> {
    if let Some(url) = &config.database.url {
        return super::connect(config, url).await;
    }
    let password = std::fs::read_to_string(data_dir.join("pg.password"));
    let pid = std::fs::read_to_string(data_dir.join("pg/postmaster.pid"));
    let port = pid.ok().and_then(|p| p.lines().nth(3).map(|l| l.trim().to_string()));
    let (Ok(password), Some(port)) = (password, port) else {
        anyhow::bail!(
            "no database: set DATABASE_URL, or run this next to a running `cynode up` (no embedded PostgreSQL is \
             running in {})",
            data_dir.display()
        );
    };
    let url = SecretString::from(format!("postgres://postgres:{}@127.0.0.1:{port}/cynode", password.trim()));
    super::connect(config, &url).await
}

/// Runs `cynode admin …`.
///
/// # Errors
/// Any failure, phrased for the user.
pub async fn run(cmd: AdminCommand, config: &Config, data_dir: &Path) -> anyhow::Result<()> {
    let pool = database(config, data_dir).await?;
    let actor = "cli";
    match cmd {
        AdminCommand::Token(TokenCommand::Create { name, role, install, json }) => {
            let role = Role::parse(&role).context("--role is admin, operator or viewer")?;
            let created = api_tokens::create(&pool, actor, &name, install, role).await?;
            if json {
                let mut v = serde_json::to_value(&created.info)?;
                v["token"] = serde_json::Value::String(created.token.expose_secret().to_string());
                println!("{v}");
            } else {
                println!("{}", created.token.expose_secret());
                eprintln!(
                    "created API token `{name}` ({}, {}); it is shown only now — store it, e.g. export CYNODE_TOKEN=…",
                    role.as_str(),
                    install.map_or_else(|| "all installs".to_string(), |i| format!("install {i}"))
                );
            }
        }
        AdminCommand::Token(TokenCommand::List { json }) => {
            let tokens = api_tokens::list(&pool).await?;
            if json {
                println!("{}", serde_json::to_string(&tokens)?);
            } else {
                println!("{:<36}  {:<20}  {:<8}  {:<10}  LAST USED", "ID", "NAME", "ROLE", "STATE");
                for t in tokens {
                    let state = if t.revoked_at.is_some() { "revoked" } else { "live" };
                    let used = t.last_used_at.map_or_else(|| "never".to_string(), |d| d.to_rfc3339());
                    println!("{:<36}  {:<20}  {:<8}  {:<10}  {used}", t.id, t.name, t.role, state);
                }
            }
        }
        AdminCommand::Token(TokenCommand::Revoke { token }) => {
            let t = api_tokens::revoke(&pool, actor, &token).await?;
            println!("revoked API token `{}` ({})", t.name, t.id);
        }
        AdminCommand::NodeKey(c) => node_key(&pool, actor, c).await?,
        AdminCommand::Install(c) => install(&pool, actor, c).await?,
        AdminCommand::Role(c) => super::team::role(&pool, actor, c).await?,
    }
    pool.close().await;
    Ok(())
}

async fn node_key(pool: &PgPool, actor: &str, cmd: NodeKeyCommand) -> anyhow::Result<()> {
    match cmd {
        NodeKeyCommand::Create { name, executors, json } => {
            let created = admin::create_node_key(pool, actor, &name, &executors).await?;
            if json {
                let mut v = serde_json::to_value(&created.info)?;
                v["key"] = serde_json::Value::String(created.key.expose_secret().to_string());
                println!("{v}");
            } else {
                println!("{}", created.key.expose_secret());
                eprintln!(
                    "created node key `{name}` (executors: {}); it is shown only now — start a node with \
                     CYNODE_NODE_KEY=… cynode-node run (or --key-file FILE)",
                    created.info.executors.join(", ")
                );
            }
        }
        NodeKeyCommand::List { json } => {
            let keys = admin::list_node_keys(pool).await?;
            if json {
                println!("{}", serde_json::to_string(&keys)?);
            } else {
                println!("{:<36}  {:<24}  {:<8}  {:>5}  EXECUTORS", "ID", "NAME", "STATE", "NODES");
                for k in keys {
                    let state = if k.revoked_at.is_some() { "revoked" } else { "live" };
                    println!("{:<36}  {:<24}  {state:<8}  {:>5}  {}", k.id, k.name, k.nodes, k.executors.join(","));
                }
            }
        }
        NodeKeyCommand::Revoke { key } => {
            let k = admin::revoke_node_key(pool, actor, &key).await?;
            println!("revoked node key `{}` ({}); its {} node(s) get no new jobs", k.name, k.id, k.nodes);
        }
    }
    Ok(())
}

async fn install(pool: &PgPool, actor: &str, cmd: InstallCommand) -> anyhow::Result<()> {
    let (target, enable) = match cmd {
        InstallCommand::List { json } => {
            let installs = admin::list_installs(pool).await?;
            if json {
                println!("{}", serde_json::to_string(&installs)?);
            } else if installs.is_empty() {
                println!("No installs. Add them in the bootstrap file (see docs/configuration.md).");
            } else {
                println!(
                    "{:<36}  {:<9}  {:<20}  {:<24}  {:<8}  TASKS",
                    "ID", "PLATFORM", "NAME", "EXTERNAL ID", "STATE"
                );
                for i in installs {
                    let state = if i.enabled { "enabled" } else { "disabled" };
                    println!(
                        "{:<36}  {:<9}  {:<20}  {:<24}  {state:<8}  {}",
                        i.id, i.platform, i.name, i.external_id, i.tasks
                    );
                }
            }
            return Ok(());
        }
        InstallCommand::Disable { install } => (install, false),
        InstallCommand::Enable { install } => (install, true),
    };
    let i = admin::set_install_enabled(pool, actor, &target, enable).await?;
    let what = if enable { "enabled" } else { "disabled" };
    println!("{what} {} install `{}` ({}); gateways notice within their install cache time", i.platform, i.name, i.id);
    Ok(())
}
