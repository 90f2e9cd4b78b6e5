//! The user API under `/v1`: bearer API tokens, JSON errors, tasks and jobs, live task events (SSE), nodes,
//! webhook subscriptions with their deliveries, token usage, memories, team users and roles, and its own OpenAPI
//! document. One table ([`operations`]) describes every operation; the router and the OpenAPI document are both built from it, so
//! they cannot disagree.

pub mod auth;
mod deliveries;
mod events;
mod jobs;
pub mod memories;
pub mod model;
pub mod model_subs;
pub mod model_team;
mod nodes;
pub mod openapi;
mod openapi_memories;
mod openapi_subs;
mod openapi_team;
mod openapi_usage;
mod subscriptions;
mod table_memories;
mod table_subs;
mod table_team;
mod tasks;
mod team;
mod usage;

use axum::Router;
use axum::routing::{MethodRouter, get, post};
use cynode_orchestrator::api_tokens::Role;

use crate::server::AppState;

/// The success body of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// JSON of the named schema.
    Json(&'static str),
    /// `text/plain`.
    Text,
    /// `text/event-stream`.
    Sse,
    /// No body (204).
    Empty,
}

/// A parameter of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Name.
    pub name: &'static str,
    /// `path`, `query` or `header`.
    pub location: &'static str,
    /// What it means.
    pub description: &'static str,
}

/// One operation of the user API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// Lowercase HTTP method.
    pub method: &'static str,
    /// Path, with `{param}` placeholders (the same syntax in axum and OpenAPI).
    pub path: &'static str,
    /// OpenAPI `operationId`.
    pub id: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// The weakest role allowed; `None` for a public operation.
    pub role: Option<Role>,
    /// The request body schema, if any.
    pub request: Option<&'static str>,
    /// Success status.
    pub status: u16,
    /// Success body.
    pub response: Body,
    /// Parameters.
    pub params: &'static [Param],
}

const ID: Param = Param { name: "id", location: "path", description: "Task or job id (UUID)" };

#[expect(clippy::too_many_arguments, reason = "a table row; every column is named at the call site by position")]
const fn op(
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    role: Option<Role>,
    request: Option<&'static str>,
    status: u16,
    response: Body,
    params: &'static [Param],
) -> Operation {
    Operation { method, path, id, summary, role, request, status, response, params }
}

fn table() -> Vec<(Operation, MethodRouter<AppState>)> {
    use Body::{Json, Sse, Text};
    use Role::{Operator, Viewer};
    let (v, o) = (Some(Viewer), Some(Operator));
    let list = &[
        Param { name: "limit", location: "query", description: "Page size, 1–100 (default 20)" },
        Param { name: "before", location: "query", description: "`next_cursor` of the previous page" },
    ];
    let attempt = &[ID, Param { name: "attempt", location: "query", description: "Attempt (default: the latest)" }];
    let resume = &[ID, Param { name: "Last-Event-ID", location: "header", description: "Resume after this event" }];
    let usage = &[
        Param { name: "days", location: "query", description: "The last N UTC days up to `to`, 1–366 (default 7)" },
        Param { name: "from", location: "query", description: "First UTC day, YYYY-MM-DD (instead of `days`)" },
        Param { name: "to", location: "query", description: "Last UTC day, YYYY-MM-DD (default today)" },
        Param { name: "by", location: "query", description: "install (default), requester, channel or model" },
        Param { name: "limit", location: "query", description: "Most rows, 1–10000 (default 1000)" },
    ];
    let mut rows = vec![
        (
            op(
                "post",
                "/v1/tasks",
                "submitTask",
                "Submit a command (chat grammar)",
                o,
                Some("SubmitRequest"),
                201,
                Json("SubmitResponse"),
                &[],
            ),
            post(tasks::submit),
        ),
        (
            op("get", "/v1/tasks", "listTasks", "List tasks, newest first", v, None, 200, Json("TaskList"), list),
            get(tasks::list),
        ),
        (
            op("get", "/v1/tasks/{id}", "getTask", "A task with its jobs", v, None, 200, Json("Task"), &[ID]),
            get(tasks::get),
        ),
        (
            op(
                "get",
                "/v1/tasks/{id}/events",
                "taskEvents",
                "Live events of a task (Server-Sent Events)",
                v,
                None,
                200,
                Sse,
                resume,
            ),
            get(events::stream),
        ),
        (op("get", "/v1/jobs/{id}", "getJob", "A job", v, None, 200, Json("Job"), &[ID]), get(jobs::get)),
        (
            op(
                "get",
                "/v1/jobs/{id}/output",
                "getJobOutput",
                "The full output of a job attempt",
                v,
                None,
                200,
                Text,
                attempt,
            ),
            get(jobs::output),
        ),
        (
            op(
                "post",
                "/v1/jobs/{id}/cancel",
                "cancelJob",
                "Cancel a job",
                o,
                None,
                200,
                Json("ActionResponse"),
                &[ID],
            ),
            post(jobs::cancel),
        ),
        (
            op(
                "post",
                "/v1/jobs/{id}/approve",
                "approveJob",
                "Approve a job waiting for approval",
                o,
                None,
                200,
                Json("ActionResponse"),
                &[ID],
            ),
            post(jobs::approve),
        ),
        (
            op(
                "post",
                "/v1/jobs/{id}/deny",
                "denyJob",
                "Deny a job waiting for approval",
                o,
                None,
                200,
                Json("ActionResponse"),
                &[ID],
            ),
            post(jobs::deny),
        ),
        (
            op("get", "/v1/nodes", "listNodes", "Registered nodes", o, None, 200, Json("NodeList"), &[]),
            get(nodes::list),
        ),
        (
            op(
                "get",
                "/v1/openapi.json",
                "openapi",
                "This API's OpenAPI 3.1 document",
                None,
                None,
                200,
                Json("OpenApi"),
                &[],
            ),
            get(openapi::serve),
        ),
    ];
    rows.extend(table_subs::rows());
    rows.extend(table_memories::rows());
    rows.extend(table_team::rows());
    rows.push((
        op(
            "get",
            "/v1/usage",
            "getUsage",
            "Model tokens per UTC day, grouped",
            v,
            None,
            200,
            Json("UsageReport"),
            usage,
        ),
        get(usage::get),
    ));
    rows
}

/// Every operation of the user API.
pub fn operations() -> Vec<Operation> {
    table().into_iter().map(|(o, _)| o).collect()
}

/// The `/v1` routes, built from the same table as [`operations`].
pub fn router() -> Router<AppState> {
    table().into_iter().fold(Router::new(), |r, (o, handler)| r.route(o.path, handler))
}
