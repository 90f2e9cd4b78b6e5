//! Request and response bodies of `/v1/users` and `/v1/roles` (team mode).

use std::collections::BTreeMap;

use cynode_orchestrator::team::{Grant, RoleGrant, users};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A chat identity linked to a CyNode user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityView {
    /// Platform of the install (`slack`, `discord`, `telegram`, `webhook`, `console`).
    pub platform: String,
    /// Install id.
    pub install_id: Uuid,
    /// Install name.
    pub install: String,
    /// The platform's user id.
    pub user_id: String,
    /// Display name set by an admin; `null` when none was set.
    pub display_name: Option<String>,
    /// The name the platform last sent with this identity's requests; `null` when it sent none yet.
    pub platform_name: Option<String>,
}

/// A role of one of the user's chat identities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRoleView {
    /// Install name.
    pub install: String,
    /// Channel of an override; empty for the whole install.
    pub channel: String,
    /// `admin`, `approver`, `member`, `viewer` or `none`.
    pub role: String,
}

/// A CyNode user as the token's scope shows it (an install token sees only its install's links).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Display name set by an admin.
    pub display_name: Option<String>,
    /// Linked chat identities.
    pub identities: Vec<IdentityView>,
    /// Names of linked live API tokens.
    pub tokens: Vec<String>,
    /// Role grants of the linked identities.
    pub roles: Vec<UserRoleView>,
}

impl From<users::User> for UserView {
    fn from(u: users::User) -> Self {
        Self {
            id: u.id,
            name: u.name,
            display_name: u.display_name,
            identities: u
                .identities
                .into_iter()
                .map(|i| IdentityView {
                    platform: i.platform,
                    install_id: i.install_id,
                    install: i.install,
                    user_id: i.user_id,
                    display_name: i.display_name,
                    platform_name: i.platform_name,
                })
                .collect(),
            tokens: u.tokens,
            roles: u
                .roles
                .into_iter()
                .map(|(install, channel, role)| UserRoleView { install, channel, role })
                .collect(),
        }
    }
}

/// `GET /v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserList {
    /// Users, by name.
    pub users: Vec<UserView>,
}

/// `POST /v1/users/{name}/identities`: link a chat identity (the user is created when new).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkIdentityRequest {
    /// Install id, name or external id; default: the token's install (a global token must name one).
    #[serde(default)]
    pub install: Option<String>,
    /// The platform's user id (Slack `U…`, a Discord or Telegram id).
    pub user_id: String,
    /// Display name to set on the identity.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// One role grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGrantView {
    /// Install id.
    pub install_id: Uuid,
    /// Channel of an override; empty for the whole install.
    pub channel: String,
    /// The platform's user id.
    pub user_id: String,
    /// `admin`, `approver`, `member`, `viewer` or `none`.
    pub role: String,
}

impl From<Grant> for RoleGrantView {
    fn from(g: Grant) -> Self {
        Self { install_id: g.install_id, channel: g.channel, user_id: g.user_id, role: g.role }
    }
}

/// `GET /v1/roles`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleList {
    /// Grants, by install, channel and user.
    pub roles: Vec<RoleGrantView>,
}

/// `PUT /v1/roles`: grant a role (replacing the user's grant at that place).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRoleRequest {
    /// Install id, name or external id; default: the token's install (a global token must name one).
    #[serde(default)]
    pub install: Option<String>,
    /// The platform's user id.
    pub user: String,
    /// `admin`, `approver`, `member`, `viewer` or `none`.
    pub role: String,
    /// Only in this channel (overrides the install-wide role there).
    #[serde(default)]
    pub channel: Option<String>,
}

/// `GET /v1/team`: an install's team settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSettingsView {
    /// Install id.
    pub install_id: Uuid,
    /// The role of chat users nobody granted one: `member`, `viewer` or `none`.
    pub default_role: String,
    /// Role name → what it may use (absent roles and fields: no restriction).
    pub grants: BTreeMap<String, RoleGrant>,
}

/// `PUT /v1/team`: replaces an install's team settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSettingsRequest {
    /// Install id, name or external id; default: the token's install (a global token must name one).
    #[serde(default)]
    pub install: Option<String>,
    /// `member` (default), `viewer` or `none`.
    #[serde(default)]
    pub default_role: Option<String>,
    /// Role name → what it may use; replaces every grant.
    #[serde(default)]
    pub grants: BTreeMap<String, RoleGrant>,
}
