//! OpenAPI schemas of `/v1/memories` (see [`super::openapi`]).

use serde_json::{Map, Value, json};

use super::openapi::{TS, obj, s};

const MEMORY_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

/// Adds the memory schemas to `m`.
pub(super) fn add(m: &mut Map<String, Value>) {
    let ostr = |d: &str| json!({ "type": ["string", "null"], "description": d });
    let ouuid = |d: &str| json!({ "type": ["string", "null"], "format": "uuid", "description": d });
    let scope = json!({ "enum": ["shared", "install", "channel", "thread", "user"] });
    let memory = json!({
        "id": MEMORY_ID, "scope": "channel", "channel": "C0123", "thread": null, "user_id": null, "author": "U0123",
        "text": "the deploy key rotates on Fridays", "provenance": "user", "trusted": true,
        "source_conversation": null, "source_job": null, "source_label": null, "pinned": false,
        "created_at": TS, "expires_at": null, "embedding_model": "multilingual-e5-small",
        "awaiting_approval": false });
    m.insert(
        "Memory".into(),
        obj(
            &[
                "id",
                "scope",
                "channel",
                "thread",
                "user_id",
                "author",
                "text",
                "provenance",
                "trusted",
                "source_conversation",
                "source_job",
                "source_label",
                "pinned",
                "created_at",
                "expires_at",
                "embedding_model",
                "awaiting_approval",
            ],
            json!({
                "id": { "type": "string", "format": "uuid" }, "scope": scope,
                "channel": ostr("Channel (channel and thread scope)"), "thread": ostr("Thread (thread scope)"),
                "user_id": ostr("Owner (user scope)"), "author": s("Who wrote it"), "text": s("The memory"),
                "provenance": { "enum": ["user", "agent", "tool", "import", "admin"] },
                "trusted": { "type": "boolean", "description": "A person stands behind it (user, import, admin)" },
                "source_conversation": ouuid("The conversation it came from"),
                "source_job": ouuid("The job it came from"), "source_label": ostr("An import's label"),
                "pinned": { "type": "boolean" }, "created_at": { "type": "string", "format": "date-time" },
                "expires_at": { "type": ["string", "null"], "format": "date-time" },
                "embedding_model": ostr("The model of its vector (null: keyword recall only until embedded)"),
                "awaiting_approval": { "type": "boolean",
                                       "description": "A proposal of install-wide memory: recalled by no one until \
                                                       an approver approves it" } }),
            memory.clone(),
        ),
    );
    let create = json!({ "text": "the deploy key rotates on Fridays", "scope": "install", "channel": null,
                         "thread": null, "pinned": false, "ttl_days": null });
    m.insert(
        "CreateMemoryRequest".into(),
        obj(
            &["text"],
            json!({
                "text": s("At most 2000 characters"), "scope": scope,
                "channel": ostr("Channel of a channel/thread memory (admin tokens)"), "thread": ostr("Thread"),
                "pinned": { "type": "boolean", "description": "Exempt from decay" },
                "ttl_days": { "type": ["integer", "null"], "minimum": 0, "description": "Expire after N days" } }),
            create.clone(),
        ),
    );
    m.insert(
        "ImportMemoriesRequest".into(),
        obj(
            &["label", "memories"],
            json!({ "label": s("Names the import (forget by label removes it)"),
                    "memories": { "type": "array", "maxItems": 1000,
                                  "items": { "$ref": "#/components/schemas/CreateMemoryRequest" } } }),
            json!({ "label": "wiki-2026-12", "memories": [create] }),
        ),
    );
    m.insert(
        "ForgetRequest".into(),
        obj(
            &[],
            json!({ "user": ostr("Everything this user wrote or owns"), "conversation": ouuid("From this thread"),
                    "label": ostr("Of this import") }),
            json!({ "user": null, "conversation": null, "label": "wiki-2026-12" }),
        ),
    );
    m.insert(
        "CountResponse".into(),
        obj(&["count"], json!({ "count": { "type": "integer", "minimum": 0 } }), json!({ "count": 1 })),
    );
    m.insert(
        "MemoryList".into(),
        obj(
            &["memories", "scores", "hybrid", "notice"],
            json!({
                "memories": { "type": "array", "items": { "$ref": "#/components/schemas/Memory" } },
                "scores": { "type": "array", "items": { "type": "number" }, "description": "Recall scores" },
                "hybrid": { "type": "boolean", "description": "Vectors took part in the recall" },
                "notice": ostr("Why a recall was keyword-only") }),
            json!({ "memories": [memory], "scores": [0.0164], "hybrid": true, "notice": null }),
        ),
    );
}
