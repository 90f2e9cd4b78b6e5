//! `cynode up`: one machine, zero set-up.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};

use super::{bind, connect, import_bootstrap};
use crate::config::Config;
use crate::server;
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::store::{
    self,
    embedded::{EmbeddedOptions, EmbeddedPostgres, Ownership, effective_uid},
};

fn progress(line: &str) {
    eprintln!("cynode: {line}");
}

pub(super) async fn up(config: Config) -> anyhow::Result<()> {
    let listener = bind(config.listen).await?;
    let is_root = effective_uid() == 0;
    let data_dir = config.data_dir(is_root);
    let embedded = match &config.database.url {
        Some(_) => None,
        None => {
            let opts = EmbeddedOptions {
                data_dir: data_dir.clone(),
                pg_bin: config.embedded.pg_bin.clone(),
                cache_dir: config.cache_dir(is_root),
                server_user: config.embedded.server_user.clone().unwrap_or_else(|| "cynode".into()),
                ownership: Ownership::Exclusive,
            };
            progress(&format!("starting the embedded PostgreSQL in {}", data_dir.display()));
            Some(EmbeddedPostgres::start(&opts, &progress).await?)
        }
    };
    let result = match &embedded {
        Some(pg) => match ensure_database(pg, "cynode").await {
            Ok(()) => run(SecretString::from(pg.url("cynode")), config, listener, &data_dir, embedded.as_ref()).await,
            Err(e) => Err(e),
        },
        None => {
            let url = config.database.url.clone().unwrap_or_else(|| SecretString::from(String::new()));
            run(url, config, listener, &data_dir, None).await
        }
    };
    if let Some(pg) = embedded {
        progress("stopping the embedded PostgreSQL");
        if let Err(e) = pg.stop().await {
            eprintln!("cynode: {e}");
        }
    }
    result
}

async fn run(
    url: SecretString,
    config: Config,
    listener: tokio::net::TcpListener,
    data_dir: &Path,
    embedded: Option<&EmbeddedPostgres>,
) -> anyhow::Result<()> {
    let pool = connect(&config, &url).await?;
    store::migrate(&pool).await?;
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let key = match &config.security.master_key {
        Some(k) => k.clone(),
        None => local_master_key(data_dir)?,
    };
    let secrets = SecretBox::from_base64(&key)?;
    import_bootstrap(&config, &pool, &secrets).await?;
    // The local console channel: `cynode say` finds this admin token in the data directory.
    super::admin::ensure_local_token(&pool, data_dir).await?;
    let addr = listener.local_addr()?;
    let readiness = store::readiness(&pool).await?;
    println!("CyNode is up.");
    println!("  gateway    http://{addr}  (health: /healthz, readiness: /readyz, metrics: /metrics)");
    match embedded {
        Some(pg) => println!(
            "  database   embedded PostgreSQL 18 + pgvector {} in {} (psql -h {} -p {} -U postgres cynode)",
            readiness.pgvector.as_deref().unwrap_or("?"),
            pg.pgdata().display(),
            pg.socket_dir().display(),
            pg.port()
        ),
        None => println!("  database   external PostgreSQL from DATABASE_URL"),
    }
    let _ = std::io::stdout().flush();
    // Serve first: the local node registers over loopback with this very gateway. On Ctrl-C the node stops
    // before the gateway, so jobs it cancels are still reported; a failed node start stops the gateway.
    let (node_tx, node_rx) = tokio::sync::oneshot::channel::<Option<super::local_node::LocalNode>>();
    let (abort_tx, abort_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            () = server::shutdown_signal() => {}
            Ok(()) = abort_rx => {}
        }
        if let Ok(Some(node)) = node_rx.await {
            node.stop().await;
        }
    };
    let serve = super::run_gateway(listener, pool.clone(), &config, &key, shutdown);
    let (config_ref, pool_ref, secrets_ref) = (&config, &pool, &secrets);
    let start_node = async move {
        match super::local_node::start(config_ref, pool_ref, secrets_ref, data_dir, &format!("http://{addr}")).await {
            Ok(node) => {
                let me = self_command(std::env::current_exe().ok().as_deref(), std::env::var_os("PATH").as_deref());
                println!(
                    "  try        {me} say \"run echo hi\"      (streams the reply here; `{me} say help` lists commands)"
                );
                println!("             curl http://{addr}/readyz");
                println!("  stop       Ctrl-C (the embedded PostgreSQL stops with it)");
                let _ = std::io::stdout().flush();
                let _ = node_tx.send(node);
                Ok(())
            }
            Err(e) => {
                let _ = node_tx.send(None);
                let _ = abort_tx.send(());
                Err(e)
            }
        }
    };
    let (served, started) = tokio::join!(serve, start_node);
    started?;
    served
}

/// How to run this very binary from a shell, as the hint shows it: `cynode` when that name on `PATH` is this
/// executable, otherwise its full path (someone who ran `cargo run --bin cynode -- up` has no `cynode` on
/// `PATH`), quoted when it needs to be.
fn self_command(exe: Option<&Path>, path: Option<&std::ffi::OsStr>) -> String {
    let Some(exe) = exe else { return "cynode".into() };
    let me = std::fs::canonicalize(exe).unwrap_or_else(|_| exe.to_path_buf());
    let on_path = path
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("cynode"))
        .any(|candidate| std::fs::canonicalize(&candidate).is_ok_and(|c| c == me));
    if on_path {
        return "cynode".into();
    }
    let shown = me.display().to_string();
    if shown.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)) {
        shown
    } else {
        format!("'{}'", shown.replace('\'', r"'\''"))
    }
}

async fn ensure_database(pg: &EmbeddedPostgres, name: &str) -> anyhow::Result<()> {
    let admin = store::connect(&pg.url("postgres"), &store::PoolSettings::default()).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&admin)
        .await?;
    if !exists {
        // The name is a constant of ours, not user input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&admin).await?;
    }
    admin.close().await;
    Ok(())
}

/// The master key kept in the data directory for single-machine use, created on first start.
fn local_master_key(data_dir: &Path) -> anyhow::Result<SecretString> {
    let path = data_dir.join("master.key");
    if let Ok(k) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(k.trim().to_string()));
    }
    let key = SecretBox::generate_key();
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(key.expose_secret().as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::fs::PermissionsExt as _;

    use super::self_command;

    #[test]
    fn the_hint_names_a_command_that_runs_this_binary() {
        let dir = tempfile::tempdir().expect("dir");
        let bin = dir.path().join("target dir").join("cynode");
        std::fs::create_dir_all(bin.parent().expect("parent")).expect("mkdir");
        std::fs::write(&bin, "").expect("write");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let canonical = std::fs::canonicalize(&bin).expect("canonical").display().to_string();
        // Not on PATH (cargo run): the full path, quoted for the shell.
        let elsewhere = OsString::from("/usr/bin:/bin");
        assert_eq!(self_command(Some(&bin), Some(&elsewhere)), format!("'{canonical}'"));
        // On PATH: the short name.
        let path = std::env::join_paths([std::path::Path::new("/usr/bin"), bin.parent().expect("p")]).expect("join");
        assert_eq!(self_command(Some(&bin), Some(&path)), "cynode");
        assert_eq!(self_command(None, None), "cynode");
    }
}
