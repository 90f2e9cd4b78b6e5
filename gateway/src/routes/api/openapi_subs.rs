//! OpenAPI schemas of the subscription and delivery endpoints (see [`super::openapi`]).

use serde_json::{Map, Value, json};

use super::openapi::{TS, obj, s};

const SUB_ID: &str = "0193a6f1-0000-7000-8000-00000000a001";
const DELIVERY_ID: &str = "0193a6f1-0000-7000-8000-00000000d001";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn subscription_example() -> Value {
    json!({ "id": SUB_ID, "name": "ci-events", "install_id": null, "url": "https://hooks.example.org/cynode",
            "event_types": ["job.finished"], "filter": {}, "enabled": true, "disabled_reason": null,
            "disabled_at": null, "failing_since": null, "rotation_ends_at": null, "created_at": TS,
            "updated_at": TS })
}

fn delivery_example() -> Value {
    json!({ "id": DELIVERY_ID, "msg_id": "msg_6f1c0e2ad3a54b1e9a3f2b8d7c6e5f40", "subscription_id": SUB_ID,
            "event_type": "job.finished", "subject": DELIVERY_ID, "payload": { "state": "succeeded" },
            "state": "delivered", "attempts": 1, "next_attempt_at": TS, "last_status": 204, "last_error": null,
            "last_response": "", "last_attempt_at": TS, "event_at": TS, "created_at": TS, "delivered_at": TS,
            "replay_of": null })
}

/// Adds the subscription and delivery schemas to `m`.
pub(super) fn add(m: &mut Map<String, Value>) {
    let uuid = json!({ "type": "string", "format": "uuid" });
    let ouuid = json!({ "type": ["string", "null"], "format": "uuid" });
    let ts = json!({ "type": "string", "format": "date-time" });
    let ots = json!({ "type": ["string", "null"], "format": "date-time" });
    let events = json!({ "type": "array", "items": { "type": "string" },
                         "description": "Event types (docs/webhooks.md); empty = all except opt-in ones" });
    let filter = json!({ "type": "object", "description": "Equality on top-level `data` fields ({} = none)" });
    let ostr = json!({ "type": ["string", "null"] });
    m.insert(
        "Subscription".into(),
        obj(
            &["id", "name", "url", "event_types", "filter", "enabled", "created_at", "updated_at"],
            json!({ "id": uuid, "name": s("Unique name"), "install_id": ouuid, "url": s("Receiver URL"),
                    "event_types": events, "filter": filter, "enabled": { "type": "boolean" },
                    "disabled_reason": ostr, "disabled_at": ots, "failing_since": ots, "rotation_ends_at": ots,
                    "created_at": ts, "updated_at": ts }),
            subscription_example(),
        ),
    );
    m.insert(
        "CreateSubscriptionRequest".into(),
        obj(
            &["name", "url"],
            json!({ "name": s("1–100 characters of A-Z a-z 0-9 . _ -"), "url": s("http(s), not CyNode itself"),
                    "event_types": events, "filter": filter, "secret": s("whsec_…; generated when absent"),
                    "install_id": ouuid }),
            json!({ "name": "ci-events", "url": "https://hooks.example.org/cynode", "event_types": ["job.finished"] }),
        ),
    );
    m.insert(
        "CreatedSubscription".into(),
        obj(
            &["subscription", "secret"],
            json!({ "subscription": r("Subscription"), "secret": s("The signing secret, shown once") }),
            json!({ "subscription": subscription_example(), "secret": SECRET }),
        ),
    );
    m.insert(
        "SubscriptionList".into(),
        obj(
            &["subscriptions"],
            json!({ "subscriptions": { "type": "array", "items": r("Subscription") } }),
            json!({ "subscriptions": [subscription_example()] }),
        ),
    );
    m.insert(
        "UpdateSubscriptionRequest".into(),
        obj(
            &[],
            json!({ "url": s("New URL"), "event_types": events, "filter": filter,
                    "enabled": { "type": "boolean", "description": "false disables, true re-enables" } }),
            json!({ "enabled": false }),
        ),
    );
    m.insert(
        "RotateRequest".into(),
        obj(
            &[],
            json!({ "secret": s("whsec_…; generated when absent"),
                    "grace_seconds": { "type": "integer", "description": "Default 86400, at most 2592000" } }),
            json!({ "grace_seconds": 86400 }),
        ),
    );
    m.insert(
        "RotateResponse".into(),
        obj(
            &["secret", "previous_valid_until"],
            json!({ "secret": s("The new secret, shown once"), "previous_valid_until": ts }),
            json!({ "secret": SECRET, "previous_valid_until": TS }),
        ),
    );
    m.insert(
        "QueuedDelivery".into(),
        obj(&["delivery_id"], json!({ "delivery_id": uuid }), json!({ "delivery_id": DELIVERY_ID })),
    );
    m.insert(
        "ReplayRangeRequest".into(),
        obj(
            &["since"],
            json!({ "since": ts, "until": ots, "include_delivered": { "type": "boolean" } }),
            json!({ "since": TS, "until": null, "include_delivered": false }),
        ),
    );
    m.insert(
        "ReplayRangeResponse".into(),
        obj(&["queued"], json!({ "queued": { "type": "integer" } }), json!({ "queued": 3 })),
    );
    let oint = json!({ "type": ["integer", "null"] });
    m.insert(
        "Delivery".into(),
        obj(
            &[
                "id",
                "msg_id",
                "subscription_id",
                "event_type",
                "payload",
                "state",
                "attempts",
                "next_attempt_at",
                "event_at",
                "created_at",
            ],
            json!({ "id": uuid, "msg_id": s("The webhook-id"), "subscription_id": uuid, "event_type": s("Type"),
                    "subject": ouuid, "payload": { "type": "object" },
                    "state": { "enum": ["pending", "delivered", "failed", "dead"] },
                    "attempts": { "type": "integer" }, "next_attempt_at": ts, "last_status": oint,
                    "last_error": ostr, "last_response": ostr, "last_attempt_at": ots, "event_at": ts,
                    "created_at": ts, "delivered_at": ots, "replay_of": ouuid }),
            delivery_example(),
        ),
    );
    m.insert(
        "DeliveryList".into(),
        obj(
            &["deliveries"],
            json!({ "deliveries": { "type": "array", "items": r("Delivery") }, "next_cursor": ouuid }),
            json!({ "deliveries": [delivery_example()], "next_cursor": null }),
        ),
    );
}
