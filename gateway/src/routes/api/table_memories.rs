//! The rows of the operations table for memories.

use axum::routing::{MethodRouter, delete, get, post};
use cynode_orchestrator::api_tokens::Role;

use super::{Body, Operation, Param, memories, op};
use crate::server::AppState;

const MEMORY: Param = Param { name: "id", location: "path", description: "Memory id (UUID)" };

pub(super) fn rows() -> Vec<(Operation, MethodRouter<AppState>)> {
    use Body::Json;
    let (v, o) = (Some(Role::Viewer), Some(Role::Operator));
    let list = &[
        Param { name: "q", location: "query", description: "Recall: hybrid (vector + full text) search" },
        Param { name: "limit", location: "query", description: "At most this many, 1–200 (recall: 50; default 20)" },
        Param { name: "channel", location: "query", description: "Act in this channel (admin tokens only)" },
        Param { name: "thread", location: "query", description: "…and this thread of it" },
    ];
    let path = "/v1/memories/{id}";
    vec![
        (
            op(
                "post",
                "/v1/memories",
                "createMemory",
                "Remember a text (scope user by default; channel needs an admin token; install from another token \
                 is a proposal, `awaiting_approval`, until an admin token approves it)",
                o,
                Some("CreateMemoryRequest"),
                201,
                Json("Memory"),
                &[],
            ),
            post(memories::create),
        ),
        (
            op(
                "get",
                "/v1/memories",
                "listMemories",
                "Memories the token may see: newest first, or with `q` a recall",
                v,
                None,
                200,
                Json("MemoryList"),
                list,
            ),
            get(memories::list),
        ),
        (
            op(
                "post",
                "/v1/memories/import",
                "importMemories",
                "Import memories (provenance `import`) under a label",
                o,
                Some("ImportMemoriesRequest"),
                201,
                Json("CountResponse"),
                &[],
            ),
            post(memories::import),
        ),
        (
            op(
                "post",
                "/v1/memories/forget",
                "forgetMemories",
                "Forget by user, conversation or import label",
                o,
                Some("ForgetRequest"),
                200,
                Json("CountResponse"),
                &[],
            ),
            post(memories::forget),
        ),
        (
            op(
                "get",
                "/v1/memories/proposals",
                "listMemoryProposals",
                "Proposals of install-wide memory awaiting approval: all of the install's for an admin token, the \
                 token's own otherwise",
                v,
                None,
                200,
                Json("MemoryList"),
                &[],
            ),
            get(memories::proposals),
        ),
        (
            op(
                "post",
                "/v1/memories/{id}/approve",
                "approveMemory",
                "Approve a proposal of install-wide memory (admin token; not its author)",
                o,
                None,
                200,
                Json("Memory"),
                &[MEMORY],
            ),
            post(memories::approve),
        ),
        (
            op(
                "post",
                "/v1/memories/{id}/deny",
                "denyMemory",
                "Deny (admin token) or withdraw (its author) a proposal of install-wide memory: it is deleted",
                o,
                None,
                200,
                Json("CountResponse"),
                &[MEMORY],
            ),
            post(memories::deny),
        ),
        (op("get", path, "getMemory", "A memory", v, None, 200, Json("Memory"), &[MEMORY]), get(memories::get)),
        (
            op("delete", path, "deleteMemory", "Forget a memory", o, None, 200, Json("CountResponse"), &[MEMORY]),
            delete(memories::delete),
        ),
    ]
}
