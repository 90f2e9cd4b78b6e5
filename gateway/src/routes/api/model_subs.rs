//! Request and response bodies of the subscription endpoints (the CLI deserializes the same types).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use cynode_orchestrator::outbox::{Delivery, DeliveryState, Subscription};

/// `POST /v1/subscriptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscriptionRequest {
    /// Unique name: 1–100 characters of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// Receiver URL (http or https, not CyNode itself).
    pub url: String,
    /// Event types; empty or absent means every type except opt-in ones (`job.output`).
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Equality filter on top-level `data` fields, e.g. `{"template": "python"}`.
    #[serde(default)]
    pub filter: Option<serde_json::Value>,
    /// A `whsec_…` secret to use; generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// Owner install; a token limited to an install always creates subscriptions of that install.
    #[serde(default)]
    pub install_id: Option<Uuid>,
}

/// `201` of `POST /v1/subscriptions`: the only answer that carries the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatedSubscriptionResponse {
    /// The subscription.
    pub subscription: Subscription,
    /// Its signing secret (`whsec_…`). Shown once.
    pub secret: String,
}

/// `GET /v1/subscriptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionList {
    /// By name.
    pub subscriptions: Vec<Subscription>,
}

/// `PATCH /v1/subscriptions/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSubscriptionRequest {
    /// New receiver URL.
    #[serde(default)]
    pub url: Option<String>,
    /// New event types (`[]`: every type except opt-in ones).
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// New filter (`{}`: none).
    #[serde(default)]
    pub filter: Option<serde_json::Value>,
    /// `false` disables (pending deliveries stop), `true` re-enables.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `POST /v1/subscriptions/{id}/rotate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// The new `whsec_…` secret; generated when absent.
    #[serde(default)]
    pub secret: Option<String>,
    /// How long the previous secret keeps signing too, in seconds (default 86400, at most 30 days).
    #[serde(default)]
    pub grace_seconds: Option<u64>,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateResponse {
    /// The new secret, which signs from now on. Shown once.
    pub secret: String,
    /// Until when the previous secret(s) sign too.
    pub previous_valid_until: DateTime<Utc>,
}

/// A delivery queued by a test message or a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuedDelivery {
    /// The delivery to watch (`GET /v1/deliveries/{id}`).
    pub delivery_id: Uuid,
}

/// `POST /v1/subscriptions/{id}/replay`: resend the deliveries created in `[since, until]` that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRangeRequest {
    /// Start of the range (RFC 3339).
    pub since: DateTime<Utc>,
    /// End of the range (RFC 3339); default now.
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Also resend deliveries the receiver accepted.
    #[serde(default)]
    pub include_delivered: bool,
}

/// What a range replay queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRangeResponse {
    /// How many deliveries were queued again.
    pub queued: u64,
}

/// A page of deliveries, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<Delivery>,
    /// Pass as `?before=` for the next page (the last delivery's id); `null` on the last page.
    pub next_cursor: Option<Uuid>,
}
