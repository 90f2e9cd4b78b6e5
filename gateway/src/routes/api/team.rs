//! `/v1/users`, `/v1/roles` and `/v1/team`: team mode through the API, on the same functions as `cynode users`,
//! `cynode admin role` and the bootstrap file ([`cynode_orchestrator::team`]), audited the same way with the
//! token's name as actor.
//!
//! Viewers read. Changes need an admin token, and an install token must also speak for an admin of its install:
//! its linked CyNode user has a chat identity there whose install-wide role is `admin`. A global admin token (the
//! operator's, like the CLI) may change any install. A token limited to an install sees only that install's
//! users, identities and grants; another install's answer 404.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::team::{self, TeamRole, users};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::Caller;
use super::model::ApiJson;
use super::model_team::{
    LinkIdentityRequest, RoleGrantView, RoleList, SetRoleRequest, TeamSettingsRequest, TeamSettingsView, UserList,
    UserView,
};
use crate::error::ApiError;
use crate::server::AppState;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::client(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn no_user(name: &str) -> ApiError {
    ApiError::client(StatusCode::NOT_FOUND, "not_found", format!("there is no CyNode user `{name}`"))
}

fn no_install(raw: &str) -> ApiError {
    ApiError::client(StatusCode::NOT_FOUND, "not_found", format!("there is no install `{raw}`"))
}

/// The install a request acts on: the one named (which an install token may only name if it is its own; any
/// other answers 404 like a missing one), else the token's.
async fn install_for(state: &AppState, caller: &Caller, raw: Option<&str>) -> Result<Uuid, ApiError> {
    let mine = caller.token.install_id;
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return mine.ok_or_else(|| bad("a global token names the install: give `install` (id, name or external id)"));
    };
    match team::find_install(&state.pool, raw).await? {
        Some(id) if mine.is_none_or(|m| m == id) => Ok(id),
        _ => Err(no_install(raw)),
    }
}

/// Refuses with 403 unless the caller may change users and roles of `install`.
async fn may_manage(state: &AppState, caller: &Caller, install: Uuid) -> Result<(), ApiError> {
    caller.require(Role::Admin)?;
    if caller.token.install_id.is_none() || team::token_is_install_admin(&state.pool, caller.token.id, install).await? {
        return Ok(());
    }
    Err(ApiError::client(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "changing users and roles needs an admin of this install: token `{}` is not linked to a CyNode user whose \
             chat identity here has the admin role (an admin links it with `cynode users link NAME --token {}`)",
            caller.token.name, caller.token.name
        ),
    ))
}

/// `GET /v1/users`.
pub(super) async fn list(caller: Caller, State(state): State<AppState>) -> Result<Json<UserList>, ApiError> {
    caller.require(Role::Viewer)?;
    let all = users::list(&state.pool, caller.token.install_id).await?;
    Ok(Json(UserList { users: all.into_iter().map(UserView::from).collect() }))
}

/// `GET /v1/users/{name}`.
pub(super) async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    caller.require(Role::Viewer)?;
    let u = users::show(&state.pool, &name, caller.token.install_id).await?.ok_or_else(|| no_user(&name))?;
    Ok(Json(u.into()))
}

/// `POST /v1/users/{name}/identities`: links a chat identity of an install, creating the user when new.
pub(super) async fn link(
    caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<LinkIdentityRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let install = install_for(&state, &caller, req.install.as_deref()).await?;
    // An existing user linked only elsewhere reads as absent to an install token.
    if caller.token.install_id.is_some()
        && users::exists(&state.pool, &name).await?
        && users::show(&state.pool, &name, Some(install)).await?.is_none()
    {
        return Err(no_user(&name));
    }
    may_manage(&state, &caller, install).await?;
    // `{name}` may be an existing user's id; links go to that user's name.
    let name = users::show(&state.pool, &name, None).await?.map_or(name, |u| u.name);
    let display = req.display_name.as_deref().map(str::trim).filter(|d| !d.is_empty());
    users::link_identity(&state.pool, &caller.token.name, &name, &install.to_string(), req.user_id.trim(), display)
        .await
        .map_err(|e| match e {
            users::UserError::Taken(_) => ApiError::client(StatusCode::CONFLICT, "conflict", e.to_string()),
            users::UserError::Invalid(m) => bad(m.replace("--user needs", "`user_id` is")),
            users::UserError::NoInstall(_) | users::UserError::NoToken(_) | users::UserError::NoUser(_) => {
                ApiError::client(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            users::UserError::Store(e) => ApiError::Internal(e.into()),
        })?;
    let u = users::show(&state.pool, name.trim(), caller.token.install_id).await?.ok_or_else(|| no_user(&name))?;
    Ok((StatusCode::CREATED, Json(u.into())))
}

/// `GET /v1/roles` and `DELETE /v1/roles` query. Strings, so a bad value gets our own 400.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RoleQuery {
    install: Option<String>,
    user: Option<String>,
    channel: Option<String>,
}

/// `GET /v1/roles`.
pub(super) async fn roles(
    caller: Caller,
    State(state): State<AppState>,
    Query(q): Query<RoleQuery>,
) -> Result<Json<RoleList>, ApiError> {
    caller.require(Role::Viewer)?;
    let install = match (q.install.as_deref(), caller.token.install_id) {
        (None | Some(""), None) => None,
        (raw, _) => Some(install_for(&state, &caller, raw).await?),
    };
    let grants = team::list_roles(&state.pool, install).await?;
    Ok(Json(RoleList { roles: grants.into_iter().map(RoleGrantView::from).collect() }))
}

fn channel(raw: Option<&str>) -> Option<&str> {
    raw.map(str::trim).filter(|c| !c.is_empty())
}

/// `PUT /v1/roles`.
pub(super) async fn set(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SetRoleRequest>,
) -> Result<Json<RoleGrantView>, ApiError> {
    let install = install_for(&state, &caller, req.install.as_deref()).await?;
    may_manage(&state, &caller, install).await?;
    let role = TeamRole::parse(req.role.trim())
        .ok_or_else(|| bad(format!("`role` is admin, approver, member, viewer or none, not `{}`", req.role)))?;
    let user = req.user.trim();
    if user.is_empty() || user.len() > 255 {
        return Err(bad("`user` is the platform's user id (1–255 characters)"));
    }
    let channel = channel(req.channel.as_deref());
    team::set_role(&state.pool, &caller.token.name, install, channel, user, role).await?;
    Ok(Json(RoleGrantView {
        install_id: install,
        channel: channel.unwrap_or_default().to_string(),
        user_id: user.to_string(),
        role: role.as_str().to_string(),
    }))
}

/// `DELETE /v1/roles`: removes one grant; answers the grant as it was.
pub(super) async fn remove(
    caller: Caller,
    State(state): State<AppState>,
    Query(q): Query<RoleQuery>,
) -> Result<Json<RoleGrantView>, ApiError> {
    let install = install_for(&state, &caller, q.install.as_deref()).await?;
    let user = q.user.as_deref().map(str::trim).filter(|u| !u.is_empty()).ok_or_else(|| bad("give `user`"))?;
    may_manage(&state, &caller, install).await?;
    let channel = channel(q.channel.as_deref());
    let Some(role) = team::remove_role(&state.pool, &caller.token.name, install, channel, user).await? else {
        let place = channel.map_or_else(|| "the whole install".to_string(), |c| format!("channel `{c}`"));
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("there is no role grant for `{user}` in {place}"),
        ));
    };
    Ok(Json(RoleGrantView {
        install_id: install,
        channel: channel.unwrap_or_default().to_string(),
        user_id: user.to_string(),
        role,
    }))
}

/// `GET /v1/team` query.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TeamQuery {
    install: Option<String>,
}

/// `GET /v1/team`.
pub(super) async fn settings(
    caller: Caller,
    State(state): State<AppState>,
    Query(q): Query<TeamQuery>,
) -> Result<Json<TeamSettingsView>, ApiError> {
    caller.require(Role::Viewer)?;
    let install = install_for(&state, &caller, q.install.as_deref()).await?;
    let t = team::team_settings(&state.pool, install).await?;
    Ok(Json(TeamSettingsView { install_id: install, default_role: t.default_role, grants: t.grants }))
}

/// `PUT /v1/team`: replaces the default role and every grant, audited as `team.settings`.
pub(super) async fn set_settings(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TeamSettingsRequest>,
) -> Result<Json<TeamSettingsView>, ApiError> {
    let install = install_for(&state, &caller, req.install.as_deref()).await?;
    may_manage(&state, &caller, install).await?;
    let default_role = req.default_role.as_deref().map_or("member", str::trim);
    let role = team::check_settings(default_role, &req.grants).map_err(bad)?;
    team::set_team_settings(&state.pool, &caller.token.name, install, role, &req.grants).await?;
    let t = team::team_settings(&state.pool, install).await?;
    Ok(Json(TeamSettingsView { install_id: install, default_role: t.default_role, grants: t.grants }))
}
