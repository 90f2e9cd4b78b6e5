//! The outbound budget shared by every replica: token buckets per `(install, bucket)` in `outbound_budget`,
//! taken atomically in one transaction (rows locked in key order, so concurrent takers cannot deadlock).

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::sink::BucketSpec;

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

    /// Takes one token from every bucket in `specs`, all or none. `Ok(None)` when taken; `Ok(Some(wait))` when
    /// a bucket is empty or blocked: try again after `wait`.
    ///
    /// # Errors
    /// Store failures.
    pub async fn take(&self, install: Uuid, specs: &[BucketSpec]) -> Result<Option<Duration>, sqlx::Error> {
        if specs.is_empty() {
            return Ok(None);
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
        let mut levels = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(spec) = specs.iter().find(|s| s.key == row.bucket) else { continue };
            let level = (row.tokens + row.elapsed_s * spec.per_second).min(spec.burst);
            if row.blocked_s > 0.0 {
                wait = wait.max(row.blocked_s);
            } else if level < 1.0 {
                wait = wait.max((1.0 - level) / spec.per_second.max(1e-6));
            }
            levels.push(level);
        }
        let taken = wait <= 0.0;
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
        Ok((!taken).then(|| Duration::from_secs_f64(wait.min(3_600.0))))
    }

    /// Blocks every bucket in `specs` for `wait` (a platform 429's `Retry-After`, or Discord's reset time when
    /// a bucket reports nothing remaining), on every replica.
    ///
    /// # Errors
    /// Store failures.
    pub async fn block(&self, install: Uuid, specs: &[BucketSpec], wait: Duration) -> Result<(), sqlx::Error> {
        let keys: Vec<&str> = specs.iter().map(|s| s.key.as_str()).collect();
        sqlx::query(
            "UPDATE outbound_budget SET tokens = 0, refilled_at = clock_timestamp() + $3 * interval '1 millisecond',
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
