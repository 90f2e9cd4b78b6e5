//! External model providers against a real PostgreSQL: stored sealed, listed and audited without their key,
//! refused with what to change, and routed to only when no local node serves the model or the queue is long —
//! with the test acting as the nodes (a provider node registers with the provider's own key).

use std::collections::BTreeMap;

use cynode_orchestrator::admin::AdminError;
use cynode_orchestrator::crypto::SecretBox;
use cynode_orchestrator::dispatch::feasible::Unschedulable;
use cynode_orchestrator::nodes;
use cynode_orchestrator::outbound_guard::{Cidr, OutboundGuard};
use cynode_orchestrator::providers::{self, PROVIDER_LABEL, ProviderSpec, Put, Via};
use cynode_orchestrator::tasks::NewJob;
use cynode_protocol::{Capabilities, ExecutorKind, InferenceSpec, JobSpec, RegisterRequest, Requirements};
use cynode_tests::TestDb;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{dispatcher, enqueue, node, slack_install};

/// A provider key that must never be readable anywhere but in the provider node's requests.
const KEY: &str = "sk-PROVIDER-TEST-SECRET-91c2f0e7";

fn lan() -> OutboundGuard {
    OutboundGuard::allowing(vec!["127.0.0.0/8".parse::<Cidr>().expect("cidr")])
}

fn spec(name: &str, models: &[&str]) -> ProviderSpec {
    ProviderSpec {
        name: name.into(),
        install: None,
        base_url: "http://127.0.0.1:9".into(),
        api_key: Some(SecretString::from(KEY.to_string())),
        models: models.iter().map(|m| (*m).to_string()).collect(),
        max_concurrent: 4,
        queue_threshold: 2,
        enabled: true,
    }
}

async fn put(pool: &PgPool, secrets: &SecretBox, spec: &ProviderSpec) -> Result<(Uuid, Put), AdminError> {
    let mut tx = pool.begin().await.expect("tx");
    let r = providers::put(&mut tx, secrets, &lan(), "test", spec).await;
    tx.commit().await.expect("commit");
    r
}

fn secrets() -> SecretBox {
    SecretBox::from_base64(&SecretBox::generate_key()).expect("key")
}

/// Registers a provider node for `id` with the key only the provider's row holds (as a gateway replica does).
async fn provider_node(pool: &PgPool, secrets: &SecretBox, id: Uuid, replica: &str) -> Uuid {
    let served = providers::served(pool, secrets).await.expect("served");
    let p = served.iter().find(|p| p.id == id).expect("served provider");
    let caps = Capabilities {
        executors: vec![ExecutorKind::Provider],
        models: p.models.clone(),
        labels: BTreeMap::from([(PROVIDER_LABEL.to_string(), id.to_string())]),
        max_concurrent_jobs: 4,
        ..Capabilities::default()
    };
    let req = RegisterRequest {
        protocol_versions: vec![1],
        name: format!("provider-{}@{replica}", p.name),
        capabilities: caps,
        agent_version: None,
    };
    nodes::register(pool, p.node_key.expose_secret(), &req).await.expect("register").node_id
}

fn model_call(requirements: Requirements) -> NewJob {
    NewJob {
        spec: JobSpec::Inference(InferenceSpec {
            model: requirements.model.clone().unwrap_or_default(),
            prompt: "hi".into(),
            messages: Vec::new(),
            tools: Vec::new(),
            tool_choice: None,
            system: None,
            max_tokens: 8,
            timeout_s: 30,
        }),
        requirements,
        priority: 0,
        max_attempts: 1,
        hold: false,
    }
}

fn via(r: &Result<providers::Routed, Unschedulable>) -> String {
    match r {
        Ok(r) => match &r.via {
            Via::Node => "node".into(),
            Via::Provider { name, .. } => format!("provider {name}"),
        },
        Err(why) => format!("refused: {}", why.code()),
    }
}

#[tokio::test]
async fn a_provider_is_sealed_listed_without_its_key_audited_and_removed() {
    let db = TestDb::new().await;
    let sb = secrets();
    let (id, first) = put(&db.pool, &sb, &spec("cloud", &["big"])).await.expect("create");
    assert_eq!(first, Put::Created);
    assert_eq!(put(&db.pool, &sb, &spec("cloud", &["big"])).await.expect("again").1, Put::Unchanged);
    assert_eq!(put(&db.pool, &sb, &spec("cloud", &["big", "small"])).await.expect("models").1, Put::Updated);
    let mut rotated = spec("cloud", &["big", "small"]);
    rotated.api_key = Some(SecretString::from("sk-ROTATED-SECRET-5d1e".to_string()));
    assert_eq!(put(&db.pool, &sb, &rotated).await.expect("rotate").1, Put::Updated);

    // Nowhere in the store in the clear: not the row, not the audit log, not the node keys.
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(p)::text FROM providers p
         UNION ALL SELECT row_to_json(a)::text FROM audit_log a
         UNION ALL SELECT row_to_json(k)::text FROM node_keys k",
    )
    .fetch_all(&db.pool)
    .await
    .expect("dump");
    let sealed: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT api_key FROM providers").fetch_all(&db.pool).await.expect("sealed");
    for secret in [KEY, "sk-ROTATED-SECRET-5d1e"] {
        assert!(!dump.iter().any(|row| row.contains(secret)), "a key is stored in the clear");
        assert!(!sealed.iter().any(|s| s.windows(secret.len()).any(|w| w == secret.as_bytes())));
    }
    cynode_orchestrator::audit::flush(&db.pool).await.expect("link the audit entries");
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq").fetch_all(&db.pool).await.expect("audit");
    assert_eq!(actions, ["provider.created", "provider.updated", "provider.updated"]);

    // Listed without the key; the node key made for it grants only the provider executor.
    let listed = providers::list(&db.pool).await.expect("list");
    let json = serde_json::to_string(&listed).expect("json");
    assert!(!json.contains("sk-ROTATED") && !json.contains(KEY), "{json}");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].has_key && listed[0].models == ["big", "small"] && listed[0].nodes_online == 0);
    let grants: serde_json::Value = sqlx::query_scalar("SELECT grants FROM node_keys WHERE name = $1")
        .bind(format!("provider:{id}"))
        .fetch_one(&db.pool)
        .await
        .expect("node key");
    assert_eq!(grants, serde_json::json!({ "executors": ["provider"] }));
    // The replica gets the rotated key back, opened.
    let served = providers::served(&db.pool, &sb).await.expect("served");
    assert_eq!(
        served[0].api_key.as_ref().map(|k| k.expose_secret().to_string()).as_deref(),
        Some("sk-ROTATED-SECRET-5d1e")
    );
    // Under another master key nothing is served (and nothing fails).
    assert!(providers::served(&db.pool, &secrets()).await.expect("served").is_empty());

    // Removed: its node key is revoked, so its nodes can no longer register.
    let node = provider_node(&db.pool, &sb, id, "r1").await;
    assert!(!node.is_nil());
    providers::remove(&db.pool, "test", "cloud").await.expect("remove");
    assert!(providers::list(&db.pool).await.expect("list").is_empty());
    let revoked: bool = sqlx::query_scalar("SELECT revoked_at IS NOT NULL FROM node_keys WHERE name = $1")
        .bind(format!("provider:{id}"))
        .fetch_one(&db.pool)
        .await
        .expect("key");
    assert!(revoked);
    let again = providers::remove(&db.pool, "test", "cloud").await.expect_err("gone");
    assert!(matches!(again, AdminError::NotFound(_)), "{again}");
}

#[tokio::test]
async fn bad_provider_specs_are_refused_with_what_to_change() {
    let db = TestDb::new().await;
    let sb = secrets();
    type Change = Box<dyn Fn(&mut ProviderSpec)>;
    let cases: Vec<(&str, Change)> = vec![
        ("not valid", Box::new(|s| s.name = "Cloud AI".into())),
        ("http:// or https://", Box::new(|s| s.base_url = "ftp://models.example.com".into())),
        ("not a URL", Box::new(|s| s.base_url = "models dot example".into())),
        ("credentials", Box::new(|s| s.base_url = "https://user:pw@models.example.com".into())),
        ("without the trailing /v1", Box::new(|s| s.base_url = "https://models.example.com/v1".into())),
        ("1–64 models", Box::new(|s| s.models.clear())),
        ("not a valid model name", Box::new(|s| s.models = vec![" spaced ".into()])),
        ("max_concurrent", Box::new(|s| s.max_concurrent = 0)),
        ("no install is named `nope`", Box::new(|s| s.install = Some("nope".into()))),
        ("without spaces", Box::new(|s| s.api_key = Some(SecretString::from(format!("{KEY} trailing"))))),
    ];
    for (expected, change) in cases {
        let mut s = spec("cloud", &["big"]);
        change(&mut s);
        let err = put(&db.pool, &sb, &s).await.expect_err(expected).to_string();
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
        assert!(!err.contains(KEY), "the key is in an error: {err}");
    }
    // An internal address is refused by default and names the setting that allows it.
    let mut tx = db.pool.begin().await.expect("tx");
    let err = providers::put(&mut tx, &sb, &OutboundGuard::default(), "test", &spec("cloud", &["big"]))
        .await
        .expect_err("loopback");
    assert!(err.to_string().contains("outbound.allow_cidrs"), "{err}");
    drop(tx);
    assert!(providers::list(&db.pool).await.expect("list").is_empty(), "a refused spec was stored");
}

#[tokio::test]
async fn model_calls_prefer_local_nodes_and_fall_back_to_a_provider() {
    let db = TestDb::new().await;
    let sb = secrets();
    let (cloud, _) = put(&db.pool, &sb, &spec("cloud", &["big", "small"])).await.expect("cloud");
    let route = |model: &'static str, install: Option<Uuid>| {
        let pool = db.pool.clone();
        async move { providers::route(&pool, install, model).await.expect("route") }
    };

    // Configured but no provider node online (no gateway replica serves it): not a way out.
    assert_eq!(via(&route("big", None).await), "refused: no_nodes");
    let cloud_node = provider_node(&db.pool, &sb, cloud, "r1").await;
    // No inference node at all: the provider; its default model for calls that name none.
    assert_eq!(via(&route("big", None).await), "provider cloud");
    assert_eq!(via(&route("", None).await), "provider cloud");
    assert_eq!(via(&route("unlisted", None).await), "refused: no_executor");

    // A provider call is a job on the provider executor, bound to that provider's nodes.
    let to_cloud = route("small", None).await.expect("routed").requirements;
    let cloud_job = enqueue(&db.pool, &model_call(to_cloud)).await;
    let executor: String = sqlx::query_scalar("SELECT executor FROM jobs WHERE id = $1")
        .bind(cloud_job)
        .fetch_one(&db.pool)
        .await
        .expect("job");
    assert_eq!(executor, "provider");

    // A local node that serves `big`: preferred for `big`; `small` still goes to the provider.
    let local = node(
        &db.pool,
        "gpu",
        Capabilities {
            executors: vec![ExecutorKind::Inference],
            models: vec!["big".into()],
            max_concurrent_jobs: 4,
            ..Capabilities::default()
        },
    )
    .await;
    assert_eq!(via(&route("big", None).await), "node");
    assert_eq!(via(&route("small", None).await), "provider cloud");
    assert_eq!(via(&route("unlisted", None).await), "refused: no_model");

    // The queue reaches the provider's threshold (2): new `big` calls overflow to the provider.
    let local_req = route("big", None).await.expect("routed").requirements;
    let queued = [enqueue(&db.pool, &model_call(local_req.clone())).await];
    assert_eq!(via(&route("big", None).await), "node", "one queued call is under the threshold");
    let queued = [queued[0], enqueue(&db.pool, &model_call(local_req)).await];
    assert_eq!(via(&route("big", None).await), "provider cloud");

    // Each side claims only its own: the local node never takes the provider's call, and the other way round.
    let d = dispatcher(&db.pool);
    let mine: Vec<Uuid> = d
        .lease(local, 10, std::time::Duration::from_millis(100))
        .await
        .expect("lease")
        .iter()
        .map(|l| l.job_id)
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(queued.iter().all(|q| mine.contains(q)) && !mine.contains(&cloud_job));
    assert_eq!(via(&route("big", None).await), "node", "the queue drained");
    let theirs: Vec<Uuid> = d
        .lease(cloud_node, 10, std::time::Duration::from_millis(100))
        .await
        .expect("lease")
        .iter()
        .map(|l| l.job_id)
        .collect();
    assert_eq!(theirs, [cloud_job]);

    // A node key that does not grant `provider` cannot register a provider node.
    let key = "key-for-rogue-0123456789abcdef";
    crate::support::node_key(&db.pool, "rogue", key, &["inference"]).await;
    let caps = Capabilities {
        executors: vec![ExecutorKind::Provider],
        labels: BTreeMap::from([(PROVIDER_LABEL.to_string(), cloud.to_string())]),
        ..Capabilities::default()
    };
    let req =
        RegisterRequest { protocol_versions: vec![1], name: "rogue".into(), capabilities: caps, agent_version: None };
    assert!(nodes::register(&db.pool, key, &req).await.is_err(), "a provider node without a provider key");
}

#[tokio::test]
async fn an_install_provider_serves_only_its_install() {
    let db = TestDb::new().await;
    let sb = secrets();
    let install = slack_install(&db.pool, &sb, "xoxb-unused", "http://127.0.0.1:9").await;
    let mut own = spec("team", &["team-model"]);
    own.install = Some("t".into());
    let (team, _) = put(&db.pool, &sb, &own).await.expect("team");
    let (shared, _) = put(&db.pool, &sb, &spec("shared", &["team-model"])).await.expect("shared");
    provider_node(&db.pool, &sb, team, "r1").await;
    provider_node(&db.pool, &sb, shared, "r1").await;
    let route = |install: Option<Uuid>| {
        let pool = db.pool.clone();
        async move { providers::route(&pool, install, "team-model").await.expect("route") }
    };
    // The install's own provider before the one for all installs; other installs, the console: the shared one.
    assert_eq!(via(&route(Some(install)).await), "provider team");
    assert_eq!(via(&route(Some(Uuid::now_v7())).await), "provider shared");
    assert_eq!(via(&route(None).await), "provider shared");
    // Disabled: not used.
    let mut off = own.clone();
    off.enabled = false;
    put(&db.pool, &sb, &off).await.expect("disable");
    assert_eq!(via(&route(Some(install)).await), "provider shared");
}
