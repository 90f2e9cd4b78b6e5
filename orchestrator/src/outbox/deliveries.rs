//! Delivery history, test pings and replays.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{EventType, OutboxError, Subscriptions};
use crate::audit;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its next attempt, or being attempted.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Stopped before retries ran out because the subscription was disabled (410, sustained failure, by hand).
    Failed,
    /// Every attempt of the retry schedule failed.
    Dead,
}

/// One delivery (one event for one subscription) and the outcome of its last attempt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// Id.
    pub id: Uuid,
    /// The `webhook-id` sent on every attempt; replays share it.
    pub msg_id: String,
    /// Subscription.
    pub subscription_id: Uuid,
    /// Event type name.
    pub event_type: String,
    /// What the event is about (task, job, approval or node id).
    pub subject: Option<Uuid>,
    /// The message's `data`.
    pub payload: serde_json::Value,
    /// State.
    pub state: DeliveryState,
    /// Attempts made (including one in progress).
    pub attempts: i32,
    /// When the next attempt is due (while pending).
    pub next_attempt_at: DateTime<Utc>,
    /// HTTP status of the last attempt, if one was received.
    pub last_status: Option<i32>,
    /// Short description of the last failure (no secrets, no body).
    pub last_error: Option<String>,
    /// The first ~200 characters of the last response body.
    pub last_response: Option<String>,
    /// When the last attempt started.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the event happened (the message's `timestamp`).
    pub event_at: DateTime<Utc>,
    /// When the delivery was created.
    pub created_at: DateTime<Utc>,
    /// When the receiver accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// For a replay: the original delivery.
    pub replay_of: Option<Uuid>,
}

/// Which deliveries [`Subscriptions::deliveries`] lists, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    /// Only this subscription.
    pub subscription: Option<Uuid>,
    /// Only this state.
    pub state: Option<DeliveryState>,
    /// Only those listed after this delivery (for paging: pass the id of the last one seen). Ties in
    /// `created_at` (deliveries of one transaction) are broken by id, so no page skips one.
    pub before: Option<Uuid>,
    /// At most this many (default 100, capped at 1,000).
    pub limit: Option<u32>,
}

/// What [`Subscriptions::replay_range`] resends.
#[derive(Debug, Clone, Copy)]
pub struct ReplayRange {
    /// Deliveries created at or after this.
    pub from: DateTime<Utc>,
    /// … and at or before this.
    pub to: DateTime<Utc>,
    /// Also resend deliveries the receiver already accepted (otherwise only `failed` and `dead` ones).
    pub include_delivered: bool,
}

macro_rules! delivery_columns {
    () => {
        "id, msg_id, subscription_id, event_type, subject, payload, state, attempts, next_attempt_at, last_status, \
         last_error, last_response, last_attempt_at, event_at, created_at, delivered_at, replay_of"
    };
}

impl Subscriptions {
    /// Queues a `ping` message to one subscription, whatever its event types; returns the delivery id.
    ///
    /// # Errors
    /// [`OutboxError::NotFound`], [`OutboxError::Conflict`] when the subscription is disabled, store failures.
    pub async fn send_test(&self, id: Uuid) -> Result<Uuid, OutboxError> {
        let sub = self.get(id).await?;
        if !sub.enabled {
            return Err(OutboxError::Conflict("the subscription is disabled; enable it first".into()));
        }
        let payload = json!({ "subscription": sub.name, "message": "test message from CyNode" });
        let delivery: Uuid = sqlx::query_scalar(
            "INSERT INTO deliveries (id, msg_id, subscription_id, event_type, subject, payload)
             VALUES (gen_random_uuid(), 'msg_' || replace(gen_random_uuid()::text, '-', ''), $1, $2, $1, $3)
             RETURNING id",
        )
        .bind(id)
        .bind(EventType::Ping.as_str())
        .bind(&payload)
        .fetch_one(&self.pool)
        .await?;
        self.wake();
        Ok(delivery)
    }

    /// Sends one delivery again with the **same** `webhook-id`, as a new delivery (returned) whose `replay_of`
    /// names the original. A delivery that is still pending is made due now instead of duplicated.
    ///
    /// # Errors
    /// [`OutboxError::NotFound`], [`OutboxError::Conflict`] when the subscription is disabled, store failures.
    pub async fn replay(&self, actor: &str, delivery: Uuid) -> Result<Uuid, OutboxError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(DeliveryState, bool, String)> = sqlx::query_as(
            "SELECT d.state, s.enabled, s.name FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
             WHERE d.id = $1 FOR UPDATE OF d",
        )
        .bind(delivery)
        .fetch_optional(&mut *tx)
        .await?;
        let (state, enabled, name) = row.ok_or(OutboxError::NotFound("delivery"))?;
        if !enabled {
            return Err(OutboxError::Conflict("the subscription is disabled; enable it first".into()));
        }
        let id = if state == DeliveryState::Pending {
            sqlx::query("UPDATE deliveries SET next_attempt_at = now() WHERE id = $1 AND claim_token IS NULL")
                .bind(delivery)
                .execute(&mut *tx)
                .await?;
            delivery
        } else {
            sqlx::query_scalar(
                "INSERT INTO deliveries (id, msg_id, subscription_id, event_type, subject, payload, event_at, replay_of)
                 SELECT gen_random_uuid(), msg_id, subscription_id, event_type, subject, payload, event_at,
                        coalesce(replay_of, id)
                 FROM deliveries WHERE id = $1
                 RETURNING id",
            )
            .bind(delivery)
            .fetch_one(&mut *tx)
            .await?
        };
        let detail = json!({ "delivery": delivery, "queued": id });
        audit::append(&mut tx, actor, "subscription.replay", &format!("subscription:{name}"), &detail).await?;
        tx.commit().await?;
        self.wake();
        Ok(id)
    }

    /// Resends, with their original `webhook-id`s, the deliveries of one subscription created in
    /// `[from, to]` that ended `failed` or `dead` (and `delivered` ones when asked). Replays are not replayed
    /// again; a delivery whose replay is still pending is skipped, and so is one whose replay was delivered
    /// unless `include_delivered`. Returns how many were queued.
    ///
    /// # Errors
    /// [`OutboxError::Invalid`] when `from > to`, [`OutboxError::NotFound`], [`OutboxError::Conflict`] when
    /// the subscription is disabled, store failures.
    pub async fn replay_range(&self, actor: &str, id: Uuid, range: &ReplayRange) -> Result<u64, OutboxError> {
        if range.from > range.to {
            return Err(OutboxError::Invalid("the range starts after it ends".into()));
        }
        let sub = self.get(id).await?;
        if !sub.enabled {
            return Err(OutboxError::Conflict("the subscription is disabled; enable it first".into()));
        }
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO deliveries (id, msg_id, subscription_id, event_type, subject, payload, event_at, replay_of)
             SELECT gen_random_uuid(), d.msg_id, d.subscription_id, d.event_type, d.subject, d.payload, d.event_at, d.id
             FROM deliveries d
             WHERE d.subscription_id = $1 AND d.created_at BETWEEN $2 AND $3 AND d.replay_of IS NULL
               AND (d.state IN ('failed', 'dead') OR ($4 AND d.state = 'delivered'))
               AND NOT EXISTS (SELECT 1 FROM deliveries r WHERE r.replay_of = d.id
                               AND (r.state = 'pending' OR (r.state = 'delivered' AND NOT $4)))",
        )
        .bind(id)
        .bind(range.from)
        .bind(range.to)
        .bind(range.include_delivered)
        .execute(&mut *tx)
        .await?;
        let queued = done.rows_affected();
        let detail = json!({ "from": range.from, "to": range.to, "include_delivered": range.include_delivered,
                             "queued": queued });
        audit::append(&mut tx, actor, "subscription.replay_range", &format!("subscription:{}", sub.name), &detail)
            .await?;
        tx.commit().await?;
        self.wake();
        Ok(queued)
    }

    /// Deliveries, newest first.
    ///
    /// # Errors
    /// Store failures.
    pub async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, OutboxError> {
        let sql = concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries
             WHERE ($1::uuid IS NULL OR subscription_id = $1) AND ($2::text IS NULL OR state = $2)
               AND ($3::uuid IS NULL OR (created_at, id) < (SELECT c.created_at, c.id FROM deliveries c WHERE c.id = $3))
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let limit = i64::from(q.limit.unwrap_or(100).clamp(1, 1000));
        Ok(sqlx::query_as(sql)
            .bind(q.subscription)
            .bind(q.state)
            .bind(q.before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// One delivery.
    ///
    /// # Errors
    /// [`OutboxError::NotFound`], store failures.
    pub async fn delivery(&self, id: Uuid) -> Result<Delivery, OutboxError> {
        let sql = concat!("SELECT ", delivery_columns!(), " FROM deliveries WHERE id = $1");
        let row = sqlx::query_as(sql).bind(id).fetch_optional(&self.pool).await?;
        row.ok_or(OutboxError::NotFound("delivery"))
    }

    fn wake(&self) {
        if let Some(w) = &self.waker {
            w.announce();
        }
    }
}
