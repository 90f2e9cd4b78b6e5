//! The OpenAPI 3.1 document of the user API, assembled from [`super::operations`] (the table the router is built
//! from) and the schemas below. Tests check that every routed operation is documented and the reverse, and that
//! every schema example deserializes into the type the handlers use.

use axum::Json;
use serde_json::{Map, Value, json};

use super::{Body, operations};

/// `GET /v1/openapi.json`.
pub(super) async fn serve() -> Json<Value> {
    Json(document())
}

pub(super) const TS: &str = "2026-11-22T10:00:00Z";
const TASK_ID: &str = "0193a6f0-7c1e-7d2a-9b1c-3f4e5a6b7c8d";
const JOB_ID: &str = "5f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e";

pub(super) fn obj(required: &[&str], props: Value, example: Value) -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": required, "properties": props,
            "examples": [example] })
}

pub(super) fn s(desc: &str) -> Value {
    json!({ "type": "string", "description": desc })
}

fn opt(t: &str, desc: &str) -> Value {
    json!({ "type": [t, "null"], "description": desc })
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

fn job_example() -> Value {
    json!({ "id": JOB_ID, "task_id": TASK_ID, "executor": "docker", "state": "succeeded", "attempt": 1,
            "max_attempts": 3, "node_id": null, "cancel_requested": false,
            "result": { "status": "succeeded", "exit_code": 0, "duration_ms": 412 },
            "created_at": TS, "started_at": TS, "finished_at": TS })
}

fn task_example() -> Value {
    json!({ "id": TASK_ID, "install_id": null, "requester": "ci-bot", "source": "api", "command": "run",
            "text": "run echo hi", "state": "succeeded", "reply": "Job `5f1c2d3e` queued on `busybox`: `echo hi`",
            "created_at": TS, "updated_at": TS, "jobs": [job_example()] })
}

/// The component schemas, by name.
pub fn schemas() -> Map<String, Value> {
    let task_ref = json!({ "$ref": "#/components/schemas/Task" });
    let job_ref = json!({ "$ref": "#/components/schemas/Job" });
    let ts = json!({ "type": "string", "format": "date-time" });
    let ots = json!({ "type": ["string", "null"], "format": "date-time" });
    let mut m = Map::new();
    m.insert(
        "SubmitRequest".into(),
        obj(&["text"], json!({ "text": s("A command in the chat grammar") }), json!({ "text": "run echo hi" })),
    );
    m.insert(
        "Approval".into(),
        obj(
            &["approval_id", "approvers", "reason"],
            json!({
        "approval_id": uuid(), "approvers": { "type": "array", "items": { "type": "string" } },
        "reason": s("Why approval is needed") }),
            json!({ "approval_id": TASK_ID, "approvers": ["alice"], "reason": "template `net` has network access" }),
        ),
    );
    m.insert(
        "Job".into(),
        obj(
            &["id", "task_id", "executor", "state", "attempt", "max_attempts", "cancel_requested", "created_at"],
            json!({
        "id": uuid(), "task_id": uuid(), "executor": { "enum": ["docker", "inference", "host"] },
        "state": { "enum": ["awaiting_approval", "queued", "leased", "running", "succeeded", "failed", "cancelled",
                            "timed_out"] },
        "attempt": { "type": "integer" }, "max_attempts": { "type": "integer" },
        "node_id": { "type": ["string", "null"], "format": "uuid" }, "cancel_requested": { "type": "boolean" },
        "result": { "type": ["object", "null"], "description": "status, exit_code, duration_ms, message, …" },
        "created_at": ts, "started_at": ots, "finished_at": ots }),
            job_example(),
        ),
    );
    m.insert(
        "Task".into(),
        obj(
            &["id", "requester", "source", "command", "text", "state", "created_at", "updated_at", "jobs"],
            json!({
        "id": uuid(), "install_id": { "type": ["string", "null"], "format": "uuid" }, "requester": s("Who asked"),
        "source": { "enum": ["chat", "api", "webhook", "console"] }, "command": s("Command word"),
        "text": s("What was asked"),
        "state": { "enum": ["received", "waiting", "queued", "running", "succeeded", "failed", "cancelled",
                            "answered"] },
        "reply": opt("string", "The reply"), "created_at": ts, "updated_at": ts,
        "jobs": { "type": "array", "items": job_ref } }),
            task_example(),
        ),
    );
    m.insert(
        "SubmitResponse".into(),
        obj(
            &["task_id", "reply", "task"],
            json!({
        "task_id": uuid(), "job_id": { "type": ["string", "null"], "format": "uuid" }, "reply": s("The reply"),
        "approval": { "oneOf": [{ "$ref": "#/components/schemas/Approval" }, { "type": "null" }] },
        "refused": { "type": "boolean", "description": "The command was refused or not understood; nothing was done" },
        "task": task_ref }),
            json!({ "task_id": TASK_ID, "job_id": JOB_ID, "reply": "Job `5f1c2d3e` queued on `busybox`: `echo hi`",
                "approval": null, "refused": false, "task": task_example() }),
        ),
    );
    m.insert(
        "TaskList".into(),
        obj(
            &["tasks"],
            json!({
        "tasks": { "type": "array", "items": task_ref },
        "next_cursor": { "type": ["string", "null"], "format": "uuid" } }),
            json!({ "tasks": [task_example()], "next_cursor": null }),
        ),
    );
    m.insert(
        "ActionResponse".into(),
        obj(
            &["reply", "job"],
            json!({ "reply": s("The reply"), "job": job_ref }),
            json!({ "reply": "Job `5f1c2d3e` cancelled before it started.", "job": job_example() }),
        ),
    );
    m.insert(
        "Node".into(),
        obj(
            &["id", "name", "capabilities", "last_seen_at", "online", "running_jobs", "protocol", "agent_version"],
            json!({
        "id": uuid(), "name": s("Node name"), "capabilities": { "type": "object" }, "last_seen_at": ts,
        "online": { "type": "boolean", "description": "Heard from within the last 10 s" },
        "running_jobs": { "type": "integer", "description": "Jobs it holds now (leased or running)" },
        "protocol": { "type": "integer", "description": "Negotiated node protocol version" },
        "agent_version": { "type": ["string", "null"], "description": "The agent's build, as it reported it" } }),
            json!({ "id": TASK_ID, "name": "gpu-1", "capabilities": { "executors": ["docker"] }, "last_seen_at": TS,
                "online": true, "running_jobs": 1, "protocol": 2, "agent_version": "0.1.0" }),
        ),
    );
    m.insert(
        "NodeList".into(),
        obj(
            &["nodes"],
            json!({
        "nodes": { "type": "array", "items": { "$ref": "#/components/schemas/Node" } } }),
            json!({ "nodes": [] }),
        ),
    );
    m.insert(
        "TaskEvent".into(),
        json!({
        "description": "SSE `data` of events `task`, `job` and `output`; the SSE `id` is `seq`",
        "type": "object", "required": ["kind", "seq", "at"],
        "properties": { "kind": { "enum": ["task", "job", "output"] }, "seq": { "type": "integer" },
                        "state": { "type": "string" }, "reply": { "type": ["string", "null"] },
                        "job_id": uuid(), "attempt": { "type": "integer" }, "result": {},
                        "stream": { "enum": ["stdout", "stderr", "system"] }, "data": { "type": "string" },
                        "at": ts },
        "examples": [{ "kind": "output", "seq": 7, "job_id": JOB_ID, "attempt": 1, "stream": "stdout",
                       "data": "hi\n", "at": TS }] }),
    );
    m.insert(
        "EndEvent".into(),
        obj(
            &["state"],
            json!({ "state": s("Final task state"), "reply": opt("string", "") }),
            json!({ "state": "succeeded", "reply": null }),
        ),
    );
    m.insert(
        "Error".into(),
        json!({
        "type": "object", "required": ["error"],
        "properties": { "error": { "type": "object", "required": ["code", "message"],
            "properties": { "code": { "enum": ["unauthorized", "forbidden", "not_found", "invalid_request",
                                               "conflict", "payload_too_large", "internal"] },
                            "message": { "type": "string" }, "id": { "type": "string" } } } },
        "examples": [{ "error": { "code": "not_found", "message": "there is no task 42" } }] }),
    );
    m.insert("OpenApi".into(), json!({ "type": "object", "description": "This document" }));
    super::openapi_subs::add(&mut m);
    super::openapi_usage::add(&mut m);
    super::openapi_memories::add(&mut m);
    super::openapi_team::add(&mut m);
    m
}

fn error(desc: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": {
        "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for o in operations() {
        let ok = match o.response {
            Body::Json(name) => json!({ "description": "OK", "content": { "application/json": {
                "schema": { "$ref": format!("#/components/schemas/{name}") } } } }),
            Body::Text => json!({ "description": "The output", "content": { "text/plain": {
                "schema": { "type": "string" } } } }),
            Body::Sse => json!({ "description": "Events `task`, `job`, `output` (data: TaskEvent) and a final \
                `end` (data: EndEvent)", "content": { "text/event-stream": { "schema": { "type": "string" } } } }),
            Body::Empty => json!({ "description": "Done (no body)" }),
        };
        let mut responses = Map::new();
        responses.insert(o.status.to_string(), ok);
        if let Some(role) = o.role {
            responses.insert("401".into(), error("Missing or invalid token"));
            responses.insert("403".into(), error(&format!("Needs role {} or higher", role.as_str())));
        }
        if o.path.contains('{') || o.path == "/v1/roles" && o.method != "get" || o.path == "/v1/team" {
            responses.insert("404".into(), error("No such object in the token's install"));
        }
        if o.request.is_some() || o.params.len() > 1 {
            responses.insert("400".into(), error("Invalid request"));
        }
        if o.request.is_some() {
            responses.insert("413".into(), error("Body too large"));
        }
        if o.method != "get" && (o.path.starts_with("/v1/subscriptions") || o.path.starts_with("/v1/deliveries/")) {
            responses
                .insert("409".into(), error("Not possible in the current state (e.g. the subscription is disabled)"));
        }
        if o.id == "linkIdentity" {
            responses.insert("409".into(), error("The chat identity is linked to another user already"));
        }
        let params: Vec<Value> = o
            .params
            .iter()
            .map(|p| {
                json!({ "name": p.name, "in": p.location, "required": p.location == "path",
                             "description": p.description, "schema": { "type": "string" } })
            })
            .collect();
        let mut operation = json!({ "operationId": o.id, "summary": o.summary, "parameters": params,
                                    "responses": responses });
        if let Some(role) = o.role {
            operation["security"] = json!([{ "bearer": [] }]);
            operation["x-cynode-role"] = json!(role.as_str());
        } else {
            operation["security"] = json!([]);
        }
        if let Some(req) = o.request {
            operation["requestBody"] = json!({ "required": true, "content": { "application/json": {
                "schema": { "$ref": format!("#/components/schemas/{req}") } } } });
        }
        let entry = paths.entry(o.path.to_string()).or_insert_with(|| json!({}));
        entry[o.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "CyNode user API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "See docs/api.md. Errors are `{\"error\": {\"code\", \"message\"}}`." },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer",
                                             "description": "An API token `cyn_…`" } },
            "schemas": schemas(),
        },
    })
}
