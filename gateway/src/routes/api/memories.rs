//! `/v1/memories`: write, search, list, read and forget memories as the token's identity (its name is the user,
//! its install the install; an admin token is an approver). Ids of another install's memories answer 404.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use cynode_orchestrator::api_tokens::Role;
use cynode_orchestrator::memory::{
    Forget, MAX_TEXT, Memory, MemoryError, NewMemory, Provenance, Recall, Scope, Viewer,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::Caller;
use crate::error::ApiError;
use crate::server::AppState;

/// The most memories one import carries.
pub const MAX_IMPORT: usize = 1_000;

/// `POST /v1/memories`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMemoryRequest {
    /// The text (at most [`MAX_TEXT`] characters).
    pub text: String,
    /// `user` (default), `install` (admin token), `shared` (global admin token), or `channel`/`thread` with
    /// `channel` (admin token).
    #[serde(default)]
    pub scope: Option<String>,
    /// The channel of a channel or thread memory.
    #[serde(default)]
    pub channel: Option<String>,
    /// The thread of a thread memory.
    #[serde(default)]
    pub thread: Option<String>,
    /// Exempt from decay.
    #[serde(default)]
    pub pinned: bool,
    /// Expire after this many days.
    #[serde(default)]
    pub ttl_days: Option<u32>,
}

/// `POST /v1/memories/import`: memories from another system, provenance `import`, under one label (which
/// `forget` by label removes again).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportMemoriesRequest {
    /// A name for this import.
    pub label: String,
    /// The memories.
    pub memories: Vec<CreateMemoryRequest>,
}

/// What an import or a forget did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountResponse {
    /// Memories written or deleted.
    pub count: u64,
}

/// `POST /v1/memories/forget`: exactly one of the fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetRequest {
    /// Everything this user wrote or owns in the token's install (the token's own name, or anyone for an admin
    /// token).
    #[serde(default)]
    pub user: Option<String>,
    /// Everything from this conversation.
    #[serde(default)]
    pub conversation: Option<Uuid>,
    /// Everything of this import label.
    #[serde(default)]
    pub label: Option<String>,
}

/// `GET /v1/memories`: a list, or with `q` a recall.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryList {
    /// The memories, newest first (a list) or best first (a recall).
    pub memories: Vec<Memory>,
    /// Recall scores, in the same order (empty for a list).
    pub scores: Vec<f64>,
    /// A recall that used vectors (false: keyword matches only, or a list).
    pub hybrid: bool,
    /// Why a recall was keyword-only.
    pub notice: Option<String>,
}

/// `GET /v1/memories` query. Strings, so a bad value gets our own 400.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    q: Option<String>,
    limit: Option<String>,
    channel: Option<String>,
    thread: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::client(StatusCode::BAD_REQUEST, "invalid_request", message)
}

fn error(e: MemoryError) -> ApiError {
    match e {
        MemoryError::Invalid(m) => bad(m),
        MemoryError::NotFound(id) => {
            ApiError::client(StatusCode::NOT_FOUND, "not_found", format!("there is no memory `{id}`"))
        }
        MemoryError::Forbidden(m) => ApiError::client(StatusCode::FORBIDDEN, "forbidden", m),
        MemoryError::Store(e) => ApiError::Internal(e.into()),
    }
}

/// The caller as a memory viewer: the token's install and name; a place only for an admin token that names one
/// (acting in that channel); an admin token is an approver.
fn viewer(caller: &Caller, channel: Option<&str>, thread: Option<&str>) -> Result<Viewer, ApiError> {
    let admin = caller.role() >= Role::Admin;
    if (channel.is_some() || thread.is_some()) && !admin {
        return Err(ApiError::client(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an admin token may act in a channel; other tokens see install-wide, shared and their own memories",
        ));
    }
    if thread.is_some() && channel.is_none() {
        return Err(bad("`thread` needs `channel`"));
    }
    Ok(Viewer {
        install_id: caller.token.install_id,
        channel: channel.map(str::to_owned),
        thread: thread.map(|t| t.to_owned()).or_else(|| channel.map(|_| String::new())),
        user: caller.token.name.clone(),
        conversation_id: None,
        approver: admin,
    })
}

fn new_memory(caller: &Caller, req: &CreateMemoryRequest, provenance: Provenance) -> Result<NewMemory, ApiError> {
    let scope = match req.scope.as_deref() {
        None | Some("") => Scope::User,
        Some(s) => Scope::parse(s).map_err(bad)?,
    };
    let provenance = match (provenance, caller.role()) {
        (Provenance::User, Role::Admin) => Provenance::Admin,
        (p, _) => p,
    };
    let mut new = NewMemory::new(req.text.clone(), scope, provenance);
    new.pinned = req.pinned;
    new.ttl = req.ttl_days.map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400));
    Ok(new)
}

/// `POST /v1/memories`.
pub(super) async fn create(
    caller: Caller,
    State(state): State<AppState>,
    Json(req): Json<CreateMemoryRequest>,
) -> Result<(StatusCode, Json<Memory>), ApiError> {
    let v = viewer(&caller, req.channel.as_deref(), req.thread.as_deref())?;
    let new = new_memory(&caller, &req, Provenance::User)?;
    let m = state.commands.memories().add(&v, new).await.map_err(error)?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// `POST /v1/memories/import`.
pub(super) async fn import(
    caller: Caller,
    State(state): State<AppState>,
    Json(req): Json<ImportMemoriesRequest>,
) -> Result<(StatusCode, Json<CountResponse>), ApiError> {
    let label = req.label.trim();
    if label.is_empty() || label.len() > 200 {
        return Err(bad("`label` names the import: 1–200 characters"));
    }
    if req.memories.is_empty() || req.memories.len() > MAX_IMPORT {
        return Err(bad(format!("an import carries 1–{MAX_IMPORT} memories; got {}", req.memories.len())));
    }
    // Every entry is checked before anything is written, so a bad line leaves no half import.
    let mut news = Vec::with_capacity(req.memories.len());
    for (i, m) in req.memories.iter().enumerate() {
        let chars = m.text.trim().chars().count();
        if chars == 0 || chars > MAX_TEXT {
            return Err(bad(format!("memory {} has {chars} characters; each needs 1–{MAX_TEXT}", i + 1)));
        }
        let v = viewer(&caller, m.channel.as_deref(), m.thread.as_deref())?;
        let mut new = new_memory(&caller, m, Provenance::Import)?;
        new.source_label = Some(label.to_owned());
        news.push((v, new));
    }
    let mut count = 0;
    for (v, new) in news {
        state.commands.memories().add(&v, new).await.map_err(error)?;
        count += 1;
    }
    Ok((StatusCode::CREATED, Json(CountResponse { count })))
}

/// `GET /v1/memories`.
pub(super) async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<MemoryList>, ApiError> {
    let v = viewer(&caller, q.channel.as_deref(), q.thread.as_deref())?;
    let limit = match q.limit.as_deref() {
        None | Some("") => 20,
        Some(l) => l.parse::<i64>().ok().filter(|n| (1..=200).contains(n)).ok_or_else(|| bad("`limit` is 1–200"))?,
    };
    let memories = state.commands.memories();
    match q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(query) => {
            let req = Recall { query: query.to_owned(), limit: usize::try_from(limit.min(50)).unwrap_or(20) };
            let r = memories.recall(&v, &req).await.map_err(error)?;
            let scores = r.memories.iter().map(|(_, s)| *s).collect();
            Ok(Json(MemoryList {
                memories: r.memories.into_iter().map(|(m, _)| m).collect(),
                scores,
                hybrid: r.hybrid,
                notice: r.notice,
            }))
        }
        None => Ok(Json(MemoryList {
            memories: memories.list(&v, limit).await.map_err(error)?,
            scores: Vec::new(),
            hybrid: false,
            notice: None,
        })),
    }
}

fn id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| bad(format!("`{}` is not a memory id (UUID)", raw.chars().take(40).collect::<String>())))
}

/// `GET /v1/memories/{id}`.
pub(super) async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Memory>, ApiError> {
    let v = viewer(&caller, None, None)?;
    Ok(Json(state.commands.memories().get(&v, id(&raw)?).await.map_err(error)?))
}

/// `DELETE /v1/memories/{id}`.
pub(super) async fn delete(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<CountResponse>, ApiError> {
    let v = viewer(&caller, None, None)?;
    let count = state.commands.memories().forget(&v, &Forget::Id(id(&raw)?)).await.map_err(error)?;
    Ok(Json(CountResponse { count }))
}

/// `POST /v1/memories/forget`.
pub(super) async fn forget(
    caller: Caller,
    State(state): State<AppState>,
    Json(req): Json<ForgetRequest>,
) -> Result<Json<CountResponse>, ApiError> {
    let v = viewer(&caller, None, None)?;
    let what = match (req.user, req.conversation, req.label) {
        (Some(u), None, None) => Forget::User(u),
        (None, Some(c), None) => Forget::Conversation(c),
        (None, None, Some(l)) => Forget::Label(l),
        _ => return Err(bad("give exactly one of `user`, `conversation` and `label`")),
    };
    let count = state.commands.memories().forget(&v, &what).await.map_err(error)?;
    Ok(Json(CountResponse { count }))
}

/// `GET /v1/memories/proposals`.
pub(super) async fn proposals(caller: Caller, State(state): State<AppState>) -> Result<Json<MemoryList>, ApiError> {
    let v = viewer(&caller, None, None)?;
    let memories = state.commands.memories().proposals(&v, 200).await.map_err(error)?;
    Ok(Json(MemoryList { memories, scores: Vec::new(), hybrid: false, notice: None }))
}

/// `POST /v1/memories/{id}/approve`.
pub(super) async fn approve(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Memory>, ApiError> {
    let v = viewer(&caller, None, None)?;
    match state.commands.memories().review(&v, id(&raw)?, true).await.map_err(error)? {
        Some(m) => Ok(Json(m)),
        None => Err(error(MemoryError::NotFound(raw))),
    }
}

/// `POST /v1/memories/{id}/deny`.
pub(super) async fn deny(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<CountResponse>, ApiError> {
    let v = viewer(&caller, None, None)?;
    state.commands.memories().review(&v, id(&raw)?, false).await.map_err(error)?;
    Ok(Json(CountResponse { count: 1 }))
}
