//! Set-up shared by the user-API tests: seed data, tokens, and a node driven straight through the dispatcher.

use std::time::Duration;

use cynode_orchestrator::api_tokens::{self, Role};
use cynode_orchestrator::bootstrap::{self, BootstrapFile};
use cynode_orchestrator::crypto::{SecretBox, hash_credential};
use cynode_orchestrator::dispatch::Dispatcher;
use cynode_orchestrator::nodes;
use cynode_protocol::{
    Capabilities, ExecutorKind, FinishRequest, FinishStatus, Lease, LeaseRef, Outcome, OutputBatch, OutputChunk,
    RegisterRequest, Stream,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{MASTER_KEY, TestApp};

/// Templates `busybox` (no network) and `busybox-net` (needs approval by `approver`), one webhook install.
pub const SEED: &str = "
installs:
  - platform: webhook
    name: ci
    endpoint: ci
    scheme: standard
    secrets: [whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw]
templates:
  - name: busybox
    image: cynode/busybox:latest
  - name: busybox-net
    image: cynode/busybox:latest
    network: true
policy:
  - when: { network: true }
    approvers: [approver]
";

pub async fn seed(pool: &PgPool) {
    let file = BootstrapFile::parse(SEED, "test").expect("seed parses");
    let secrets = SecretBox::from_base64(&SecretString::from(MASTER_KEY)).expect("key");
    bootstrap::import(pool, &secrets, &file, "test").await.expect("seed import");
}

pub async fn install_id(pool: &PgPool) -> Uuid {
    sqlx::query_scalar("SELECT id FROM installs WHERE external_id = 'ci'").fetch_one(pool).await.expect("install")
}

pub async fn token(pool: &PgPool, name: &str, role: Role, install: Option<Uuid>) -> String {
    let t = api_tokens::create(pool, "test", name, install, role).await.expect("token");
    t.token.expose_secret().to_string()
}

/// A seeded app with an admin token (`admin`) and an operator token (`op`).
pub struct Api {
    pub app: TestApp,
    pub admin: String,
    pub op: String,
}

impl Api {
    pub async fn spawn() -> Self {
        let app = TestApp::spawn().await;
        seed(&app.db.pool).await;
        let admin = token(&app.db.pool, "admin", Role::Admin, None).await;
        let op = token(&app.db.pool, "op", Role::Operator, None).await;
        Self { app, admin, op }
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.app.client.request(method.parse().expect("method"), self.app.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn submit(&self, token: &str, text: &str) -> Value {
        let (status, body) = self.call("POST", "/v1/tasks", token, Some(serde_json::json!({ "text": text }))).await;
        assert_eq!(status, 201, "{body}");
        body
    }
}

/// A registered sandbox node offering the seeded templates.
pub async fn sandbox_node(pool: &PgPool) -> Uuid {
    let key = format!("node-key-{}", Uuid::new_v4().simple());
    sqlx::query("INSERT INTO node_keys (id, name, key_hash, grants) VALUES ($1, $2, $3, $4)")
        .bind(Uuid::now_v7())
        .bind(format!("k-{key}"))
        .bind(hash_credential(&key))
        .bind(serde_json::json!({ "executors": ["docker"] }))
        .execute(pool)
        .await
        .expect("node key");
    let caps = Capabilities {
        executors: vec![ExecutorKind::Docker],
        templates: vec!["busybox".into(), "busybox-net".into()],
        max_concurrent_jobs: 4,
        ..Capabilities::default()
    };
    let req = RegisterRequest {
        protocol_versions: vec![1],
        name: "test-node".into(),
        capabilities: caps,
        agent_version: None,
    };
    nodes::register(pool, &key, &req).await.expect("register").node_id
}

pub async fn lease(d: &Dispatcher, node: Uuid) -> Lease {
    for _ in 0..50 {
        if let Some(l) = d.lease(node, 1, Duration::from_millis(200)).await.expect("lease").pop() {
            return l;
        }
    }
    panic!("no job to lease");
}

pub fn lease_ref(l: &Lease) -> LeaseRef {
    LeaseRef { job_id: l.job_id, attempt: l.attempt, lease_token: l.lease_token }
}

pub async fn output(d: &Dispatcher, node: Uuid, l: &Lease, seq: u64, data: &str) {
    let chunk = OutputChunk { stream: Stream::Stdout, seq, data: data.into() };
    d.output(node, &OutputBatch { lease: lease_ref(l), chunks: vec![chunk] }).await.expect("output");
}

pub async fn finish(d: &Dispatcher, node: Uuid, l: &Lease, status: FinishStatus, exit: i64) {
    let outcome = Outcome { exit_code: Some(exit), ..Outcome::new(status, 7) };
    d.finish(node, &FinishRequest { lease: lease_ref(l), outcome }).await.expect("finish");
}
