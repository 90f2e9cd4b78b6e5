//! OpenAPI schemas of `GET /v1/usage` (see [`super::openapi`]).

use serde_json::{Map, Value, json};

use super::openapi::obj;

const INSTALL_ID: &str = "0193a6f1-0000-7000-8000-0000000000a1";

/// Adds the usage schemas to `m`.
pub(super) fn add(m: &mut Map<String, Value>) {
    let day = json!({ "type": "string", "format": "date", "description": "A UTC day" });
    let int = json!({ "type": "integer", "minimum": 0 });
    let ostr = |d: &str| json!({ "type": ["string", "null"], "description": d });
    let by = json!({ "enum": ["install", "requester", "channel", "model"] });
    let row = json!({ "day": "2026-12-06", "install_id": INSTALL_ID, "install_name": "acme", "requester": "U0123",
                      "channel": null, "model": null, "calls": 12, "prompt_tokens": 48_210,
                      "completion_tokens": 3_904 });
    m.insert(
        "UsageRow".into(),
        obj(
            &["day", "calls", "prompt_tokens", "completion_tokens"],
            json!({
                "day": day, "install_id": { "type": ["string", "null"], "format": "uuid" },
                "install_name": ostr("The install's name"),
                "requester": ostr("Who asked (grouping `requester`)"),
                "channel": ostr("The chat channel (grouping `channel`)"),
                "model": ostr("The model asked for (grouping `model`; \"\" = the node's default)"),
                "calls": int, "prompt_tokens": int, "completion_tokens": int }),
            row.clone(),
        ),
    );
    let totals = json!({ "calls": 12, "prompt_tokens": 48_210, "completion_tokens": 3_904 });
    m.insert(
        "UsageTotal".into(),
        obj(
            &["calls", "prompt_tokens", "completion_tokens"],
            json!({ "calls": int, "prompt_tokens": int, "completion_tokens": int }),
            totals.clone(),
        ),
    );
    m.insert(
        "UsageReport".into(),
        obj(
            &["from", "to", "by", "rows", "truncated", "total"],
            json!({
                "from": day, "to": day, "by": by,
                "rows": { "type": "array", "items": { "$ref": "#/components/schemas/UsageRow" },
                          "description": "Per day (newest first), then per group (most tokens first); keys \
                                          outside the grouping are null" },
                "truncated": { "type": "boolean", "description": "More rows than `limit` matched" },
                "total": { "$ref": "#/components/schemas/UsageTotal" } }),
            json!({ "from": "2026-11-30", "to": "2026-12-06", "by": "requester", "rows": [row], "truncated": false,
                    "total": totals }),
        ),
    );
}
