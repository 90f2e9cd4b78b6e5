//! The deployment every scenario starts from: a [`Cluster`] of three replicas with a Slack install pointing at a
//! [`FakeSlack`], optionally a Docker node, and signed Slack deliveries.

use std::time::Duration;

use cynode_adapters::slack;
use cynode_node_agent::executor::docker::connect_to;
use cynode_node_agent::images::build_busybox_image;
use cynode_tests::cluster::{Cluster, ClusterOptions};
use cynode_tests::fakes::FakeSlack;
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

/// The Slack signing secret (PLATFORMS.md's vector).
pub const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// The workspace.
pub const SLACK_TEAM: &str = "T1DC2JH3J";
/// Who asks.
pub const REQUESTER: &str = "U0REQUESTER";
/// Who may approve (the storm's jobs wait for an approval nobody gives).
pub const APPROVER: &str = "U0APPROVER";
/// The node key.
pub const NODE_KEY: &str = "replicas-node-key-0123456789abcdef";
/// The sandbox image (the same one the e2e tests build).
pub const IMAGE: &str = "cynode/busybox:e2e";

/// One scenario at a time: each runs three replicas, HAProxy and its load on the whole (2-core) machine, and
/// their timing promises (Slack's 3 s deadline, takeover within the claim's lifetime) are about one deployment,
/// not several competing for the cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the other scenarios of this target to end; hold the guard for the whole test.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// A running deployment.
pub struct Deployment {
    /// The replicas, HAProxy, the node.
    pub cluster: Cluster,
    /// The fake Slack every install posts to.
    pub slack: FakeSlack,
    http: reqwest::Client,
}

/// Settings of every scenario: short dispatch timings, so a takeover is a matter of seconds.
const FAST: &[(&str, &str)] = &[
    ("CYNODE__DISPATCH__HEARTBEAT_INTERVAL_MS", "500"),
    ("CYNODE__DISPATCH__REAP_INTERVAL_MS", "200"),
    ("CYNODE__DISPATCH__RETRY_BASE_MS", "200"),
];

impl Deployment {
    /// Starts three replicas (with `extra_yaml` in the bootstrap and `env`), HAProxy and, with `docker_node`, a
    /// node running Docker sandboxes of [`IMAGE`].
    pub async fn start(slack: FakeSlack, extra_yaml: &str, env: &[(&str, &str)], docker_node: bool) -> Self {
        if docker_node {
            let engine =
                connect_to(None).await.expect("the container engine must be reachable (this test never skips)");
            build_busybox_image(&engine, IMAGE).await.expect("busybox image");
        }
        let bootstrap = format!(
            "installs:\n  - {{platform: slack, name: acme, team_id: {SLACK_TEAM}, api_app_id: A1, \
             signing_secret: {SLACK_SECRET}, bot_token: {token}, api_base_url: '{base}'}}\n\
             node_keys:\n  - {{name: replicas, key: {NODE_KEY}, executors: [docker]}}\n\
             templates:\n  - {{name: busybox, image: \"{IMAGE}\"}}\n{extra_yaml}",
            token = slack.token(),
            base = slack.base_url(),
        );
        let mut all: Vec<(String, String)> = FAST.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let mut cluster = Cluster::start(ClusterOptions { replicas: 3, bootstrap, env: all }).await;
        if docker_node {
            // A name of its own: a starting node removes the leftover sandboxes of its owner.
            let name = format!("replicas-{}", &Uuid::now_v7().simple().to_string()[20..]);
            let template = format!("busybox={IMAGE}");
            cluster.add_node(&name, &["--template", &template, "--max-jobs", "24"], NODE_KEY).await;
        }
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
        Self { cluster, slack, http }
    }

    /// Delivers a signed Slack event body to `base` (a replica or the load balancer), with Slack's retry headers
    /// when `retry` > 0; returns the HTTP status (0 when no answer came).
    pub async fn deliver(&self, base: &str, body: &str, retry: u32) -> u16 {
        self.deliverer().deliver(base, body, retry).await
    }

    /// A sender of deliveries that does not borrow the deployment (for load running while replicas restart).
    pub fn deliverer(&self) -> Deliverer {
        Deliverer { http: self.http.clone() }
    }
}

/// Sends signed Slack deliveries.
#[derive(Clone)]
pub struct Deliverer {
    http: reqwest::Client,
}

impl Deliverer {
    /// See [`Deployment::deliver`].
    pub async fn deliver(&self, base: &str, body: &str, retry: u32) -> u16 {
        let ts = chrono::Utc::now().timestamp();
        let signature = slack::sign(SLACK_SECRET.as_bytes(), ts, body.as_bytes()).expect("sign");
        let mut req = self
            .http
            .post(format!("{base}/slack/events"))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", signature)
            .body(body.to_owned());
        if retry > 0 {
            req = req.header("x-slack-retry-num", retry.to_string()).header("x-slack-retry-reason", "http_timeout");
        }
        req.send().await.map_or(0, |r| r.status().as_u16())
    }
}

impl Deployment {
    /// Delivers like Slack does: the event, then up to three retries (with the retry headers) a second apart
    /// while the answer is not 200; returns the last status.
    pub async fn deliver_as_slack(&self, base: &str, body: &str) -> u16 {
        let mut status = 0;
        for retry in 0..4 {
            status = self.deliver(base, body, retry).await;
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        status
    }
}

/// The body of an `app_mention` event `event_id` of [`REQUESTER`] saying `text` in `thread` of `channel`.
pub fn mention(event_id: &str, channel: &str, thread: &str, text: &str) -> String {
    mention_by(REQUESTER, event_id, channel, thread, text)
}

/// [`mention`] by `user`.
pub fn mention_by(user: &str, event_id: &str, channel: &str, thread: &str, text: &str) -> String {
    json!({
        "token": "unused", "team_id": SLACK_TEAM, "api_app_id": "A1", "type": "event_callback",
        "event_id": event_id, "event_time": 1_700_000_000,
        "event": { "type": "app_mention", "user": user, "text": format!("<@UBOT> {text}"),
                   "ts": format!("{thread}1"), "thread_ts": thread, "channel": channel,
                   "event_ts": format!("{thread}1") }
    })
    .to_string()
}

/// Polls `probe` until it returns `Some`, for at most `limit`; panics with `what` and `describe()`.
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> F,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {limit:?}; now:\n{}", describe());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
