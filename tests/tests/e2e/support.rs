//! The e2e harness: a real `cynode serve` on a fresh database, real `cynode-node` processes, jobs enqueued
//! through the orchestrator library, and raw HTTP for playing a misbehaving node.

use std::time::Duration;

use cynode_orchestrator::tasks::{NewJob, Origin, create_job, create_task};
use cynode_protocol::{HostSpec, JobSpec, Requirements};
use cynode_tests::{BinProcess, TestDb};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

/// Master key of every test server (32 bytes, base64).
pub const MASTER_KEY: &str = "Y3lub2RlLWUyZS1tYXN0ZXIta2V5LTMyLWJ5dGVzISE=";
/// Node key granting docker and host.
pub const NODE_KEY: &str = "e2e-node-key-0123456789abcdef";
/// Node key granting docker only.
pub const DOCKER_ONLY_KEY: &str = "e2e-docker-only-key-0123456789";
/// Node key granting inference only.
pub const INFERENCE_KEY: &str = "e2e-inference-key-0123456789ab";
/// The sandbox image the docker test builds and the busybox template names.
pub const E2E_IMAGE: &str = "cynode/busybox:e2e";

/// Short dispatch timings, so failures are detected in seconds.
const FAST: &[(&str, &str)] = &[
    ("CYNODE__DISPATCH__LEASE_TTL_MS", "2000"),
    ("CYNODE__DISPATCH__HEARTBEAT_INTERVAL_MS", "500"),
    ("CYNODE__DISPATCH__REAP_INTERVAL_MS", "200"),
    ("CYNODE__DISPATCH__RETRY_BASE_MS", "200"),
];

/// A running orchestrator on its own database.
pub struct Server {
    /// The database (the test's own pool).
    pub db: TestDb,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The process (killed when the test ends).
    _process: BinProcess,
    _dir: tempfile::TempDir,
}

/// One row of `jobs`, as the tests look at it.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// `queued`, `running`, `succeeded`, …
    pub state: String,
    /// Attempt number.
    pub attempt: i32,
    /// Holder.
    pub node_id: Option<Uuid>,
    /// Current fencing token.
    pub lease_token: Option<Uuid>,
    /// Recorded outcome.
    pub result: Option<Value>,
}

impl Server {
    /// Starts `cynode serve` with fast dispatch timings plus `extra` environment.
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        let db = TestDb::new().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let bootstrap = dir.path().join("cynode.yaml");
        std::fs::write(
            &bootstrap,
            format!(
                "node_keys:\n  - {{name: e2e, key: {NODE_KEY}, executors: [docker, host]}}\n  \
                 - {{name: docker-only, key: {DOCKER_ONLY_KEY}, executors: [docker]}}\n  \
                 - {{name: inference, key: {INFERENCE_KEY}, executors: [inference]}}\n\
                 templates:\n  - {{name: busybox, image: \"{E2E_IMAGE}\"}}\n"
            ),
        )
        .expect("write bootstrap");
        let bootstrap = bootstrap.to_str().expect("utf-8 path").to_owned();
        let mut env = vec![("DATABASE_URL", db.url.as_str()), ("CYNODE__SECURITY__MASTER_KEY", MASTER_KEY)];
        env.extend_from_slice(FAST);
        env.extend_from_slice(extra);
        let mut process =
            BinProcess::spawn("cynode", &["serve", "--listen", "127.0.0.1:0", "--bootstrap", &bootstrap], &env);
        let line = process.wait_for("serving on http://", Duration::from_secs(60)).await;
        let start = line.find("http://").expect("url in line");
        let url = line[start..].split_whitespace().next().expect("url").to_owned();
        Self { db, url, _process: process, _dir: dir }
    }

    /// Starts a host-only node named `name` with the e2e key (plus `extra` flags) and waits until it has
    /// registered.
    pub async fn host_node(&self, name: &str, extra: &[&str]) -> BinProcess {
        let mut args = vec!["--no-docker", "--enable-host-executor"];
        args.extend_from_slice(extra);
        self.node(name, &args, NODE_KEY).await
    }

    /// Starts `cynode-node run` named `name` with `key` and `args`, and waits until it has registered.
    pub async fn node(&self, name: &str, args: &[&str], key: &str) -> BinProcess {
        let mut args = args.to_vec();
        args.extend_from_slice(&["--orchestrator", self.url.as_str()]);
        start_node(name, &args, key).await
    }

    /// Starts a host-only node that reaches the orchestrator at `url` (e.g. through a proxy).
    pub async fn host_node_via(&self, url: &str, name: &str) -> BinProcess {
        let args = ["--no-docker", "--enable-host-executor", "--orchestrator", url];
        start_node(name, &args, NODE_KEY).await
    }

    /// The full argument list of `cynode-node run` for a node of this server.
    pub fn node_args<'a>(&'a self, name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["run", "--name", name];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--orchestrator", self.url.as_str()]);
        args
    }

    /// Enqueues one job as a new task (the way the command path does) and wakes waiting nodes.
    pub async fn enqueue(&self, spec: JobSpec, requirements: Requirements) -> (Uuid, Uuid) {
        let mut tx = self.db.pool.begin().await.expect("begin");
        let origin = Origin { requester: "e2e".into(), source: "api".into(), ..Origin::default() };
        let task = create_task(&mut tx, &origin, "run", "e2e job", &json!({})).await.expect("task");
        let job = NewJob { spec, requirements, priority: 0, max_attempts: 3, hold: false };
        let job = create_job(&mut tx, task, &job).await.expect("job");
        tx.commit().await.expect("commit");
        sqlx::query("SELECT pg_notify('cynode_jobs', '')").execute(&self.db.pool).await.expect("notify");
        (task, job)
    }

    /// Enqueues a host command with a 30 s limit.
    pub async fn enqueue_host(&self, command: &str) -> (Uuid, Uuid) {
        let spec = JobSpec::Host(HostSpec { command: command.into(), timeout_s: 30, max_output_bytes: 64 * 1024 });
        self.enqueue(spec, Requirements::default()).await
    }

    /// The job's row.
    pub async fn job(&self, id: Uuid) -> JobRow {
        let (state, attempt, node_id, lease_token, result): (String, i32, Option<Uuid>, Option<Uuid>, Option<Value>) =
            sqlx::query_as("SELECT state, attempt, node_id, lease_token, result FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&self.db.pool)
                .await
                .expect("job row");
        JobRow { state, attempt, node_id, lease_token, result }
    }

    /// Polls the job until `done` holds; panics with the last row after `limit`.
    pub async fn wait_job(&self, id: Uuid, limit: Duration, done: impl Fn(&JobRow) -> bool) -> JobRow {
        let deadline = Instant::now() + limit;
        loop {
            let row = self.job(id).await;
            if done(&row) {
                return row;
            }
            assert!(Instant::now() < deadline, "job {id} did not get there within {limit:?}; last: {row:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the job runs attempt 1 and its first output is stored (it is surely mid-job then).
    pub async fn wait_running_with_output(&self, id: Uuid) -> JobRow {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let row = self.job(id).await;
            if row.state == "running" && !self.output(id, row.attempt, "stdout").await.is_empty() {
                return row;
            }
            assert!(Instant::now() < deadline, "job {id} never ran with output; last: {row:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The stored output of one attempt and stream, in sequence order.
    pub async fn output(&self, id: Uuid, attempt: i32, stream: &str) -> String {
        let chunks: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT data FROM job_output_chunks WHERE job_id = $1 AND attempt = $2 AND stream = $3 ORDER BY seq",
        )
        .bind(id)
        .bind(attempt)
        .bind(stream)
        .fetch_all(&self.db.pool)
        .await
        .expect("chunks");
        String::from_utf8(chunks.concat()).expect("utf-8 output")
    }

    /// The name of a node.
    pub async fn node_name(&self, id: Uuid) -> String {
        sqlx::query_scalar("SELECT name FROM nodes WHERE id = $1")
            .bind(id)
            .fetch_one(&self.db.pool)
            .await
            .expect("node")
    }

    /// POSTs `body` to `path` with `Authorization: Bearer <bearer>`; returns the status and JSON body.
    pub async fn post(&self, path: &str, bearer: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = reqwest::Client::new().post(format!("{}{path}", self.url)).json(body);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Registers like a node would; returns the status and answer.
    pub async fn register(&self, key: &str, name: &str, executors: &[&str]) -> (u16, Value) {
        let body = json!({"protocol_versions": [1], "name": name, "capabilities": {"executors": executors}});
        self.post("/v1/node/register", Some(key), &body).await
    }

    /// Registers and returns the token.
    pub async fn token(&self, key: &str, name: &str, executors: &[&str]) -> String {
        let (status, body) = self.register(key, name, executors).await;
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().expect("token").to_owned()
    }
}

/// Starts `cynode-node run --name NAME ARGS` with `key` and waits until it has registered.
async fn start_node(name: &str, args: &[&str], key: &str) -> BinProcess {
    let mut argv = vec!["run", "--name", name];
    argv.extend_from_slice(args);
    let mut node = BinProcess::spawn("cynode-node", &argv, &[("CYNODE_NODE_KEY", key)]);
    node.wait_for("node registered; waiting for jobs", Duration::from_secs(30)).await;
    node
}

/// The stable error code of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}
