//! Installs (tenants) as an admin sees them, and switching them off and on. A disabled install's platform
//! requests are refused (after the gateways' install cache expires, `ingress.install_cache_ttl_s`; an install in the bootstrap file
//! follows that file again at its next import).

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::AdminError;
use crate::audit;

/// An install as listed: never its secrets.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct InstallInfo {
    /// Id (what `--install` of API tokens takes).
    pub id: Uuid,
    /// `slack`, `discord`, `telegram` or `webhook`.
    pub platform: String,
    /// What identifies it in requests (team id, application id, bot name, endpoint).
    pub external_id: String,
    /// Display name.
    pub name: String,
    /// Whether its requests are accepted.
    pub enabled: bool,
    /// Tasks recorded for it.
    pub tasks: i64,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The listing query, for `concat!` into static SQL.
macro_rules! list {
    () => {
        "SELECT i.id, i.platform, i.external_id, i.name, i.enabled,
        (SELECT count(*) FROM tasks t WHERE t.install_id = i.id) AS tasks, i.created_at, i.updated_at
    FROM installs i"
    };
}

/// Every install, by platform and name.
///
/// # Errors
/// Store failures.
pub async fn list_installs(pool: &PgPool) -> Result<Vec<InstallInfo>, AdminError> {
    Ok(sqlx::query_as(concat!(list!(), " ORDER BY i.platform, i.name")).fetch_all(pool).await?)
}

/// Enables or disables the install with this id, or with this name or external id when that names exactly one.
/// Audited as `install.enabled` / `install.disabled` (only when it changes).
///
/// # Errors
/// [`AdminError::NotFound`], [`AdminError::Invalid`] when a name matches several installs, store failures.
pub async fn set_install_enabled(
    pool: &PgPool,
    actor: &str,
    id_or_name: &str,
    enabled: bool,
) -> Result<InstallInfo, AdminError> {
    let id = Uuid::parse_str(id_or_name).ok();
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM installs WHERE id = $1 OR ($1 IS NULL AND (name = $2 OR external_id = $2)) FOR UPDATE",
    )
    .bind(id)
    .bind(id_or_name)
    .fetch_all(&mut *tx)
    .await?;
    let id = match ids.as_slice() {
        [one] => *one,
        [] => return Err(AdminError::NotFound(format!("there is no install `{id_or_name}`"))),
        _ => {
            return Err(AdminError::Invalid(format!(
                "`{id_or_name}` names {} installs; use the id (see `cynode admin install list`)",
                ids.len()
            )));
        }
    };
    let changed = sqlx::query("UPDATE installs SET enabled = $2, updated_at = now() WHERE id = $1 AND enabled <> $2")
        .bind(id)
        .bind(enabled)
        .execute(&mut *tx)
        .await?;
    let info: InstallInfo = sqlx::query_as(concat!(list!(), " WHERE i.id = $1")).bind(id).fetch_one(&mut *tx).await?;
    if changed.rows_affected() > 0 {
        let action = if enabled { "install.enabled" } else { "install.disabled" };
        let detail = serde_json::json!({ "platform": info.platform, "name": info.name });
        audit::append(&mut tx, actor, action, &id.to_string(), &detail).await?;
    }
    tx.commit().await?;
    Ok(info)
}
