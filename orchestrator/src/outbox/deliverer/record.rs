//! The deliverer's SQL: claim, next due time, and recording outcomes under the claim token.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::DelivererSettings;
use super::recorder::Done;
use super::send::Outcome;
use crate::outbox::lifecycle::disable;

/// Who the audit log names when the deliverer disables a subscription.
const ACTOR: &str = "outbox";

/// A claimed delivery with what sending it needs.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Claimed {
    pub id: Uuid,
    pub claim_token: Uuid,
    pub msg_id: String,
    pub event_type: String,
    pub event_at: DateTime<Utc>,
    pub payload: serde_json::Value,
    /// Including this one.
    pub attempts: i32,
    pub subscription_id: Uuid,
    pub name: String,
    pub url: String,
    pub secrets: Vec<u8>,
    pub secrets_retire_at: Option<DateTime<Utc>>,
}

const CLAIM: &str = "
WITH picked AS (
    SELECT d.id FROM deliveries d
    JOIN subscriptions s ON s.id = d.subscription_id
    WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND s.enabled
    ORDER BY d.next_attempt_at
    LIMIT $1
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries d
SET attempts = d.attempts + 1, claim_token = $2, last_attempt_at = now(),
    next_attempt_at = now() + $3::float8 * interval '1 millisecond'
FROM picked, subscriptions s
WHERE d.id = picked.id AND s.id = d.subscription_id
RETURNING d.id, d.claim_token, d.msg_id, d.event_type, d.event_at, d.payload, d.attempts, d.subscription_id,
          s.name, s.url, s.secrets, s.secrets_retire_at";

/// Claims up to `limit` due deliveries of enabled subscriptions for `ttl`.
pub(super) async fn claim(pool: &PgPool, limit: usize, ttl: Duration) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as(CLAIM)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(Uuid::new_v4())
        .bind(ttl.as_secs_f64() * 1000.0)
        .fetch_all(pool)
        .await
}

/// How long until the next pending delivery of an enabled subscription is due (zero when one is due now).
pub(super) async fn next_due(pool: &PgPool) -> Result<Option<Duration>, sqlx::Error> {
    let secs: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM min(d.next_attempt_at) - now())::float8
         FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
         WHERE d.state = 'pending' AND s.enabled",
    )
    .fetch_one(pool)
    .await?;
    Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

const DELIVERED: &str = "
WITH d AS (
    UPDATE deliveries SET state = 'delivered', delivered_at = now(), last_status = $3, last_error = NULL,
        last_response = $4, claim_token = NULL
    WHERE id = $1 AND claim_token = $2 AND state = 'pending'
    RETURNING subscription_id
)
UPDATE subscriptions s SET failing_since = NULL
FROM d WHERE s.id = d.subscription_id AND s.failing_since IS NOT NULL";

const DELIVERED_BATCH: &str = "
WITH r AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[]) AS r (id, token, status, response)
), d AS (
    UPDATE deliveries d SET state = 'delivered', delivered_at = now(), last_status = r.status, last_error = NULL,
        last_response = r.response, claim_token = NULL
    FROM r WHERE d.id = r.id AND d.claim_token = r.token AND d.state = 'pending'
    RETURNING d.subscription_id
)
UPDATE subscriptions s SET failing_since = NULL
WHERE s.id IN (SELECT subscription_id FROM d) AND s.failing_since IS NOT NULL";

/// Records many successful attempts in one statement.
pub(super) async fn delivered_batch(pool: &PgPool, batch: &[Done]) -> Result<(), sqlx::Error> {
    let mut ids = Vec::with_capacity(batch.len());
    let mut tokens = Vec::with_capacity(batch.len());
    let mut statuses = Vec::with_capacity(batch.len());
    let mut responses = Vec::with_capacity(batch.len());
    for done in batch {
        if let Outcome::Delivered { status, response } = &done.outcome {
            ids.push(done.claimed.id);
            tokens.push(done.claimed.claim_token);
            statuses.push(i32::from(*status));
            responses.push(response.as_str());
        }
    }
    sqlx::query(DELIVERED_BATCH).bind(&ids).bind(&tokens).bind(&statuses).bind(&responses).execute(pool).await?;
    for done in batch {
        let d = &done.claimed;
        tracing::debug!(delivery.id = %d.id, subscription.id = %d.subscription_id, duration_ms = done.duration_ms,
                        attempt = d.attempts, "webhook delivered");
    }
    Ok(())
}

/// Returns no row when the claim was lost; otherwise the subscription's failure clock as it was before.
const FAILED: &str = "
WITH d AS (
    UPDATE deliveries SET state = CASE WHEN $3 THEN 'dead' ELSE 'pending' END,
        next_attempt_at = now() + $4::float8 * interval '1 millisecond',
        last_status = $5, last_error = $6, last_response = $7, claim_token = NULL
    WHERE id = $1 AND claim_token = $2 AND state = 'pending'
    RETURNING subscription_id
), started AS (
    UPDATE subscriptions s SET failing_since = now()
    FROM d WHERE s.id = d.subscription_id AND s.failing_since IS NULL
    RETURNING s.id
)
SELECT s.failing_since FROM subscriptions s JOIN d ON s.id = d.subscription_id";

const GONE: &str = "
UPDATE deliveries SET state = 'failed', last_status = 410, last_error = $3, last_response = $4, claim_token = NULL
WHERE id = $1 AND claim_token = $2 AND state = 'pending'";

const GONE_REASON: &str = "receiver answered 410 Gone";

/// Records what an attempt came to, schedules a retry or gives up, and disables the subscription on 410 or
/// sustained failure.
pub(super) async fn outcome(
    pool: &PgPool,
    settings: &DelivererSettings,
    d: &Claimed,
    outcome: &Outcome,
    duration_ms: u64,
) -> Result<(), sqlx::Error> {
    match outcome {
        Outcome::Delivered { status, response } => {
            sqlx::query(DELIVERED)
                .bind(d.id)
                .bind(d.claim_token)
                .bind(i32::from(*status))
                .bind(response)
                .execute(pool)
                .await?;
            tracing::debug!(delivery.id = %d.id, subscription.id = %d.subscription_id, http.status = status,
                            duration_ms, attempt = d.attempts, "webhook delivered");
        }
        Outcome::Gone { response } => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(GONE)
                .bind(d.id)
                .bind(d.claim_token)
                .bind(GONE_REASON)
                .bind(response)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 && disable(&mut tx, d.subscription_id, GONE_REASON, ACTOR).await? {
                tracing::warn!(subscription.id = %d.subscription_id, "webhook receiver answered 410 Gone; subscription disabled");
            }
            tx.commit().await?;
        }
        Outcome::Failed { status, error, response, retry_after } => {
            let planned = usize::try_from(d.attempts - 1).ok().and_then(|i| settings.schedule.get(i)).copied();
            let delay = match (planned, retry_after) {
                (Some(p), Some(r)) => p.max((*r).min(settings.max_retry_after)),
                (p, _) => p.unwrap_or_default(),
            };
            let dead = planned.is_none();
            let since: Option<Option<DateTime<Utc>>> = sqlx::query_scalar(FAILED)
                .bind(d.id)
                .bind(d.claim_token)
                .bind(dead)
                .bind(delay.as_secs_f64() * 1000.0)
                .bind(status.map(i32::from))
                .bind(error)
                .bind(response)
                .fetch_optional(pool)
                .await?;
            let level_dead = if dead { "gave up (retries exhausted)" } else { "will retry" };
            tracing::info!(delivery.id = %d.id, subscription.id = %d.subscription_id, http.status = status,
                           duration_ms, attempt = d.attempts, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                           error = %error, "webhook delivery failed; {level_dead}");
            if let Some(Some(since)) = since {
                sustained_failure(pool, settings, d, since).await?;
            }
        }
    }
    Ok(())
}

async fn sustained_failure(
    pool: &PgPool,
    settings: &DelivererSettings,
    d: &Claimed,
    since: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let failing = (Utc::now() - since).to_std().unwrap_or_default();
    if failing < settings.disable_after {
        return Ok(());
    }
    let reason = format!(
        "every delivery attempt failed since {} ({})",
        since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        human(failing)
    );
    let mut tx = pool.begin().await?;
    if disable(&mut tx, d.subscription_id, &reason, ACTOR).await? {
        tracing::warn!(subscription.id = %d.subscription_id, failing_s = failing.as_secs(),
                       "webhook subscription disabled after sustained failure");
    }
    tx.commit().await
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}
