//! What the live stream tests share: a chat task whose job is leased to a node, output and finish through the
//! dispatcher as a node would send them, and stream workers started on demand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::dispatch::Dispatcher;
use cynode_orchestrator::installs::Installs;
use cynode_orchestrator::stream::{Sinks, StreamSettings, ThreadSink, spawn_stream_worker};
use cynode_protocol::{FinishRequest, LeaseRef, OutputBatch, OutputChunk, Stream};
use cynode_tests::TestDb;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::support::{dispatcher, host_caps, node};

/// A task with a running job, and what it takes to drive it.
pub struct LiveJob {
    pub pool: PgPool,
    pub secrets: SecretBox,
    pub task: Uuid,
    d: Arc<Dispatcher>,
    node: Uuid,
    lease: LeaseRef,
    _db: TestDb,
}

impl LiveJob {
    /// Leases `job` (of `task`) to a fresh node.
    pub async fn lease(db: TestDb, secrets: SecretBox, task: Uuid, job: Uuid) -> Self {
        let pool = db.pool.clone();
        let d = dispatcher(&pool);
        let n = node(&pool, "n1", host_caps()).await;
        let l = d.lease(n, 1, Duration::from_secs(30)).await.unwrap().remove(0);
        let lease = LeaseRef { job_id: job, attempt: l.attempt, lease_token: l.lease_token };
        Self { pool, secrets, task, d, node: n, lease, _db: db }
    }

    /// Install lookups for a sink.
    pub fn installs(&self) -> Arc<Installs> {
        Arc::new(Installs::new(self.pool.clone(), self.secrets.clone(), Duration::from_secs(30)))
    }

    /// Starts a stream worker with `sink` (polling every 50 ms); it releases its streams when the returned
    /// sender fires.
    pub fn worker(&self, sink: Arc<dyn ThreadSink>, settings: StreamSettings) -> watch::Sender<bool> {
        let (stop, rx) = watch::channel(false);
        let settings = StreamSettings { poll: Duration::from_millis(50), ..settings };
        spawn_stream_worker(self.pool.clone(), Sinks::new().with(sink), settings, rx);
        stop
    }

    pub async fn output(&self, seq: u64, data: &str) {
        let chunk = OutputChunk { stream: Stream::Stdout, seq, data: data.to_owned() };
        self.d.output(self.node, &OutputBatch { lease: self.lease, chunks: vec![chunk] }).await.unwrap();
    }

    pub async fn finish(&self) {
        let outcome = crate::support::succeeded(2000);
        self.d.finish(self.node, &FinishRequest { lease: self.lease, outcome }).await.unwrap();
    }

    pub async fn closed(&self) {
        wait("the stream closes", || async {
            let state: String = sqlx::query_scalar("SELECT state FROM stream_records WHERE task_id = $1")
                .bind(self.task)
                .fetch_one(&self.pool)
                .await
                .unwrap();
            state == "closed"
        })
        .await;
    }
}

/// Polls `f` every 50 ms until it holds (at most 60 s).
pub async fn wait<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
