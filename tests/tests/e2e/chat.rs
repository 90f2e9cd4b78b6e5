//! The chat e2e harness: a real `cynode serve` (restartable on the same port and database) with platform installs
//! pointing at rule-enforcing fakes, a real `cynode-node` running Docker sandboxes, and signed deliveries.

use std::path::PathBuf;
use std::time::Duration;

use cynode_adapters::slack;
use cynode_node_agent::executor::docker::connect_to;
use cynode_node_agent::images::build_busybox_image;
use cynode_tests::{BinProcess, TestDb};
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use crate::support::{E2E_IMAGE, MASTER_KEY, NODE_KEY};

/// The Slack signing secret of every chat test (PLATFORMS.md's vector).
pub const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// The Slack workspace of every chat test.
pub const SLACK_TEAM: &str = "T1DC2JH3J";
/// The user allowed to approve in the approval tests.
pub const APPROVER: &str = "U0APPROVER";
/// A user who asks for jobs but may not approve them.
pub const REQUESTER: &str = "U0REQUESTER";

/// A running orchestrator with a Docker node, on its own database.
pub struct Chat {
    /// The test's database.
    pub db: TestDb,
    /// `http://127.0.0.1:PORT` (the same across restarts).
    pub url: String,
    server: Option<BinProcess>,
    node: Option<BinProcess>,
    env: Vec<(String, String)>,
    bootstrap: PathBuf,
    _dir: tempfile::TempDir,
}

/// The `node_keys` and `templates` sections every chat bootstrap needs.
fn base_yaml() -> String {
    format!(
        "node_keys:\n  - {{name: e2e, key: {NODE_KEY}, executors: [docker, inference]}}\n\
         templates:\n  - {{name: busybox, image: \"{E2E_IMAGE}\"}}\n"
    )
}

/// A `policy` section: jobs on the busybox template need one of `approvers` (platform user ids).
pub fn approval_policy(approvers: &[&str]) -> String {
    let list = approvers.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ");
    format!("policy:\n  - {{when: {{template: [busybox]}}, approvers: [{list}]}}\n")
}

/// A Slack install pointing at `base_url` with `token`.
pub fn slack_install(base_url: &str, token: &str) -> String {
    format!(
        "  - {{platform: slack, name: acme, team_id: {SLACK_TEAM}, api_app_id: A1, signing_secret: {SLACK_SECRET}, \
         bot_token: {token}, api_base_url: '{base_url}'}}\n"
    )
}

impl Chat {
    /// Builds the sandbox image, starts `cynode serve` with `installs` (lines of the `installs` list), `extra` YAML
    /// sections and `env`, and a Docker node.
    pub async fn start(installs: &str, extra: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with_node(installs, extra, env, &[]).await
    }

    /// [`Chat::start`], with extra `cynode-node run` arguments (`--inference-url URL` for a node that also
    /// serves a model).
    pub async fn start_with_node(installs: &str, extra: &str, env: &[(&str, &str)], node_args: &[&str]) -> Self {
        let engine = connect_to(None).await.expect("the container engine must be reachable (this test never skips)");
        build_busybox_image(&engine, E2E_IMAGE).await.expect("busybox image");
        let db = TestDb::new().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let bootstrap = dir.path().join("cynode.yaml");
        std::fs::write(&bootstrap, format!("installs:\n{installs}{}{extra}", base_yaml())).expect("bootstrap");
        let mut all = vec![
            ("DATABASE_URL".to_owned(), db.url.clone()),
            ("CYNODE__SECURITY__MASTER_KEY".to_owned(), MASTER_KEY.to_owned()),
        ];
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut chat = Self { db, url: String::new(), server: None, node: None, env: all, bootstrap, _dir: dir };
        chat.serve("127.0.0.1:0").await;
        let template = format!("busybox={E2E_IMAGE}");
        // A name of its own: a starting node removes the leftover sandboxes of its owner (`cynode-node-<name>`),
        // which must never be the running sandboxes of a concurrent test.
        let name = format!("chat-{}", &Uuid::now_v7().simple().to_string()[20..]);
        let mut args = vec!["run", "--name", &name, "--orchestrator", &chat.url, "--template", &template];
        args.extend_from_slice(node_args);
        let mut node = BinProcess::spawn("cynode-node", &args, &[("CYNODE_NODE_KEY", NODE_KEY)]);
        node.wait_for("node registered", Duration::from_secs(30)).await;
        chat.node = Some(node);
        chat
    }

    async fn serve(&mut self, listen: &str) {
        let boot = self.bootstrap.to_str().expect("utf-8").to_owned();
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut server = BinProcess::spawn("cynode", &["serve", "--listen", listen, "--bootstrap", &boot], &env);
        let line = server.wait_for("serving on http://", Duration::from_secs(60)).await;
        let start = line.find("http://").expect("url");
        self.url = line[start..].split_whitespace().next().expect("url").to_owned();
        self.server = Some(server);
    }

    /// Kills `cynode serve` with SIGKILL (no graceful release of anything) and starts a new one on the same port
    /// and database.
    pub async fn crash_and_restart(&mut self) {
        let mut old = self.server.take().expect("a running server");
        old.signal("KILL");
        old.wait_exit(Duration::from_secs(10)).await;
        let listen = self.url.trim_start_matches("http://").to_owned();
        self.serve(&listen).await;
    }

    /// Everything `cynode serve` printed (for failure messages).
    pub fn server_output(&self) -> String {
        self.server.as_ref().map(|s| s.output().join("\n")).unwrap_or_default()
    }

    /// Everything `cynode-node` printed (for failure messages).
    pub fn node_output(&self) -> String {
        self.node.as_ref().map(|s| s.output().join("\n")).unwrap_or_default()
    }

    /// POSTs a raw body with headers to `path`; returns the status and body text.
    pub async fn deliver(&self, path: &str, headers: &[(&str, String)], body: String) -> (u16, String) {
        let mut req = reqwest::Client::new().post(format!("{}{path}", self.url)).body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.expect("deliver");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Delivers a signed Slack request (`events` JSON or `interactions` form) and expects 200.
    pub async fn slack(&self, path: &str, content_type: &str, body: String) {
        let ts = chrono::Utc::now().timestamp();
        let signature = slack::sign(SLACK_SECRET.as_bytes(), ts, body.as_bytes()).expect("sign");
        let headers = [
            ("content-type", content_type.to_owned()),
            ("x-slack-request-timestamp", ts.to_string()),
            ("x-slack-signature", signature),
        ];
        let (status, text) = self.deliver(path, &headers, body).await;
        assert_eq!(status, 200, "{path}: {text}");
    }

    /// A signed `app_mention` of `user` saying `text` in `thread` of `channel`.
    pub async fn slack_mention(&self, event_id: &str, user: &str, channel: &str, thread: &str, text: &str) {
        let body = serde_json::json!({
            "token": "unused", "team_id": SLACK_TEAM, "api_app_id": "A1", "type": "event_callback",
            "event_id": event_id, "event_time": 1_700_000_000,
            "event": { "type": "app_mention", "user": user, "text": format!("<@UBOT> {text}"),
                       "ts": format!("{thread}1"), "thread_ts": thread, "channel": channel,
                       "event_ts": format!("{thread}1") }
        });
        self.slack("/slack/events", "application/json", body.to_string()).await;
    }

    /// A signed `block_actions` click by `user` on the button (`action_id`, `value`) of message `message_ts` in
    /// `thread`, with a `response_url`.
    pub async fn slack_click(&self, click: &SlackClick<'_>) {
        let payload = serde_json::json!({
            "type": "block_actions",
            "user": { "id": click.user, "username": click.user.to_lowercase(), "team_id": SLACK_TEAM },
            "team": { "id": SLACK_TEAM },
            "channel": { "id": click.channel },
            "container": { "type": "message", "message_ts": click.message_ts, "channel_id": click.channel,
                           "thread_ts": click.thread },
            "message": { "ts": click.message_ts, "thread_ts": click.thread },
            "trigger_id": format!("{}.{}", Uuid::now_v7().as_u128() % 1_000_000_000, click.user),
            "response_url": click.response_url,
            "actions": [{ "type": "button", "action_id": click.action_id, "value": click.value,
                          "block_id": "cynode", "action_ts": "1700000002.000300" }],
        });
        let body: String =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
        self.slack("/slack/interactions", "application/x-www-form-urlencoded", body).await;
    }

    /// The state of `job` and of its approval (if any).
    pub async fn job_state(&self, job: Uuid) -> (String, Option<String>) {
        sqlx::query_as(
            "SELECT j.state, (SELECT a.state FROM approvals a WHERE a.job_id = j.id ORDER BY a.created_at DESC LIMIT 1)
             FROM jobs j WHERE j.id = $1",
        )
        .bind(job)
        .fetch_one(&self.db.pool)
        .await
        .expect("job")
    }

    /// The only job of the whole test database (the one the mention created).
    pub async fn only_job(&self) -> Uuid {
        sqlx::query_scalar("SELECT id FROM jobs").fetch_one(&self.db.pool).await.expect("exactly one job")
    }

    /// The audit log, oldest first: actor, action, detail.
    pub async fn audit(&self) -> Vec<(String, String, Value)> {
        cynode_orchestrator::audit::flush(&self.db.pool).await.expect("link the audit entries");
        sqlx::query_as("SELECT actor, action, detail FROM audit_log ORDER BY seq")
            .fetch_all(&self.db.pool)
            .await
            .expect("audit")
    }
}

/// A button click on Slack.
pub struct SlackClick<'a> {
    /// Who clicks.
    pub user: &'a str,
    /// Where.
    pub channel: &'a str,
    /// The thread of the card.
    pub thread: &'a str,
    /// The card's `ts`.
    pub message_ts: &'a str,
    /// `approve` or `deny`.
    pub action_id: &'a str,
    /// The button's value.
    pub value: &'a str,
    /// The interaction's `response_url` (minted by the fake).
    pub response_url: &'a str,
}

/// Polls `probe` until it returns `Some`, for at most `limit`; panics with `what` and the last `describe()`.
pub async fn eventually<T>(
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {limit:?}; now:\n{}", describe());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
