//! The rows of the operations table for team mode: users, roles and team settings.

use axum::routing::{MethodRouter, delete, get, post, put};
use cynode_orchestrator::api_tokens::Role;

use super::{Body, Operation, Param, op, team};
use crate::server::AppState;

const INSTALL: Param = Param {
    name: "install",
    location: "query",
    description: "Install id, name or external id (default: the token's install)",
};
const USER: Param = Param { name: "user", location: "query", description: "The platform's user id" };
const CHANNEL: Param = Param { name: "channel", location: "query", description: "The channel of an override" };
const NAME: Param = Param { name: "name", location: "path", description: "CyNode user name (or id)" };

pub(super) fn rows() -> Vec<(Operation, MethodRouter<AppState>)> {
    use Body::Json;
    let (v, a) = (Some(Role::Viewer), Some(Role::Admin));
    vec![
        (
            op(
                "get",
                "/v1/users",
                "listUsers",
                "CyNode users linked to the token's install",
                v,
                None,
                200,
                Json("UserList"),
                &[],
            ),
            get(team::list),
        ),
        (
            op(
                "get",
                "/v1/users/{name}",
                "getUser",
                "A CyNode user with identities, tokens and roles",
                v,
                None,
                200,
                Json("User"),
                &[NAME],
            ),
            get(team::get),
        ),
        (
            op(
                "post",
                "/v1/users/{name}/identities",
                "linkIdentity",
                "Link a chat identity to a user (created when new); admin of the install",
                a,
                Some("LinkIdentityRequest"),
                201,
                Json("User"),
                &[NAME],
            ),
            post(team::link),
        ),
        (
            op(
                "get",
                "/v1/roles",
                "listRoles",
                "Role grants of the token's install",
                v,
                None,
                200,
                Json("RoleList"),
                &[INSTALL],
            ),
            get(team::roles),
        ),
        (
            op(
                "put",
                "/v1/roles",
                "setRole",
                "Grant a chat user a role (install-wide or in one channel); admin of \
               the install",
                a,
                Some("SetRoleRequest"),
                200,
                Json("RoleGrant"),
                &[],
            ),
            put(team::set),
        ),
        (
            op(
                "delete",
                "/v1/roles",
                "removeRole",
                "Remove a role grant; admin of the install",
                a,
                None,
                200,
                Json("RoleGrant"),
                &[INSTALL, USER, CHANNEL],
            ),
            delete(team::remove),
        ),
        (
            op(
                "get",
                "/v1/team",
                "getTeamSettings",
                "The install's default role and per-role grants",
                v,
                None,
                200,
                Json("TeamSettings"),
                &[INSTALL],
            ),
            get(team::settings),
        ),
        (
            op(
                "put",
                "/v1/team",
                "setTeamSettings",
                "Replace the install's default role and per-role grants; admin of the install",
                a,
                Some("TeamSettingsRequest"),
                200,
                Json("TeamSettings"),
                &[],
            ),
            put(team::set_settings),
        ),
    ]
}
