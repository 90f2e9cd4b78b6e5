//! Managing roles for the CLI, the user API and the bootstrap file alike: removing a grant, reading and checking
//! an install's team settings, and whether an API token speaks for an admin of an install (its linked CyNode user has a chat identity there whose install-wide role is `admin`).
//! Every change is audited, as in [`super::set_role`].

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{RoleGrant, TeamRole};
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

/// An install's team settings: the role of users nobody granted one, and what each role may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamSettings {
    /// `member`, `viewer` or `none`.
    pub default_role: String,
    /// Role name → what it may use (absent roles and fields: no restriction).
    pub grants: BTreeMap<String, RoleGrant>,
}

/// The team settings of `install` (`member` and no grants when none were set).
///
/// # Errors
/// Store failures.
pub async fn team_settings(pool: &PgPool, install: Uuid) -> Result<TeamSettings, sqlx::Error> {
    let row: Option<(String, serde_json::Value)> =
        sqlx::query_as("SELECT default_role, grants FROM team_settings WHERE install_id = $1")
            .bind(install)
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        Some((default_role, grants)) => {
            TeamSettings { default_role, grants: serde_json::from_value(grants).unwrap_or_default() }
        }
        None => TeamSettings { default_role: TeamRole::Member.as_str().into(), grants: BTreeMap::new() },
    })
}

/// Checks team settings as the bootstrap file and the API accept them: a default role of `member`, `viewer` or
/// `none`, grants keyed by role names, and tool names the agent has.
///
/// # Errors
/// What is wrong, phrased for the user.
pub fn check_settings(default_role: &str, grants: &BTreeMap<String, RoleGrant>) -> Result<TeamRole, String> {
    let role = TeamRole::parse(default_role)
        .filter(|r| matches!(r, TeamRole::Member | TeamRole::Viewer | TeamRole::None))
        .ok_or_else(|| format!("default_role is member, viewer or none, not `{default_role}`"))?;
    if let Some(bad) = grants.keys().find(|r| TeamRole::parse(r).is_none()) {
        return Err(format!("`{bad}` is not a role (admin, approver, member, viewer, none)"));
    }
    let mut tools = grants.values().filter_map(|g| g.tools.as_deref()).flatten();
    if let Some(bad) = tools.find(|n| !crate::agent::tools::NAMES.contains(&n.as_str())) {
        return Err(format!("`{bad}` is not an agent tool ({})", crate::agent::tools::NAMES.join(", ")));
    }
    Ok(role)
}
