//! An in-process gateway on a real socket with a fresh database.

use std::sync::Arc;
use std::time::Duration;

use cynode_gateway::metrics::Metrics;
use cynode_gateway::server::{self, AppState, RouterSettings};
use cynode_tests::TestDb;

pub struct TestApp {
    pub base: String,
    pub db: TestDb,
    pub client: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(RouterSettings { max_body_bytes: 1024 * 1024, request_timeout: Duration::from_secs(10) }).await
    }

    pub async fn spawn_with(settings: RouterSettings) -> Self {
        let db = TestDb::new().await;
        let state = AppState { pool: db.pool.clone(), metrics: Arc::new(Metrics::default()) };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(state, settings);
        tokio::spawn(server::serve(listener, app, async {
            let _ = rx.await;
        }));
        Self { base, db, client: reqwest::Client::new(), _shutdown: tx }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
