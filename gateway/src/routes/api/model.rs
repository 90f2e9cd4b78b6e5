//! Request and response bodies of the user API (the CLI deserializes the same types).

use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use cynode_orchestrator::views::events::TaskEvent;
pub use cynode_orchestrator::views::{JobView, NodeView, TaskView};

use crate::error::ApiError;

/// `POST /v1/tasks`: a command in the chat grammar (`run echo hi`, `ask …`, `status`, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// The command text (1–4000 characters).
    pub text: String,
}

/// An approval the submitted job waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalView {
    /// Approval id.
    pub approval_id: Uuid,
    /// Who may approve.
    pub approvers: Vec<String>,
    /// Why approval is needed.
    pub reason: String,
}

/// What a submission did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitResponse {
    /// The task recorded for the submission (every submission gets one).
    pub task_id: Uuid,
    /// The job created or acted on, if any.
    pub job_id: Option<Uuid>,
    /// The reply, as chat would show it.
    pub reply: String,
    /// The approval the job waits for, if any.
    pub approval: Option<ApprovalView>,
    /// The command was refused or not understood and nothing was done (`cynode say` exits non-zero).
    #[serde(default)]
    pub refused: bool,
    /// The task as it is now.
    pub task: TaskView,
}

/// A page of tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskList {
    /// Newest first.
    pub tasks: Vec<TaskView>,
    /// Pass as `?before=` for the next page; `null` on the last page.
    pub next_cursor: Option<Uuid>,
}

/// What a cancel, approve or deny did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionResponse {
    /// The reply, as chat would show it.
    pub reply: String,
    /// The job afterwards.
    pub job: JobView,
}

/// Registered nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeList {
    /// Most recently seen first.
    pub nodes: Vec<NodeView>,
}

/// The final SSE event of a task stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndEvent {
    /// The task's final state.
    pub state: String,
    /// Its reply.
    pub reply: Option<String>,
}

/// Every error body: `{"error": {"code": …, "message": …}}` (`id` on 5xx, to quote when reporting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable machine code (`unauthorized`, `forbidden`, `not_found`, `invalid_request`, `conflict`,
    /// `payload_too_large`, `internal`).
    pub code: String,
    /// Human message.
    pub message: String,
    /// Error id of a 5xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A JSON body whose rejections are JSON errors (400 `invalid_request`, 413 `payload_too_large`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(e) => Err(json_rejection(&e)),
        }
    }
}

fn json_rejection(e: &JsonRejection) -> ApiError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::client(e.status(), "payload_too_large", "request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::client(
            e.status(),
            "invalid_request",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        _ => ApiError::client(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()),
    }
}

/// Parses a `limit` query value: `default` when absent or empty, else 1–`max`.
///
/// # Errors
/// 400 `invalid_request`.
pub fn limit_param(raw: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match raw {
        None | Some("") => Ok(default),
        Some(l) => {
            l.parse::<u32>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                ApiError::client(StatusCode::BAD_REQUEST, "invalid_request", format!("`limit` is 1–{max}"))
            })
        }
    }
}

/// Parses an id from the path; a malformed id is a 404 like an unknown one.
///
/// # Errors
/// 404 `not_found`.
pub fn parse_id(what: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| not_found(what, raw))
}

/// 404 for `what` `id` (also used for another tenant's objects, so their existence does not leak).
pub fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::client(StatusCode::NOT_FOUND, "not_found", format!("there is no {what} {id}"))
}
