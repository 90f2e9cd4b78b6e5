//! The outbound budget shared by every replica: token buckets per `(install, bucket)` in `outbound_budget`,
//! taken atomically in one transaction (rows locked in key order, so concurrent takers cannot deadlock).
//!
//! A taker that would have to wait a little may **reserve**: it takes the token now (the bucket goes below zero)
//! and sends once the bucket has refilled to where the token was due. Reservations queue takers in arrival
//! order, so many streams sharing one bucket (a bot's global limit) each get their turn instead of the luckiest
//! poller taking every freed token; the rate sent never exceeds the bucket's.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::sink::BucketSpec;

/// The answer of [`OutboundBudget::take`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    /// Taken: send now.
    Now,
    /// Reserved: send after this long (the tokens are taken; do not take again).
    Reserved(Duration),
    /// Not taken (a bucket is blocked by a 429, or the queue is longer than the caller may wait): try again
    /// after this long.
    Later(Duration),
}

/// Store-backed token buckets.
#[derive(Debug, Clone)]
pub struct OutboundBudget {
    pool: PgPool,
}

#[derive(sqlx::FromRow)]
struct Row {
    bucket: String,
    tokens: f64,
    elapsed_s: f64,
    blocked_s: f64,
}

impl OutboundBudget {
    /// Buckets in `pool`.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Takes one token from every bucket in `specs`, all or none: now, or reserved for a moment at most
    /// `max_reserve` away (see [`Take`]).
    ///
    /// # Errors
    /// Store failures.
    pub async fn take(&self, install: Uuid, specs: &[BucketSpec], max_reserve: Duration) -> Result<Take, sqlx::Error> {
        if specs.is_empty() {
            return Ok(Take::Now);
        }
        let mut specs: Vec<&BucketSpec> = specs.iter().collect();
        specs.sort_by(|a, b| a.key.cmp(&b.key));
        specs.dedup_by(|a, b| a.key == b.key);
        let keys: Vec<&str> = specs.iter().map(|s| s.key.as_str()).collect();
        let bursts: Vec<f64> = specs.iter().map(|s| s.burst).collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO outbound_budget (install_id, bucket, tokens)
             SELECT $1, k, b FROM unnest($2::text[], $3::float8[]) AS s(k, b) ORDER BY k
             ON CONFLICT (install_id, bucket) DO NOTHING",
        )
        .bind(install)
        .bind(&keys)
        .bind(&bursts)
        .execute(&mut *tx)
        .await?;
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT bucket, tokens,
                    greatest(extract(epoch FROM clock_timestamp() - refilled_at), 0)::float8 AS elapsed_s,
                    coalesce(greatest(extract(epoch FROM blocked_until - clock_timestamp()), 0), 0)::float8 AS blocked_s
             FROM outbound_budget WHERE install_id = $1 AND bucket = ANY($2) ORDER BY bucket FOR UPDATE",
        )
        .bind(install)
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await?;
        let mut wait = 0.0_f64;
        let mut blocked = 0.0_f64;
        let mut levels = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(spec) = specs.iter().find(|s| s.key == row.bucket) else { continue };
            let level = (row.tokens + row.elapsed_s * spec.per_second).min(spec.burst);
            blocked = blocked.max(row.blocked_s);
            if level < 1.0 {
                wait = wait.max((1.0 - level) / spec.per_second.max(1e-6));
            }
            levels.push(level);
        }
        let reserve = max_reserve.as_secs_f64();
        let answer = if blocked > 0.0 {
            Take::Later(Duration::from_secs_f64(blocked.max(wait).min(3_600.0)))
        } else if wait <= 0.0 {
            Take::Now
        } else if wait <= reserve {
            Take::Reserved(Duration::from_secs_f64(wait))
        } else {
            Take::Later(Duration::from_secs_f64((wait - reserve).clamp(0.001, 3_600.0)))
        };
        let taken = matches!(answer, Take::Now | Take::Reserved(_));
        let next: Vec<f64> = levels.iter().map(|l| if taken { l - 1.0 } else { *l }).collect();
        let row_keys: Vec<&str> = rows.iter().map(|r| r.bucket.as_str()).collect();
        sqlx::query(
            "UPDATE outbound_budget o SET tokens = u.t, refilled_at = clock_timestamp()
             FROM unnest($2::text[], $3::float8[]) AS u(k, t) WHERE o.install_id = $1 AND o.bucket = u.k",
        )
        .bind(install)
        .bind(&row_keys)
        .bind(&next)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(answer)
    }

    /// Blocks every bucket in `specs` for `wait` (a platform 429's `Retry-After`, or Discord's reset time when
    /// a bucket reports nothing remaining), on every replica. When the wait is over, one request may go at once
    /// (that is what the platform said) and the bucket refills from there.
    ///
    /// # Errors
    /// Store failures.
    pub async fn block(&self, install: Uuid, specs: &[BucketSpec], wait: Duration) -> Result<(), sqlx::Error> {
        let keys: Vec<&str> = specs.iter().map(|s| s.key.as_str()).collect();
        sqlx::query(
            "UPDATE outbound_budget SET tokens = 1, refilled_at = clock_timestamp() + $3 * interval '1 millisecond',
                 blocked_until = greatest(coalesce(blocked_until, clock_timestamp()),
                                          clock_timestamp() + $3 * interval '1 millisecond')
             WHERE install_id = $1 AND bucket = ANY($2)",
        )
        .bind(install)
        .bind(&keys)
        .bind(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
