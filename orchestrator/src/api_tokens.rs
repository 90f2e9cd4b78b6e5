//! API tokens for the user API: `cyn_` followed by 64 hex characters (32 random bytes), shown once at creation
//! and stored only as a SHA-256 hash. A token acts under its name (the requester of what it submits), within one
//! install (tenant) or globally, with a role.
//!
//! Verification looks the hash up through a unique index, so it takes the same time whatever the token's
//! content; a token of the wrong shape is refused before any query. `last_used_at` is refreshed at most once a
//! minute, in the same statement as the lookup.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit;
use crate::crypto::hash_credential;

/// The prefix of every API token (lets secret scanners recognise leaked tokens).
pub const PREFIX: &str = "cyn_";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Read, submit, and cancel its own jobs.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A token as listed and as seen by request handlers: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ApiToken {
    /// Token id.
    pub id: Uuid,
    /// Who the token acts as.
    pub name: String,
    /// The install it is limited to; `None` for a global token.
    pub install_id: Option<Uuid>,
    /// Its role (`admin`, `operator`, `viewer`).
    pub role: String,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was last used (refreshed at most once a minute).
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ApiToken {
    /// The token's role (a stored value outside the known set reads as the weakest role).
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Viewer)
    }
}

/// A freshly created token: the secret is shown once and never stored.
#[derive(Debug)]
pub struct CreatedToken {
    /// The token to hand to the client.
    pub token: SecretString,
    /// What was stored.
    pub info: ApiToken,
}

/// Errors managing tokens. Messages never contain a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// A live token already has this name.
    #[error("a token named `{0}` already exists; revoke it first or choose another name")]
    NameTaken(String),
    /// No such live token.
    #[error("there is no live token `{0}`")]
    NotFound(String),
    /// Store failure.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Creates a token named `name` (1–64 characters: letters, digits, `-_.@:`). Audited as `api_token.created`.
///
/// # Errors
/// [`TokenError::Invalid`] for a bad name or an unknown install, [`TokenError::NameTaken`], store failures.
pub async fn create(
    pool: &PgPool,
    actor: &str,
    name: &str,
    install_id: Option<Uuid>,
    role: Role,
) -> Result<CreatedToken, TokenError> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "-_.@:".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(valid) {
        return Err(TokenError::Invalid("a token name is 1–64 characters: letters, digits and -_.@:".into()));
    }
    let token = SecretString::from(format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 32]>())));
    let mut tx = pool.begin().await?;
    if let Some(install) = install_id
        && !crate::installs::exists(&mut tx, install).await?
    {
        return Err(TokenError::Invalid(format!("there is no install {install}")));
    }
    let inserted: Result<ApiToken, sqlx::Error> = sqlx::query_as(
        "INSERT INTO api_tokens (id, name, token_hash, install_id, role) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, name, install_id, role, created_at, last_used_at, revoked_at",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(hash_credential(token.expose_secret()))
    .bind(install_id)
    .bind(role.as_str())
    .fetch_one(&mut *tx)
    .await;
    let info = match inserted {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Err(TokenError::NameTaken(name.into())),
        other => other?,
    };
    let detail = serde_json::json!({ "name": name, "install": install_id, "role": role.as_str() });
    audit::append(&mut tx, actor, "api_token.created", &info.id.to_string(), &detail).await?;
    tx.commit().await?;
    Ok(CreatedToken { token, info })
}

/// The live token presented, if any; refreshes `last_used_at` when it is older than a minute.
///
/// # Errors
/// Store failures only; an unknown, revoked or malformed token is `None`.
pub async fn verify(pool: &PgPool, presented: &str) -> Result<Option<ApiToken>, sqlx::Error> {
    let Some(rest) = presented.strip_prefix(PREFIX) else { return Ok(None) };
    if rest.len() != 64 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    sqlx::query_as(
        "WITH t AS (SELECT id, name, install_id, role, created_at, last_used_at, revoked_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL),
         touched AS (
             UPDATE api_tokens SET last_used_at = now()
             WHERE id IN (SELECT id FROM t) AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
         )
         SELECT id, name, install_id, role, created_at, last_used_at, revoked_at FROM t",
    )
    .bind(hash_credential(presented))
    .fetch_optional(pool)
    .await
}

/// Revokes the live token with this id or name. Audited as `api_token.revoked`.
///
/// # Errors
/// [`TokenError::NotFound`], store failures.
pub async fn revoke(pool: &PgPool, actor: &str, id_or_name: &str) -> Result<ApiToken, TokenError> {
    let id = Uuid::parse_str(id_or_name).ok();
    let mut tx = pool.begin().await?;
    let revoked: Option<ApiToken> = sqlx::query_as(
        "UPDATE api_tokens SET revoked_at = now()
         WHERE revoked_at IS NULL AND (id = $1 OR ($1 IS NULL AND name = $2)) RETURNING id, name, install_id, role, created_at, last_used_at, revoked_at",
    )
    .bind(id)
    .bind(id_or_name)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(token) = revoked else { return Err(TokenError::NotFound(id_or_name.into())) };
    let detail = serde_json::json!({ "name": token.name });
    audit::append(&mut tx, actor, "api_token.revoked", &token.id.to_string(), &detail).await?;
    tx.commit().await?;
    Ok(token)
}

/// Every token, newest first (revoked ones too, marked).
///
/// # Errors
/// Store failures.
pub async fn list(pool: &PgPool) -> Result<Vec<ApiToken>, sqlx::Error> {
    sqlx::query_as("SELECT id, name, install_id, role, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY created_at DESC, id DESC").fetch_all(pool).await
}
