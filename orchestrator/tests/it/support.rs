//! Shared set-up for dispatch and command tests.

use std::sync::Arc;
use std::time::Duration;

use cynode_orchestrator::crypto::{SecretBox, hash_credential};
use cynode_orchestrator::dispatch::{DispatchSettings, Dispatcher};
use cynode_orchestrator::nodes;
use cynode_orchestrator::tasks::{self, NewJob, Origin};
use cynode_protocol::{Capabilities, ExecutorKind, HostSpec, JobSpec, RegisterRequest, Requirements};
use sqlx::PgPool;
use uuid::Uuid;

pub fn fast() -> DispatchSettings {
    DispatchSettings {
        lease_ttl: Duration::from_millis(600),
        poll_fallback: Duration::from_millis(200),
        retry_base: Duration::from_millis(100),
        prefer_window: Duration::from_millis(500),
        ..DispatchSettings::default()
    }
}

pub async fn node_key(pool: &PgPool, name: &str, key: &str, executors: &[&str]) {
    sqlx::query("INSERT INTO node_keys (id, name, key_hash, grants) VALUES ($1, $2, $3, $4)")
        .bind(Uuid::now_v7())
        .bind(name)
        .bind(hash_credential(key))
        .bind(serde_json::json!({ "executors": executors }))
        .execute(pool)
        .await
        .expect("node key");
}

pub async fn node(pool: &PgPool, name: &str, caps: Capabilities) -> Uuid {
    let key = format!("key-for-{name}-0123456789abcdef");
    node_key(pool, &format!("k-{name}"), &key, &["docker", "host", "inference"]).await;
    let req =
        RegisterRequest { protocol_versions: vec![1], name: name.into(), capabilities: caps, agent_version: None };
    nodes::register(pool, &key, &req).await.expect("register").node_id
}

pub fn host_caps() -> Capabilities {
    Capabilities { executors: vec![ExecutorKind::Host], max_concurrent_jobs: 4, ..Capabilities::default() }
}

pub fn host_job(cmd: &str) -> NewJob {
    NewJob {
        spec: JobSpec::Host(HostSpec { command: cmd.into(), timeout_s: 60, max_output_bytes: 1 << 20 }),
        requirements: Requirements::default(),
        priority: 0,
        max_attempts: 3,
        hold: false,
    }
}

pub async fn enqueue(pool: &PgPool, job: &NewJob) -> Uuid {
    let mut tx = pool.begin().await.expect("tx");
    let origin = Origin { requester: "U1".into(), source: "test".into(), ..Origin::default() };
    let task = tasks::create_task(&mut tx, &origin, "run", "x", &serde_json::json!({})).await.expect("task");
    let id = tasks::create_job(&mut tx, task, job).await.expect("job");
    tx.commit().await.expect("commit");
    id
}

pub fn dispatcher(pool: &PgPool) -> Arc<Dispatcher> {
    Dispatcher::new(pool.clone(), fast())
}

pub async fn job_state(pool: &PgPool, id: Uuid) -> (String, i32) {
    sqlx::query_as("SELECT state, attempt FROM jobs WHERE id = $1").bind(id).fetch_one(pool).await.expect("job")
}

/// A Slack install `T1` whose bot token `token` is sealed with `secrets` and whose API base is `base_url`.
pub async fn slack_install(pool: &PgPool, secrets: &SecretBox, token: &str, base_url: &str) -> Uuid {
    let sealed = secrets.seal("install:slack:T1", serde_json::json!({ "bot_token": token }).to_string().as_bytes());
    let install = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO installs (id, platform, external_id, name, settings, secrets)
         VALUES ($1, 'slack', 'T1', 't', $2, $3)",
    )
    .bind(install)
    .bind(serde_json::json!({ "api_base_url": base_url }))
    .bind(sealed)
    .execute(pool)
    .await
    .unwrap();
    install
}

/// A task asked by `U1` in thread `thread` of Slack channel `C1` of `install`, with a host job running `cmd`:
/// `(task, job)`.
pub async fn slack_thread_task(pool: &PgPool, install: Uuid, thread: &str, cmd: &str) -> (Uuid, Uuid) {
    let thread_ref =
        serde_json::json!({"platform": "slack", "install": "T1", "channel": "C1", "thread": thread, "reply_to": null});
    chat_task(pool, install, thread_ref, "U1", cmd).await
}

/// A chat task asked by `requester` in the conversation `thread_ref` names (its `channel` and `thread`, `null`
/// for none), with a host job running `cmd`: `(task, job)`.
pub async fn chat_task(
    pool: &PgPool,
    install: Uuid,
    thread_ref: serde_json::Value,
    requester: &str,
    cmd: &str,
) -> (Uuid, Uuid) {
    let conv = Uuid::now_v7();
    let channel = thread_ref["channel"].as_str().unwrap_or_default().to_owned();
    let thread = thread_ref["thread"].as_str().unwrap_or_default().to_owned();
    sqlx::query("INSERT INTO conversations (id, install_id, channel, thread, thread_ref) VALUES ($1, $2, $3, $4, $5)")
        .bind(conv)
        .bind(install)
        .bind(channel)
        .bind(thread)
        .bind(thread_ref)
        .execute(pool)
        .await
        .unwrap();
    let origin = Origin {
        install_id: Some(install),
        conversation_id: Some(conv),
        requester: requester.into(),
        source: "chat".into(),
        ..Origin::default()
    };
    let mut tx = pool.begin().await.unwrap();
    let task = tasks::create_task(&mut tx, &origin, "run", cmd, &serde_json::json!({})).await.unwrap();
    let job = tasks::create_job(&mut tx, task, &host_job(cmd)).await.unwrap();
    tx.commit().await.unwrap();
    (task, job)
}

/// A successful outcome (exit 0) as a node reports it.
pub fn succeeded(duration_ms: u64) -> cynode_protocol::Outcome {
    cynode_protocol::Outcome {
        exit_code: Some(0),
        ..cynode_protocol::Outcome::new(cynode_protocol::FinishStatus::Succeeded, duration_ms)
    }
}

/// The details of the audit entries of `action`, in chain order (the entries waiting for the chainer are linked
/// first).
pub async fn audited(pool: &PgPool, action: &str) -> Vec<serde_json::Value> {
    cynode_orchestrator::audit::flush(pool).await.expect("link the audit entries");
    sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = $1 ORDER BY seq")
        .bind(action)
        .fetch_all(pool)
        .await
        .expect("audit")
}
