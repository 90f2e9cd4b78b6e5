//! Node keys: the pre-shared keys node agents register with. Stored as a hash; the key is shown once.

use secrecy::SecretString;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::AdminError;
use crate::audit;
use crate::crypto::hash_credential;

/// Executors a key may grant.
const EXECUTORS: [&str; 3] = ["docker", "inference", "host"];

/// A node key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct NodeKeyInfo {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Executors nodes with this key may run.
    pub executors: Vec<String>,
    /// Nodes registered with this key.
    pub nodes: i64,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Revoked (nodes with it can no longer register, lease or report).
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A freshly created key: shown once, stored only hashed.
#[derive(Debug)]
pub struct CreatedNodeKey {
    /// The key to give to `cynode-node --key`.
    pub key: SecretString,
    /// What was stored.
    pub info: NodeKeyInfo,
}

/// The listing query, for `concat!` into static SQL.
macro_rules! list {
    () => {
        "SELECT k.id, k.name,
        ARRAY(SELECT jsonb_array_elements_text(coalesce(k.grants->'executors', '[]'::jsonb))) AS executors,
        (SELECT count(*) FROM nodes n WHERE n.key_id = k.id) AS nodes, k.created_at, k.revoked_at
    FROM node_keys k"
    };
}

/// Creates a node key named `name` granting `executors` (`docker`, `inference`, `host`; empty means `docker`).
/// Audited as `node_key.created`.
///
/// # Errors
/// [`AdminError::Invalid`] for a bad name or executor, or a name already in use; store failures.
pub async fn create_node_key(
    pool: &PgPool,
    actor: &str,
    name: &str,
    executors: &[String],
) -> Result<CreatedNodeKey, AdminError> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(valid) {
        return Err(AdminError::Invalid("a node key name is 1–64 characters: letters, digits and -_.".into()));
    }
    let mut grants: Vec<String> = Vec::new();
    for e in executors.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        if !EXECUTORS.contains(&e) {
            return Err(AdminError::Invalid(format!("unknown executor `{e}`; known: {}", EXECUTORS.join(", "))));
        }
        if !grants.iter().any(|g| g == e) {
            grants.push(e.to_string());
        }
    }
    if grants.is_empty() {
        grants.push("docker".into());
    }
    let key = format!("cynk_{}", hex::encode(rand::random::<[u8; 24]>()));
    let id = Uuid::now_v7();
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO node_keys (id, name, key_hash, grants) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
    )
    .bind(id)
    .bind(name)
    .bind(hash_credential(&key))
    .bind(serde_json::json!({ "executors": grants }))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AdminError::Invalid(format!(
            "a node key named `{name}` already exists (revoked keys keep their name); choose another name"
        )));
    }
    audit::append(&mut tx, actor, "node_key.created", name, &serde_json::json!({ "executors": grants })).await?;
    let info = sqlx::query_as(concat!(list!(), " WHERE k.id = $1")).bind(id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(CreatedNodeKey { key: SecretString::from(key), info })
}

/// Every node key, newest first (revoked ones too).
///
/// # Errors
/// Store failures.
pub async fn list_node_keys(pool: &PgPool) -> Result<Vec<NodeKeyInfo>, AdminError> {
    Ok(sqlx::query_as(concat!(list!(), " ORDER BY k.created_at DESC, k.name")).fetch_all(pool).await?)
}

/// Revokes the live key with this id or name: its nodes can no longer register, and get no new jobs within
/// seconds (dispatch caches a node's capabilities for 5 s); jobs they already hold run to their end. Audited as
/// `node_key.revoked`.
///
/// # Errors
/// [`AdminError::NotFound`], store failures.
pub async fn revoke_node_key(pool: &PgPool, actor: &str, id_or_name: &str) -> Result<NodeKeyInfo, AdminError> {
    let id = Uuid::parse_str(id_or_name).ok();
    let mut tx = pool.begin().await?;
    let revoked: Option<Uuid> = sqlx::query_scalar(
        "UPDATE node_keys SET revoked_at = now()
         WHERE revoked_at IS NULL AND (id = $1 OR ($1 IS NULL AND name = $2)) RETURNING id",
    )
    .bind(id)
    .bind(id_or_name)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = revoked else {
        return Err(AdminError::NotFound(format!("there is no live node key `{id_or_name}`")));
    };
    let info: NodeKeyInfo = sqlx::query_as(concat!(list!(), " WHERE k.id = $1")).bind(id).fetch_one(&mut *tx).await?;
    audit::append(&mut tx, actor, "node_key.revoked", &info.name, &serde_json::json!({ "nodes": info.nodes })).await?;
    tx.commit().await?;
    Ok(info)
}
