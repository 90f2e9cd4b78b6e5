//! Managing roles for the CLI and the user API alike: removing a grant, and whether an API token speaks for an
//! admin of an install (its linked CyNode user has a chat identity there whose install-wide role is `admin`).
//! Every change is audited, as in [`super::set_role`].

use sqlx::PgPool;
use uuid::Uuid;

use crate::audit;

/// Removes the role grant of `user` in `install` (in `channel` only, when given), audited as `role.removed`
/// with the role it had. Afterwards the user has the install-wide role there (for a channel grant) or the
/// install's default role.
///
/// # Errors
/// Store failures.
///
/// Returns the role the grant had, or `None` when there was no grant (then nothing is audited).
pub async fn remove_role(
    pool: &PgPool,
    actor: &str,
    install: Uuid,
    channel: Option<&str>,
    user: &str,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let before: Option<String> = sqlx::query_scalar(
        "DELETE FROM role_grants WHERE install_id = $1 AND channel = $2 AND user_id = $3 RETURNING role",
    )
    .bind(install)
    .bind(channel.unwrap_or(""))
    .bind(user)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(before) = before else { return Ok(None) };
    let detail = serde_json::json!({ "install": install, "channel": channel, "user": user, "before": before });
    audit::append(&mut tx, actor, "role.removed", &format!("{install}/{user}"), &detail).await?;
    tx.commit().await?;
    Ok(Some(before))
}

/// Whether the API token `token` is linked to a CyNode user with a chat identity in `install` whose
/// install-wide role there is `admin` (channel overrides do not make an install admin).
///
/// # Errors
/// Store failures.
pub async fn token_is_install_admin(pool: &PgPool, token: Uuid, install: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM api_tokens t
             JOIN chat_identities c ON c.principal_id = t.principal_id AND c.install_id = $2
             JOIN role_grants g ON g.install_id = c.install_id AND g.user_id = c.user_id AND g.channel = ''
             WHERE t.id = $1 AND t.revoked_at IS NULL AND g.role = 'admin')",
    )
    .bind(token)
    .bind(install)
    .fetch_one(pool)
    .await
}
