//! Node registration: pre-shared keys (stored hashed), capability grants, negotiated protocol version, and
//! the short-lived tokens nodes use for every other call.

mod token;

use std::collections::BTreeSet;
use std::time::Duration;

use cynode_protocol::{Capabilities, ExecutorKind, RegisterRequest};
use sqlx::PgPool;
use uuid::Uuid;

pub use token::{NodeClaims, TokenError, TokenKeys};

use crate::audit;
use crate::crypto::hash_credential;

/// A node heard from (a lease request, a heartbeat, a registration) within this long is online. The lease loop
/// records it at most every [`crate::dispatch::SEEN_EVERY`], so a polling node never looks older than that
/// plus its poll interval, and one that stops polling is offline within this long.
pub const ONLINE_WITHIN: Duration = Duration::from_secs(10);

/// [`ONLINE_WITHIN`] in seconds, for SQL (`now() - $1 * interval '1 second'`).
pub fn online_within_s() -> f64 {
    ONLINE_WITHIN.as_secs_f64()
}

/// Why a registration was refused. Messages are safe to return to the node.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// No such key, or it was revoked.
    #[error("unknown or revoked node key")]
    UnknownKey,
    /// No protocol version in common.
    #[error("no common protocol version: this orchestrator speaks {supported:?}, the node offered {offered:?}")]
    Version {
        /// What we speak.
        supported: Vec<u32>,
        /// What the node offered.
        offered: Vec<u32>,
    },
    /// The node claims an executor its key does not grant.
    #[error(
        "node key `{key}` does not grant the `{executor}` executor; ask an admin to grant it or disable it on the node"
    )]
    NotGranted {
        /// Key name.
        key: String,
        /// The executor.
        executor: &'static str,
    },
    /// Malformed request.
    #[error("{0}")]
    Invalid(String),
    /// Store failure.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A successful registration.
#[derive(Debug, Clone)]
pub struct Registered {
    /// Node id.
    pub node_id: Uuid,
    /// Key id.
    pub key_id: Uuid,
    /// Negotiated version.
    pub version: u32,
}

/// Registers (or re-registers) a node presenting `key`.
///
/// # Errors
/// [`RegisterError`]; capability violations are audited.
pub async fn register(pool: &PgPool, key: &str, req: &RegisterRequest) -> Result<Registered, RegisterError> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 128 {
        return Err(RegisterError::Invalid("node name must be 1–128 characters".into()));
    }
    let version = cynode_protocol::negotiate(&req.protocol_versions).ok_or_else(|| RegisterError::Version {
        supported: cynode_protocol::SUPPORTED_VERSIONS.to_vec(),
        offered: req.protocol_versions.clone(),
    })?;
    let row: Option<(Uuid, String, serde_json::Value)> =
        sqlx::query_as("SELECT id, name, grants FROM node_keys WHERE key_hash = $1 AND revoked_at IS NULL")
            .bind(hash_credential(key))
            .fetch_optional(pool)
            .await?;
    let Some((key_id, key_name, grants)) = row else { return Err(RegisterError::UnknownKey) };
    let granted: BTreeSet<String> =
        grants.get("executors").and_then(|e| serde_json::from_value(e.clone()).ok()).unwrap_or_default();
    if let Some(e) = req.capabilities.executors.iter().find(|e| !granted.contains(e.as_str())) {
        let mut tx = pool.begin().await?;
        let detail = serde_json::json!({ "node": name, "executor": e.as_str() });
        audit::append(&mut tx, &format!("node-key:{key_name}"), "node.register.refused", name, &detail).await?;
        tx.commit().await?;
        return Err(RegisterError::NotGranted { key: key_name, executor: e.as_str() });
    }
    let caps = sanitize(&req.capabilities);
    let agent_version: Option<String> = req
        .agent_version
        .as_deref()
        .map(|v| v.chars().filter(|c| !c.is_control()).take(64).collect::<String>())
        .filter(|v| !v.trim().is_empty());
    let mut tx = pool.begin().await?;
    // `before` is read from the snapshot the statement starts with, so it is the row as it was before the upsert.
    let (node_id, inserted, changed): (Uuid, bool, bool) = sqlx::query_as(
        "WITH before AS (SELECT capabilities, protocol FROM nodes WHERE key_id = $3 AND name = $2)
         INSERT INTO nodes (id, name, key_id, capabilities, protocol, agent_version) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (key_id, name) DO UPDATE
             SET capabilities = $4, protocol = $5, agent_version = $6, last_seen_at = now()
         RETURNING id, (xmax = 0),
             NOT EXISTS (SELECT 1 FROM before WHERE before.capabilities = $4 AND before.protocol = $5)",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(key_id)
    .bind(serde_json::to_value(&caps).unwrap_or_default())
    .bind(i32::try_from(version).unwrap_or(1))
    .bind(agent_version)
    .fetch_one(&mut *tx)
    .await?;
    if inserted {
        let detail = serde_json::to_value(&caps).unwrap_or_default();
        audit::append(&mut tx, &format!("node-key:{key_name}"), "node.registered", &node_id.to_string(), &detail)
            .await?;
    }
    // An event for a new node or changed capabilities, not for token renewals (which re-register every few
    // minutes). Deliverers find it by polling (there is no waker here).
    if changed {
        let event = serde_json::json!({ "node_id": node_id, "name": name, "key": key_name,
                                        "executors": caps.executors, "first": inserted });
        crate::outbox::emit(&mut tx, crate::outbox::EventType::NodeRegistered, node_id, &event).await?;
    }
    tx.commit().await?;
    Ok(Registered { node_id, key_id, version })
}

/// Normalises what a node reports: sorted, deduplicated, bounded.
fn sanitize(caps: &Capabilities) -> Capabilities {
    let mut c = caps.clone();
    c.executors.sort();
    c.executors.dedup();
    c.templates.sort();
    c.templates.dedup();
    c.templates.truncate(256);
    c.models.sort();
    c.models.dedup();
    c.models.truncate(256);
    c.gpus.truncate(64);
    c.max_concurrent_jobs = c.max_concurrent_jobs.clamp(1, 256);
    c.colocated = c.executors.contains(&ExecutorKind::Docker) && c.executors.contains(&ExecutorKind::Inference);
    c
}

/// The stored capabilities of a node whose key is still valid.
///
/// # Errors
/// Store failures.
pub async fn capabilities(pool: &PgPool, node_id: Uuid) -> Result<Option<Capabilities>, sqlx::Error> {
    let caps: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT n.capabilities FROM nodes n JOIN node_keys k ON k.id = n.key_id
         WHERE n.id = $1 AND k.revoked_at IS NULL",
    )
    .bind(node_id)
    .fetch_optional(pool)
    .await?;
    Ok(caps.and_then(|v| serde_json::from_value(v).ok()))
}
