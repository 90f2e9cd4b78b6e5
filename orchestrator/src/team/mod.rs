//! Team mode: who is asking. A chat user of an install has a **role** there — `admin`, `approver`, `member`,
//! `viewer` or `none` — granted for the whole install or overridden per channel; users nobody granted a role get
//! the install's default role (`member` unless set). Roles grant commands, what jobs may use (templates, GPU,
//! network), models and agent tools. CyNode users ([`users`]) link several chat identities and API tokens.

pub mod manage;
pub mod users;

pub use manage::{TeamSettings, check_settings, remove_role, team_settings, token_is_install_admin};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit;

/// A role in an install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeamRole {
    /// Nothing but `help`.
    None,
    /// `status` and their own jobs (`jobs`).
    Viewer,
    /// Runs commands, asks, talks to the agent, cancels their own jobs.
    Member,
    /// A member who also counts for policy approver entries `role:approver`.
    Approver,
    /// Everything: approves wherever `role:approver` or `role:admin` is listed, cancels any job of the install.
    Admin,
}

/// Every role, most powerful first.
pub const ROLES: [TeamRole; 5] =
    [TeamRole::Admin, TeamRole::Approver, TeamRole::Member, TeamRole::Viewer, TeamRole::None];

impl TeamRole {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Approver => "approver",
            Self::Member => "member",
            Self::Viewer => "viewer",
            Self::None => "none",
        }
    }

    /// Parses a stored or typed name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        ROLES.into_iter().find(|r| r.as_str() == s)
    }

    /// The commands the role allows by default: a viewer `status`, `jobs` and `help`; `none` only `help`; the
    /// others every command.
    #[must_use]
    pub fn allows_by_default(self, verb: &str) -> bool {
        match self {
            Self::None => verb == "help",
            Self::Viewer => matches!(verb, "status" | "jobs" | "help"),
            Self::Member | Self::Approver | Self::Admin => true,
        }
    }
}

/// Restrictions on what a role may use in an install (absent: no restriction beyond the built-in commands).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    /// Commands the role may use (replaces the built-in list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    /// Sandbox templates the role may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<String>>,
    /// Whether the role may run jobs that use a GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<bool>,
    /// Whether the role may run jobs with network access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
    /// Models the role may use for `ask` and agent turns (`default` names the node's default model, used when
    /// no model is configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Agent tools the role grants (see `agent::tools::NAMES`); a call of another tool is refused and the
    /// refusal goes back to the model as the tool's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
}

/// The name a grant's `models` list uses for the node's default model (an empty configured model).
pub const DEFAULT_MODEL: &str = "default";

fn listed(list: &[String]) -> String {
    if list.is_empty() { "none".to_string() } else { list.join(", ") }
}

/// A user's role where they asked, and what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The role.
    pub role: TeamRole,
    /// Where it comes from: `channel`, `install` or `default`.
    pub from: &'static str,
    /// The install's restrictions for the role.
    pub grant: RoleGrant,
}

impl Standing {
    /// `Ok` when the role may use `verb`; otherwise the refusal shown to the user.
    ///
    /// # Errors
    /// The refusal text.
    pub fn allows_command(&self, verb: &str) -> Result<(), String> {
        let allowed = match &self.grant.commands {
            Some(list) => list.iter().any(|c| c == verb) || verb == "help",
            None => self.role.allows_by_default(verb),
        };
        if allowed {
            return Ok(());
        }
        let what = match (&self.grant.commands, self.role) {
            (Some(list), _) => {
                format!("it allows {}", list.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", "))
            }
            (None, TeamRole::Viewer) => "it can see `status` and your own jobs (`jobs`)".to_string(),
            (None, _) => "it allows nothing but `help`".to_string(),
        };
        Err(format!(
            "Your role here is {}: {what}, not `{verb}`. Ask an admin of this workspace for the member role.",
            self.role.as_str()
        ))
    }

    /// `Ok` when the role may run a job with this template, GPU and network access.
    ///
    /// # Errors
    /// The refusal text.
    pub fn allows_job(&self, template: &str, gpu: bool, network: bool) -> Result<(), String> {
        let role = self.role.as_str();
        if let Some(t) = &self.grant.templates
            && !t.iter().any(|x| x == template)
        {
            return Err(format!("Your role here ({role}) may not run template `{template}` (allowed: {}).", listed(t)));
        }
        if gpu && self.grant.gpu == Some(false) {
            return Err(format!("Your role here ({role}) may not run jobs that use a GPU."));
        }
        if network && self.grant.network == Some(false) {
            return Err(format!("Your role here ({role}) may not run jobs with network access."));
        }
        Ok(())
    }

    /// `Ok` when the role may use `model` (empty: the node's default, listed as [`DEFAULT_MODEL`]).
    ///
    /// # Errors
    /// The refusal text.
    pub fn allows_model(&self, model: &str) -> Result<(), String> {
        let Some(list) = &self.grant.models else { return Ok(()) };
        let name = if model.is_empty() { DEFAULT_MODEL } else { model };
        if list.iter().any(|m| m == name) {
            return Ok(());
        }
        Err(format!(
            "Your role here ({}) may not use model `{name}` (allowed: {}). Ask an admin of this workspace.",
            self.role.as_str(),
            listed(list)
        ))
    }

    /// `Ok` when the role grants the agent tool `tool`.
    ///
    /// # Errors
    /// The refusal text (phrased for the model, which reads it as the tool's result).
    pub fn allows_tool(&self, tool: &str) -> Result<(), String> {
        let Some(list) = &self.grant.tools else { return Ok(()) };
        if list.iter().any(|t| t == tool) {
            return Ok(());
        }
        Err(format!(
            "error: the requester's role here ({}) does not grant the tool `{tool}` (granted: {}); do not call it \
             again, answer without it or tell the user to ask an admin",
            self.role.as_str(),
            listed(list)
        ))
    }
}

/// Where a role can come from, in one row.
#[derive(sqlx::FromRow)]
struct Sources {
    channel_role: Option<String>,
    install_role: Option<String>,
    default_role: Option<String>,
    grants: Option<serde_json::Value>,
}

/// The role of `user` in `install`, in the channel of `conversation` when given: a channel override, else the
/// install-wide grant, else the install's default role (`member` when the install has no team settings).
///
/// # Errors
/// Store failures.
pub async fn standing(
    pool: &PgPool,
    install: Uuid,
    conversation: Option<Uuid>,
    user: &str,
) -> Result<Standing, sqlx::Error> {
    let Sources { channel_role, install_role, default_role, grants } = sqlx::query_as(
        "SELECT (SELECT g.role FROM role_grants g JOIN conversations c ON c.id = $3
                     WHERE g.install_id = $1 AND g.user_id = $2 AND g.channel <> ''
                       AND g.channel = c.channel) AS channel_role,
                    (SELECT role FROM role_grants WHERE install_id = $1 AND user_id = $2 AND channel = '')
                        AS install_role,
                    (SELECT default_role FROM team_settings WHERE install_id = $1) AS default_role,
                    (SELECT grants FROM team_settings WHERE install_id = $1) AS grants",
    )
    .bind(install)
    .bind(user)
    .bind(conversation)
    .fetch_one(pool)
    .await?;
    let (name, from) = match (channel_role, install_role, default_role) {
        (Some(r), _, _) => (r, "channel"),
        (None, Some(r), _) => (r, "install"),
        (None, None, Some(r)) => (r, "default"),
        (None, None, None) => ("member".to_string(), "default"),
    };
    // An unknown stored name (impossible under the CHECK) grants nothing: fail closed.
    let role = TeamRole::parse(&name).unwrap_or(TeamRole::None);
    let grants: BTreeMap<String, RoleGrant> = grants.and_then(|g| serde_json::from_value(g).ok()).unwrap_or_default();
    let grant = grants.get(role.as_str()).cloned().unwrap_or_default();
    Ok(Standing { role, from, grant })
}

/// One role grant as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Grant {
    /// Install id.
    pub install_id: Uuid,
    /// Channel (empty: the whole install).
    pub channel: String,
    /// Chat user id.
    pub user_id: String,
    /// Role name.
    pub role: String,
}

/// Grants `role` to `user` in `install` (in `channel` only, when given), audited as `role.set`.
///
/// # Errors
/// Store failures.
pub async fn set_role(
    pool: &PgPool,
    actor: &str,
    install: Uuid,
    channel: Option<&str>,
    user: &str,
    role: TeamRole,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let before: Option<String> =
        sqlx::query_scalar("SELECT role FROM role_grants WHERE install_id = $1 AND channel = $2 AND user_id = $3")
            .bind(install)
            .bind(channel.unwrap_or(""))
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
    sqlx::query(
        "INSERT INTO role_grants (install_id, channel, user_id, role) VALUES ($1, $2, $3, $4)
         ON CONFLICT (install_id, channel, user_id) DO UPDATE SET role = EXCLUDED.role, updated_at = now()",
    )
    .bind(install)
    .bind(channel.unwrap_or(""))
    .bind(user)
    .bind(role.as_str())
    .execute(&mut *tx)
    .await?;
    let detail = serde_json::json!({
        "install": install, "channel": channel, "user": user, "role": role.as_str(), "before": before,
    });
    audit::append(&mut tx, actor, "role.set", &format!("{install}/{user}"), &detail).await?;
    tx.commit().await
}

/// Sets an install's default role and per-role grants, audited as `team.settings`.
///
/// # Errors
/// Store failures.
pub async fn set_team_settings(
    pool: &PgPool,
    actor: &str,
    install: Uuid,
    default_role: TeamRole,
    grants: &BTreeMap<String, RoleGrant>,
) -> Result<(), sqlx::Error> {
    let grants = serde_json::to_value(grants).unwrap_or_default();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO team_settings (install_id, default_role, grants) VALUES ($1, $2, $3)
         ON CONFLICT (install_id) DO UPDATE SET default_role = EXCLUDED.default_role, grants = EXCLUDED.grants,
                                               updated_at = now()",
    )
    .bind(install)
    .bind(default_role.as_str())
    .bind(&grants)
    .execute(&mut *tx)
    .await?;
    let detail = serde_json::json!({ "default_role": default_role.as_str(), "grants": grants });
    audit::append(&mut tx, actor, "team.settings", &install.to_string(), &detail).await?;
    tx.commit().await
}

/// The id of the install named by id, name or external id.
///
/// # Errors
/// Store failures.
pub async fn find_install(pool: &PgPool, install: &str) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM installs WHERE id::text = $1 OR name = $1 OR external_id = $1 ORDER BY created_at LIMIT 1",
    )
    .bind(install)
    .fetch_optional(pool)
    .await
}

/// Every role grant of `install` (or of all installs), ordered.
///
/// # Errors
/// Store failures.
pub async fn list_roles(pool: &PgPool, install: Option<Uuid>) -> Result<Vec<Grant>, sqlx::Error> {
    sqlx::query_as(
        "SELECT install_id, channel, user_id, role FROM role_grants
         WHERE $1::uuid IS NULL OR install_id = $1 ORDER BY install_id, channel, user_id",
    )
    .bind(install)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(role: TeamRole, grant: RoleGrant) -> Standing {
        Standing { role, from: "install", grant }
    }

    #[test]
    fn built_in_roles_and_grants() {
        let viewer = standing(TeamRole::Viewer, RoleGrant::default());
        assert!(viewer.allows_command("status").is_ok() && viewer.allows_command("jobs").is_ok());
        let e = viewer.allows_command("run").expect_err("viewer run");
        assert!(e.contains("role here is viewer") && e.contains("not `run`"), "{e}");
        assert!(standing(TeamRole::None, RoleGrant::default()).allows_command("status").is_err());
        assert!(standing(TeamRole::Member, RoleGrant::default()).allows_command("remember").is_ok(), "new verbs");
        let narrow = RoleGrant { templates: Some(vec!["busybox".into()]), gpu: Some(false), ..RoleGrant::default() };
        let m = standing(TeamRole::Member, narrow);
        assert!(m.allows_job("busybox", false, true).is_ok());
        assert!(m.allows_job("python", false, false).expect_err("template").contains("allowed: busybox"));
        assert!(m.allows_job("busybox", true, false).expect_err("gpu").contains("GPU"));
        let models = RoleGrant { models: Some(vec!["default".into(), "small".into()]), tools: Some(vec![]), ..m.grant };
        let m = standing(TeamRole::Member, models);
        assert!(m.allows_model("").is_ok() && m.allows_model("small").is_ok());
        let e = m.allows_model("big").expect_err("model");
        assert!(e.contains("may not use model `big` (allowed: default, small)"), "{e}");
        assert!(m.allows_tool("remember").expect_err("tool").contains("does not grant the tool `remember`"));
        assert!(standing(TeamRole::Member, RoleGrant::default()).allows_tool("run_command").is_ok());
    }
}
