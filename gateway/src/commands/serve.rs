//! `cynode serve`: the production process against an external PostgreSQL.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::net::TcpListener;

use super::{bind, connect, import_bootstrap, required_url};
use crate::config::Config;
use crate::server::{self, AppState, RouterSettings};
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::store;

pub(super) async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = bind(config.listen).await?;
    let url = required_url(&config, "cynode serve")?;
    let key = config.security.master_key.as_ref().context(
        "cynode serve needs security.master_key (CYNODE__SECURITY__MASTER_KEY) to encrypt stored secrets; \
         generate one with `cynode keygen` and keep it in your secret store",
    )?;
    let secrets = SecretBox::from_base64(key)?;
    let pool = connect(&config, url).await?;
    store::migrate(&pool).await?;
    import_bootstrap(&config, &pool, &secrets).await?;
    let addr = listener.local_addr()?;
    println!("cynode: serving on http://{addr}");
    run_gateway(listener, pool, &config, key, server::shutdown_signal()).await
}

/// Serves the gateway on `listener` until `shutdown` resolves, then closes the pool.
///
/// # Errors
/// When the server fails.
pub async fn run_gateway(
    listener: TcpListener,
    pool: PgPool,
    config: &Config,
    master_key: &SecretString,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let addr = listener.local_addr()?;
    let mut core = config.core_settings();
    // The bound address (the configured port may be 0) is CyNode itself too.
    core.deny_hosts.push(addr.to_string());
    let state = AppState::start(pool.clone(), master_key, core, stop_rx);
    let settings = RouterSettings {
        max_body_bytes: config.limits.max_body_bytes,
        request_timeout: Duration::from_secs(config.limits.request_timeout_s),
    };
    tracing::info!(listen = %addr, "gateway listening");
    // This replica's provider nodes register over loopback with the gateway itself; on shutdown they stop
    // (cancelling and reporting their calls) before the server does.
    let loopback = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
        ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port())),
        _ => addr,
    };
    let provider_nodes = crate::providers::spawn(
        pool.clone(),
        SecretBox::from_base64(master_key)?,
        config.outbound.guard(),
        format!("http://{loopback}"),
        crate::providers::replica_name(addr.port()),
    );
    let shutdown = async move {
        shutdown.await;
        provider_nodes.stop().await;
    };
    let served = server::serve(listener, server::router(state, settings), shutdown).await;
    let _ = stop_tx.send(true);
    served.context("the HTTP server failed")?;
    pool.close().await;
    Ok(())
}
