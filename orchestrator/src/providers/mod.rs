//! External model providers: an OpenAI-compatible API (base URL, key, models) that model calls may use when no
//! inference node serves the model, or when the inference queue is long ([`route`]).
//!
//! A provider is served by a *provider node* in every gateway replica (the gateway's `providers` module): an
//! in-process node agent whose only executor is `provider`, registered over loopback with a node key made for
//! that provider. So a provider call is an ordinary job — leased, fenced, retried, streamed, cancelled and
//! counted in the usage ledger like any model step — and N replicas share a provider's load.
//!
//! Secrets: the API key and the provider node's key are sealed with the master key (contexts `provider:<id>` and
//! `provider-node:<id>`); listings say only whether a key is set. The key leaves the store only for the provider
//! node, which sends it as the `Authorization` header and nowhere else: never to a sandbox, a prompt, a log, an
//! API response or an error message.

mod route;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use url::Url;
use uuid::Uuid;

pub use route::{PROVIDER_LABEL, Routed, Via, executor_for, route, route_with};

use crate::admin::AdminError;
use crate::audit;
use crate::crypto::{SecretBox, hash_credential};
use crate::outbound_guard::OutboundGuard;

/// The executor name a provider node key grants.
const EXECUTOR: &str = "provider";
/// Longest API key accepted.
const MAX_KEY: usize = 4096;

/// A provider as configured (from the bootstrap file or `cynode admin provider add`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// Unique name: 1–63 of `a-z 0-9 _ -`, starting with a letter or digit.
    pub name: String,
    /// The install (by name) whose model calls may use it; absent: every install, the console and the API.
    #[serde(default)]
    pub install: Option<String>,
    /// Base URL of the OpenAI-compatible API (the `/v1/…` paths are appended), e.g. `https://api.example.com`.
    pub base_url: String,
    /// Bearer key, if the provider needs one.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Models it may serve (the first is the default for calls that name none).
    pub models: Vec<String>,
    /// Calls it runs at once per gateway replica.
    #[serde(default = "default_concurrent")]
    pub max_concurrent: u32,
    /// Queued inference jobs at or above which calls go to the provider although a local node serves the
    /// model; 0: only when no online node serves it.
    #[serde(default = "default_threshold")]
    pub queue_threshold: u32,
    /// Whether it is used.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn default_concurrent() -> u32 {
    8
}
fn default_threshold() -> u32 {
    8
}
fn yes() -> bool {
    true
}

/// A provider as listed: never a key.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ProviderInfo {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// The install it serves (name), or `None` for all.
    pub install: Option<String>,
    /// Base URL.
    pub base_url: String,
    /// Models.
    pub models: Vec<String>,
    /// Whether an API key is stored.
    pub has_key: bool,
    /// Calls at once per replica.
    pub max_concurrent: i32,
    /// Queue threshold.
    pub queue_threshold: i32,
    /// Whether it is used.
    pub enabled: bool,
    /// Provider nodes seen in the last minute (one per gateway replica).
    pub nodes_online: i64,
}

/// What [`put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// A new provider.
    Created,
    /// An existing provider changed (its nodes restart with the new settings).
    Updated,
    /// Already as given.
    Unchanged,
}

/// What a gateway replica needs to run a provider's node: secrets opened.
#[derive(Debug, Clone)]
pub struct Served {
    /// Id (the value of the [`PROVIDER_LABEL`] its jobs carry).
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Base URL.
    pub base_url: String,
    /// Models (the first is the default).
    pub models: Vec<String>,
    /// API key.
    pub api_key: Option<SecretString>,
    /// The provider node's key.
    pub node_key: SecretString,
    /// Calls at once.
    pub max_concurrent: u32,
    /// Changes whenever the provider does (a replica restarts its node then).
    pub version: chrono::DateTime<chrono::Utc>,
}

fn invalid(msg: impl Into<String>) -> AdminError {
    AdminError::Invalid(msg.into())
}

/// Checks a spec: name, URL (scheme, no credentials, not an internal address unless `guard` allows it), models,
/// limits, key shape. Messages say what to change and never contain the key.
///
/// # Errors
/// [`AdminError::Invalid`].
pub fn validate(spec: &ProviderSpec, guard: &OutboundGuard) -> Result<Url, AdminError> {
    let name_ok = !spec.name.is_empty()
        && spec.name.len() <= 63
        && spec.name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && spec.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !name_ok {
        return Err(invalid(format!(
            "provider name `{}` is not valid: 1–63 of a-z 0-9 _ -, starting with a letter or digit",
            spec.name
        )));
    }
    let url = Url::parse(spec.base_url.trim())
        .map_err(|e| invalid(format!("provider `{}`: base_url is not a URL ({e})", spec.name)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("provider `{}`: base_url must be http:// or https://", spec.name)));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!(
            "provider `{}`: base_url must not carry credentials; give the key as api_key",
            spec.name
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!("provider `{}`: base_url must have no query or fragment", spec.name)));
    }
    if url.path().trim_end_matches('/').ends_with("/v1") {
        return Err(invalid(format!(
            "provider `{}`: give base_url without the trailing /v1 (CyNode appends /v1/chat/completions)",
            spec.name
        )));
    }
    // The refusal names `outbound.allow_cidrs` itself.
    guard.check_url(&url).map_err(|e| invalid(format!("provider `{}`: {e}", spec.name)))?;
    if spec.models.is_empty() || spec.models.len() > 64 {
        return Err(invalid(format!("provider `{}`: list 1–64 models it may serve", spec.name)));
    }
    if let Some(m) = spec.models.iter().find(|m| m.trim().is_empty() || m.len() > 128 || m.trim() != m.as_str()) {
        return Err(invalid(format!("provider `{}`: model `{m}` is not a valid model name", spec.name)));
    }
    if !(1..=256).contains(&spec.max_concurrent) {
        return Err(invalid(format!("provider `{}`: max_concurrent must be 1–256", spec.name)));
    }
    if spec.queue_threshold > 100_000 {
        return Err(invalid(format!("provider `{}`: queue_threshold must be at most 100000", spec.name)));
    }
    if let Some(k) = &spec.api_key {
        let k = k.expose_secret();
        if k.is_empty() || k.len() > MAX_KEY || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(format!(
                "provider `{}`: api_key must be 1–{MAX_KEY} characters without spaces or control characters",
                spec.name
            )));
        }
    }
    Ok(url)
}

/// Creates or updates the provider named in `spec` (idempotent: the same spec twice changes nothing). A new
/// provider gets its own node key (granting only `provider`). Audited as `provider.created` / `provider.updated`
/// (without the key).
///
/// # Errors
/// [`AdminError::Invalid`] for a bad spec or an unknown install; [`AdminError::Db`]; a stored key sealed under
/// another master key is reported as invalid.
pub async fn put(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    guard: &OutboundGuard,
    actor: &str,
    spec: &ProviderSpec,
) -> Result<(Uuid, Put), AdminError> {
    let url = validate(spec, guard)?;
    let base_url = url.as_str().trim_end_matches('/').to_string();
    let install: Option<Uuid> = match &spec.install {
        None => None,
        Some(name) => Some(
            sqlx::query_scalar("SELECT id FROM installs WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| invalid(format!("provider `{}`: no install is named `{name}`", spec.name)))?,
        ),
    };
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cynode.providers'))").execute(&mut *conn).await?;
    type Row = (Uuid, Option<Uuid>, String, Vec<String>, Option<Vec<u8>>, i32, i32, bool);
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, install_id, base_url, models, api_key, max_concurrent, queue_threshold, enabled
         FROM providers WHERE name = $1",
    )
    .bind(&spec.name)
    .fetch_optional(&mut *conn)
    .await?;
    let detail = serde_json::json!({
        "install": spec.install, "base_url": base_url, "models": spec.models, "has_key": spec.api_key.is_some(),
        "max_concurrent": spec.max_concurrent, "queue_threshold": spec.queue_threshold, "enabled": spec.enabled,
    });
    let concurrent = i32::try_from(spec.max_concurrent).unwrap_or(i32::MAX);
    let threshold = i32::try_from(spec.queue_threshold).unwrap_or(i32::MAX);
    let Some((id, old_install, old_url, old_models, old_key, old_conc, old_thr, old_enabled)) = row else {
        let id = Uuid::now_v7();
        let node_key = SecretString::from(format!("cynk_{}", hex::encode(rand::random::<[u8; 24]>())));
        let key_id = Uuid::now_v7();
        sqlx::query("INSERT INTO node_keys (id, name, key_hash, grants) VALUES ($1, $2, $3, $4)")
            .bind(key_id)
            .bind(format!("provider:{id}"))
            .bind(hash_credential(node_key.expose_secret()))
            .bind(serde_json::json!({ "executors": [EXECUTOR] }))
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO providers (id, name, install_id, base_url, models, api_key, node_key, node_key_id,
                                    max_concurrent, queue_threshold, enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(&spec.name)
        .bind(install)
        .bind(&base_url)
        .bind(&spec.models)
        .bind(spec.api_key.as_ref().map(|k| secrets.seal(&key_context(id), k.expose_secret().as_bytes())))
        .bind(secrets.seal(&node_context(id), node_key.expose_secret().as_bytes()))
        .bind(key_id)
        .bind(concurrent)
        .bind(threshold)
        .bind(spec.enabled)
        .execute(&mut *conn)
        .await?;
        audit::append(conn, actor, "provider.created", &spec.name, &detail).await?;
        return Ok((id, Put::Created));
    };
    let stored_key = match old_key {
        Some(sealed) => Some(secrets.open(&key_context(id), &sealed).map_err(|_| {
            invalid(format!(
                "provider `{}`: its stored key was sealed under another master key; remove and add it again",
                spec.name
            ))
        })?),
        None => None,
    };
    let key_same = stored_key.as_deref() == spec.api_key.as_ref().map(|k| k.expose_secret().as_bytes());
    if old_install == install
        && old_url == base_url
        && old_models == spec.models
        && key_same
        && old_conc == concurrent
        && old_thr == threshold
        && old_enabled == spec.enabled
    {
        return Ok((id, Put::Unchanged));
    }
    sqlx::query(
        "UPDATE providers SET install_id = $2, base_url = $3, models = $4, api_key = $5, max_concurrent = $6,
                              queue_threshold = $7, enabled = $8, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(install)
    .bind(&base_url)
    .bind(&spec.models)
    .bind(spec.api_key.as_ref().map(|k| secrets.seal(&key_context(id), k.expose_secret().as_bytes())))
    .bind(concurrent)
    .bind(threshold)
    .bind(spec.enabled)
    .execute(&mut *conn)
    .await?;
    let mut detail = detail;
    detail["key_changed"] = serde_json::json!(!key_same);
    audit::append(conn, actor, "provider.updated", &spec.name, &detail).await?;
    Ok((id, Put::Updated))
}

/// Every provider, by name.
///
/// # Errors
/// Store failures.
pub async fn list(pool: &PgPool) -> Result<Vec<ProviderInfo>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.id, p.name, i.name AS install, p.base_url, p.models, p.api_key IS NOT NULL AS has_key,
                p.max_concurrent, p.queue_threshold, p.enabled,
                (SELECT count(*) FROM nodes n
                 WHERE n.key_id = p.node_key_id AND n.last_seen_at > now() - interval '60 seconds') AS nodes_online
         FROM providers p LEFT JOIN installs i ON i.id = p.install_id
         ORDER BY p.name",
    )
    .fetch_all(pool)
    .await
}

/// Removes the provider named `name`: its node key is revoked (its nodes stop getting work within seconds; calls
/// they run finish), queued calls for it fail as unschedulable. Audited as `provider.removed`.
///
/// # Errors
/// [`AdminError::NotFound`]; store failures.
pub async fn remove(pool: &PgPool, actor: &str, name: &str) -> Result<(), AdminError> {
    let mut tx = pool.begin().await?;
    let key: Option<Uuid> = sqlx::query_scalar("DELETE FROM providers WHERE name = $1 RETURNING node_key_id")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(key) = key else {
        return Err(AdminError::NotFound(format!("no provider is named `{name}` (see `cynode admin provider list`)")));
    };
    sqlx::query("UPDATE node_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    audit::append(&mut tx, actor, "provider.removed", name, &serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// The enabled providers with their secrets opened, for the replica that runs their nodes. A provider whose
/// secrets cannot be opened (another master key) is left out and logged (by name only).
///
/// # Errors
/// Store failures.
pub async fn served(pool: &PgPool, secrets: &SecretBox) -> Result<Vec<Served>, sqlx::Error> {
    type Row = (Uuid, String, String, Vec<String>, Option<Vec<u8>>, Vec<u8>, i32, chrono::DateTime<chrono::Utc>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, name, base_url, models, api_key, node_key, max_concurrent, updated_at
         FROM providers WHERE enabled ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, name, base_url, models, api_key, node_key, max_concurrent, version) in rows {
        let open = |context: String, sealed: &[u8]| {
            secrets.open(&context, sealed).ok().and_then(|b| String::from_utf8(b).ok()).map(SecretString::from)
        };
        let Some(node_key) = open(node_context(id), &node_key) else {
            tracing::error!(provider = %name, "a provider's secrets cannot be opened with this master key; not serving it");
            continue;
        };
        let api_key = match api_key {
            None => None,
            Some(sealed) => match open(key_context(id), &sealed) {
                Some(k) => Some(k),
                None => {
                    tracing::error!(provider = %name, "a provider's key cannot be opened with this master key; not serving it");
                    continue;
                }
            },
        };
        out.push(Served {
            id,
            name,
            base_url,
            models,
            api_key,
            node_key,
            max_concurrent: u32::try_from(max_concurrent).unwrap_or(1),
            version,
        });
    }
    Ok(out)
}

/// What memory's embedder needs of the provider it is configured with ([`crate::memory::ProviderEmbedder`]).
#[derive(Clone)]
pub struct ForEmbedding {
    /// Base URL (without `/v1`).
    pub base_url: String,
    /// API key, opened.
    pub api_key: Option<SecretString>,
    /// Changes whenever the provider does.
    pub version: chrono::DateTime<chrono::Utc>,
}

/// The provider named `name`, for memory's embedder of `model`: it must exist, be enabled, serve every install
/// (an install's own provider and key are not spent on every install's memories), list `model`, and its key must
/// open. `Ok(Err(why))` says what to change, naming no secret.
///
/// # Errors
/// Store failures.
pub async fn for_embedding(
    pool: &PgPool,
    secrets: &SecretBox,
    name: &str,
    model: &str,
) -> Result<Result<ForEmbedding, String>, sqlx::Error> {
    type Row = (Uuid, Option<Uuid>, String, Vec<String>, Option<Vec<u8>>, bool, chrono::DateTime<chrono::Utc>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, install_id, base_url, models, api_key, enabled, updated_at FROM providers WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    let Some((id, install, base_url, models, api_key, enabled, version)) = row else {
        return Ok(Err(format!(
            "memory.embedder_provider is `{name}`, but no provider has that name (see `cynode admin provider list`)"
        )));
    };
    if install.is_some() {
        return Ok(Err(format!(
            "provider `{name}` serves one install only; memory's embedder needs a provider for every install"
        )));
    }
    if !enabled {
        return Ok(Err(format!("provider `{name}` is disabled")));
    }
    if !models.iter().any(|m| m == model) {
        return Ok(Err(format!(
            "provider `{name}` does not list the embedding model `{model}` (memory.embedding_model); add it to the \
             provider's models"
        )));
    }
    let api_key = match api_key {
        None => None,
        Some(sealed) => match secrets.open(&key_context(id), &sealed).ok().and_then(|b| String::from_utf8(b).ok()) {
            Some(k) => Some(SecretString::from(k)),
            None => return Ok(Err(format!("provider `{name}`'s key cannot be opened with this master key"))),
        },
    };
    Ok(Ok(ForEmbedding { base_url, api_key, version }))
}

fn key_context(id: Uuid) -> String {
    format!("provider:{id}")
}

fn node_context(id: Uuid) -> String {
    format!("provider-node:{id}")
}
