//! An in-process gateway on a real socket with a fresh database.

use std::time::Duration;

use cynode_gateway::server::{self, AppState, CoreSettings, RouterSettings};
use cynode_orchestrator::outbound_guard::OutboundGuard;
use cynode_tests::TestDb;
use secrecy::SecretString;

pub const MASTER_KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJmrw=";

/// The outbound guard with loopback allowed (`outbound.allow_cidrs: [127.0.0.0/8]`).
pub fn loopback() -> OutboundGuard {
    OutboundGuard::allowing(vec!["127.0.0.0/8".parse().expect("cidr")])
}

pub struct TestApp {
    pub base: String,
    pub db: TestDb,
    pub client: reqwest::Client,
    pub state: AppState,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(RouterSettings { max_body_bytes: 1024 * 1024, request_timeout: Duration::from_secs(10) }).await
    }

    /// A gateway whose webhook receivers may be on loopback, where the tests' receivers listen: the
    /// allow-list an operator sets with `outbound.allow_cidrs`.
    pub async fn spawn_with(settings: RouterSettings) -> Self {
        Self::spawn_full(settings, CoreSettings { outbound: loopback(), ..CoreSettings::default() }).await
    }

    pub async fn spawn_full(settings: RouterSettings, mut core: CoreSettings) -> Self {
        let db = TestDb::new().await;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // As `cynode serve` does: subscriptions may not point at this gateway.
        core.deny_hosts.push(addr.to_string());
        let state = AppState::start(db.pool.clone(), &SecretString::from(MASTER_KEY), core, stop_rx);
        let base = format!("http://{addr}");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(state.clone(), settings);
        tokio::spawn(server::serve(listener, app, async {
            let _ = rx.await;
        }));
        Self { base, db, client: reqwest::Client::new(), state, _shutdown: tx, _stop: stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
