//! `cynode admin token|node-key|install …`: API tokens, node keys and installs, managed directly in the database
//! (tokens are needed before any API call). The database is `DATABASE_URL`, else the embedded PostgreSQL of a running `cynode up` in the data
//! directory.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use cynode_orchestrator::admin;
use cynode_orchestrator::api_tokens::{self, Role};
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::providers;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use crate::cli::{AdminCommand, InstallCommand, NodeKeyCommand, ProviderCommand, TokenCommand};
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
        AdminCommand::Provider(c) => provider(&pool, actor, c, config, data_dir).await?,
        AdminCommand::Role(c) => super::team::role(&pool, actor, c).await?,
        AdminCommand::Team(c) => super::team::team(&pool, actor, c).await?,
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

async fn provider(
    pool: &PgPool,
    actor: &str,
    cmd: ProviderCommand,
    config: &Config,
    data_dir: &Path,
) -> anyhow::Result<()> {
    match cmd {
        ProviderCommand::Add {
            name,
            base_url,
            models,
            key_file,
            install,
            max_concurrent,
            queue_threshold,
            disabled,
        } => {
            let api_key = match key_file {
                None => None,
                Some(path) => Some(read_key(&path)?),
            };
            let spec = providers::ProviderSpec {
                name: name.clone(),
                install,
                base_url,
                api_key,
                models,
                max_concurrent,
                queue_threshold,
                enabled: !disabled,
            };
            let secrets = master_box(config, data_dir)?;
            let mut tx = pool.begin().await?;
            let (id, put) = providers::put(&mut tx, &secrets, &config.outbound.guard(), actor, &spec).await?;
            tx.commit().await?;
            let what = match put {
                providers::Put::Created => "added",
                providers::Put::Updated => "updated",
                providers::Put::Unchanged => "unchanged:",
            };
            println!(
                "{what} provider `{name}` ({id}); every gateway replica serves it within {} s",
                crate::providers::REFRESH.as_secs()
            );
        }
        ProviderCommand::List { json } => {
            let list = providers::list(pool).await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("No providers. Add one with `cynode admin provider add` (see docs/configuration.md).");
            } else {
                println!(
                    "{:<20}  {:<16}  {:<8}  {:<4}  {:>8}  {:<40}  MODELS",
                    "NAME", "INSTALL", "STATE", "KEY", "REPLICAS", "BASE URL"
                );
                for p in list {
                    let state = if p.enabled { "enabled" } else { "disabled" };
                    let key = if p.has_key { "set" } else { "none" };
                    println!(
                        "{:<20}  {:<16}  {state:<8}  {key:<4}  {:>8}  {:<40}  {}",
                        p.name,
                        p.install.as_deref().unwrap_or("(all)"),
                        p.nodes_online,
                        p.base_url,
                        p.models.join(",")
                    );
                }
            }
        }
        ProviderCommand::Remove { name } => {
            providers::remove(pool, actor, &name).await?;
            println!("removed provider `{name}`; its nodes get no new calls");
        }
    }
    Ok(())
}

/// A key from a file (`-`: standard input), trimmed; an empty one is an error.
fn read_key(path: &Path) -> anyhow::Result<SecretString> {
    let raw = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read the key from standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read the key file {}", path.display()))?
    };
    let key = raw.trim();
    anyhow::ensure!(!key.is_empty(), "the key file {} is empty", path.display());
    Ok(SecretString::from(key.to_string()))
}

/// The master key that sealed the stored secrets: `security.master_key`, else the one a `cynode up` keeps in
/// the data directory.
fn master_box(config: &Config, data_dir: &Path) -> anyhow::Result<SecretBox> {
    let key = match &config.security.master_key {
        Some(k) => k.clone(),
        None => {
            let path = data_dir.join("master.key");
            let k = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no master key: set security.master_key (CYNODE__SECURITY__MASTER_KEY) as the gateways have it, \
                     or run this next to the `cynode up` data directory ({} is missing)",
                    path.display()
                )
            })?;
            SecretString::from(k.trim().to_string())
        }
    };
    SecretBox::from_base64(&key).context("the master key is not valid (32 bytes of base64)")
}
