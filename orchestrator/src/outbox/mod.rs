//! Outbound webhook subscriptions: a transactional outbox and its deliverer, signed per Standard Webhooks.
//!
//! - [`emit`] writes one `deliveries` row per matching subscription **inside the caller's transaction**, so an
//!   event exists exactly when the state change it describes was committed. After the commit, call
//!   [`OutboxWaker::announce`] (from [`Deliverer::waker`]) so the local deliverer sends it at once; other
//!   replicas find it by polling (at most [`DelivererSettings::poll_interval`] later).
//! - [`Deliverer`] runs on every gateway replica. It claims due deliveries with one `FOR UPDATE SKIP LOCKED`
//!   statement under a short claim lease, POSTs them (bounded concurrency, one shared HTTP client), and records
//!   the result under the claim token, so a replica that crashed mid-send has its claims retried and a late
//!   result from a lost claim is ignored.
//! - [`Subscriptions`] is the management API the HTTP layer calls: create/list/get/update/delete, secret
//!   rotation, re-enable, test ping, replay and delivery listing.
//!
//! Guarantees: at-least-once delivery with a stable `webhook-id` (`msg_…`) across attempts and replays, so
//! receivers deduplicate on it. Per-endpoint ordering is **not** promised. Formats and rules for receivers are
//! in `docs/webhooks.md`.

mod deliverer;
mod deliveries;
mod event;
mod lifecycle;
mod secrets;
mod subscriptions;
mod validate;

use std::sync::Arc;

use tokio::sync::Notify;

pub use deliverer::{Deliverer, DelivererSettings, standard_schedule};
pub use deliveries::{Delivery, DeliveryQuery, DeliveryState, ReplayRange};
pub use event::{EventType, UnknownEventType, emit, emit_many};
pub use subscriptions::{
    CreatedSubscription, NewSubscription, RotatedSecret, Subscription, SubscriptionUpdate, Subscriptions,
};

/// Errors of the management API. `Invalid`, `NotFound` and `Conflict` carry messages meant for the user; the
/// others are internal (log them, answer a generic 5xx).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The request is not acceptable; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// No such subscription or delivery.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The name is taken, or the operation does not fit the current state.
    #[error("{0}")]
    Conflict(String),
    /// Stored secrets could not be opened (another master key, or altered data).
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// Store failure.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl OutboxError {
    /// Stable code for API responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Crypto(_) | Self::Db(_) => "internal",
        }
    }
}

/// Wakes the local [`Deliverer`] after a transaction that emitted events has committed. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct OutboxWaker {
    notify: Arc<Notify>,
}

impl OutboxWaker {
    /// Tells the local deliverer that deliveries may be due. Call **after** the emitting transaction commits
    /// (before the commit the rows are invisible, and the deliverer would find nothing). Calling it when
    /// nothing was emitted is harmless.
    pub fn announce(&self) {
        self.notify.notify_one();
    }

    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }
}
