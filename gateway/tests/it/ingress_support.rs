//! An in-process gateway for ingress tests: a real socket, a fresh database seeded with installs of every
//! platform, a manual clock for replay windows, and signers that sign like each platform does.

use std::sync::Arc;
use std::time::Duration;

use cynode_adapters::webhook::standard::{self, StandardSecret};
use cynode_adapters::webhook::{self, Secret};
use cynode_adapters::{ManualClock, slack};
use cynode_gateway::metrics::RejectLabels;
use cynode_gateway::ratelimit::RateSettings;
use cynode_gateway::routes::ingress::IngressSettings;
use cynode_gateway::server::{self, AppState, CoreSettings, RouterSettings, ServeSettings};
use cynode_orchestrator::bootstrap::{BootstrapFile, import};
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::installs::RateQuota;
use cynode_tests::TestDb;
use ed25519_dalek::{Signer as _, SigningKey};
use secrecy::SecretString;
use uuid::Uuid;

pub const MASTER_KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJmrw=";
/// Slack's official signing example (PLATFORMS.md).
pub const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
pub const SLACK_TEAM: &str = "T1DC2JH3J";
pub const SLACK_APP: &str = "A0123456789";
/// RFC 8032 §7.1 TEST 1.
pub const DISCORD_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
pub const DISCORD_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
pub const DISCORD_APP: &str = "1180000000000000000";
pub const DISCORD_LIMITED_APP: &str = "1190000000000000000";
pub const TELEGRAM_SECRET: &str = "telegram-secret_0123456789";
/// GitHub's documented example secret.
pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";
/// The official Standard Webhooks test secret.
pub const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const HMAC_SECRET: &str = "plain-hmac-secret-0123456789";
/// The approver of jobs on the `net` template.
pub const APPROVER: &str = "U2CERLKJA";

fn bootstrap() -> String {
    format!(
        "
installs:
  - {{ platform: slack, name: acme, team_id: {SLACK_TEAM}, api_app_id: {SLACK_APP},
       signing_secret: {SLACK_SECRET}, bot_token: xoxb-test }}
  - {{ platform: slack, name: limited, team_id: TLIMITED, signing_secret: {SLACK_SECRET}, bot_token: xoxb-test,
       rate_limits: {{ user: {{ per_minute: 1, burst: 2 }} }} }}
  - {{ platform: slack, name: off, team_id: TDISABLED, signing_secret: {SLACK_SECRET}, bot_token: xoxb-test,
       enabled: false }}
  - {{ platform: discord, name: disc, application_id: '{DISCORD_APP}', public_key: {DISCORD_PUBLIC},
       bot_token: discord-token }}
  - {{ platform: discord, name: disc-limited, application_id: '{DISCORD_LIMITED_APP}',
       public_key: {DISCORD_PUBLIC}, bot_token: discord-token,
       rate_limits: {{ user: {{ per_minute: 1, burst: 1 }} }} }}
  - {{ platform: telegram, name: tg, bot: acme, username: acme_cynode_bot, bot_token: '123:tok',
       secret_token: {TELEGRAM_SECRET}, rate_limits: {{ user: {{ per_minute: 1, burst: 2 }} }} }}
  - {{ platform: webhook, name: gh, endpoint: gh, scheme: github, secrets: [\"{GITHUB_SECRET}\"] }}
  - {{ platform: webhook, name: std, endpoint: std, scheme: standard, secrets: [{STANDARD_SECRET}] }}
  - {{ platform: webhook, name: plain, endpoint: plain, scheme: hmac, header: X-Signature,
       secrets: [{HMAC_SECRET}] }}
  - {{ platform: webhook, name: limited, endpoint: limited, scheme: github, secrets: [\"{GITHUB_SECRET}\"],
       rate_limits: {{ install: {{ per_minute: 1, burst: 2 }} }} }}
templates:
  - {{ name: busybox, image: 'cynode/busybox:latest' }}
  - {{ name: net, image: 'cynode/busybox:latest', network: true }}
policy:
  - {{ when: {{ network: true }}, approvers: [{APPROVER}] }}
"
    )
}

pub struct IngressApp {
    pub base: String,
    pub db: TestDb,
    pub client: reqwest::Client,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// Generous defaults, so only installs with `rate_limits` overrides are limited in tests.
pub fn roomy() -> IngressSettings {
    let roomy = RateQuota { per_minute: 60_000, burst: 1000 };
    IngressSettings {
        rate: RateSettings { install: roomy, user: roomy, channel: roomy, notice_window: Duration::from_secs(60) },
        // Test machines are busy; a slow first connection must not turn into a 503.
        record_timeout: Duration::from_secs(15),
        ..IngressSettings::default()
    }
}

impl IngressApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(
            RouterSettings { max_body_bytes: 1024 * 1024, request_timeout: Duration::from_secs(10) },
            roomy(),
        )
        .await
    }

    pub async fn spawn_with(settings: RouterSettings, ingress: IngressSettings) -> Self {
        Self::spawn_core(settings, CoreSettings { ingress, ..CoreSettings::default() }).await
    }

    pub async fn spawn_core(settings: RouterSettings, core: CoreSettings) -> Self {
        let db = TestDb::new().await;
        let secrets = SecretBox::from_base64(&SecretString::from(MASTER_KEY)).expect("key");
        let file = BootstrapFile::parse(&bootstrap(), "ingress-test").expect("bootstrap");
        import(&db.pool, &secrets, &file, "ingress-test").await.expect("import");
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut state = AppState::start(db.pool.clone(), &SecretString::from(MASTER_KEY), core, stop_rx);
        let clock = Arc::new(ManualClock::new(chrono::Utc::now().timestamp()));
        state.clock = clock.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(state.clone(), settings);
        let serve = ServeSettings { header_read_timeout: Duration::from_secs(1) };
        tokio::spawn(server::serve_with(listener, app, serve, async {
            let _ = rx.await;
        }));
        Self { base, db, client: reqwest::Client::new(), state, clock, _shutdown: tx, _stop: stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn now(&self) -> i64 {
        use cynode_adapters::Clock as _;
        self.clock.now_unix()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&self.db.pool).await.expect("count")
    }

    /// Rows in every table a request may write to.
    pub async fn stored(&self) -> (i64, i64, i64) {
        (
            self.count("SELECT count(*) FROM inbound_events").await,
            self.count("SELECT count(*) FROM conversations").await,
            self.count("SELECT count(*) FROM tasks").await,
        )
    }

    pub fn rejected(&self, platform: &str, reason: &str) -> u64 {
        let labels = RejectLabels { platform: platform.into(), reason: reason.into() };
        self.state.metrics.rejected.get_or_create(&labels).get()
    }

    /// Waits until a task leaves `received` (interpreted) and returns its state and reply.
    pub async fn interpreted(&self, task: Uuid) -> (String, Option<String>) {
        for _ in 0..400 {
            let row: (String, Option<String>) = sqlx::query_as("SELECT state, reply FROM tasks WHERE id = $1")
                .bind(task)
                .fetch_one(&self.db.pool)
                .await
                .expect("task");
            // A job's transaction moves the task on (`queued`, `waiting`); the interpreter stores the reply just
            // after it, so wait for both.
            let job_pending_reply = row.1.is_none() && matches!(row.0.as_str(), "queued" | "waiting");
            if row.0 != "received" && !job_pending_reply {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("task {task} was not interpreted within 20 s");
    }

    /// The id of the task of the inbound event with this delivery id.
    pub async fn task_of(&self, delivery_id: &str) -> Uuid {
        sqlx::query_scalar(
            "SELECT t.id FROM tasks t JOIN inbound_events e ON e.id = t.inbound_id WHERE e.delivery_id = $1",
        )
        .bind(delivery_id)
        .fetch_one(&self.db.pool)
        .await
        .expect("task of delivery")
    }

    pub async fn slack(&self, path: &str, content_type: &str, body: &str, ts: i64) -> reqwest::Response {
        self.post_slack(path, content_type, body, ts, &[]).await
    }

    pub async fn post_slack(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
        ts: i64,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", slack_signature(ts, body.as_bytes()));
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.body(body.to_string()).send().await.expect("post")
    }

    pub async fn discord(&self, body: &str, ts: i64) -> reqwest::Response {
        self.client
            .post(self.url("/discord/interactions"))
            .header("content-type", "application/json")
            .header("x-signature-timestamp", ts.to_string())
            .header("x-signature-ed25519", discord_signature(ts, body.as_bytes()))
            .body(body.to_string())
            .send()
            .await
            .expect("post")
    }
}

pub fn slack_signature(ts: i64, body: &[u8]) -> String {
    slack::sign(SLACK_SECRET.as_bytes(), ts, body).expect("sign")
}

pub fn discord_signature(ts: i64, body: &[u8]) -> String {
    let seed: [u8; 32] = hex::decode(DISCORD_SEED).expect("hex").try_into().expect("32 bytes");
    let mut message = ts.to_string().into_bytes();
    message.extend_from_slice(body);
    hex::encode(SigningKey::from_bytes(&seed).sign(&message).to_bytes())
}

pub fn github_signature(body: &[u8]) -> String {
    webhook::github_signature(&Secret::new(GITHUB_SECRET).expect("secret"), body)
}

pub fn standard_signature(id: &str, ts: i64, body: &[u8]) -> String {
    standard::sign(&StandardSecret::parse(STANDARD_SECRET).expect("secret"), id, ts, body)
}

/// A Slack `event_callback` with an `app_mention` by `user` in `channel`, optionally in a thread.
pub fn mention(event_id: &str, team: &str, user: &str, text: &str, thread_ts: Option<&str>) -> String {
    let mut event = serde_json::json!({
        "type": "app_mention", "user": user, "text": format!("<@UBOT> {text}"), "ts": "1700000000.000200",
        "channel": "C0123", "event_ts": "1700000000.000200"
    });
    if let Some(t) = thread_ts {
        event["thread_ts"] = t.into();
    }
    serde_json::json!({
        "token": "x", "team_id": team, "api_app_id": SLACK_APP, "type": "event_callback", "event_id": event_id,
        "event_time": 1_700_000_000, "event": event,
        "authorizations": [{ "team_id": team, "user_id": "UBOT", "is_bot": true }]
    })
    .to_string()
}
