//! Changing, disabling, deleting and re-keying subscriptions.

use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::subscriptions::subject;
use super::{OutboxError, RotatedSecret, Subscription, SubscriptionUpdate, Subscriptions, secrets, validate};
use crate::audit;

impl Subscriptions {
    /// Changes URL, events, filter or enabled state.
    ///
    /// # Errors
    /// [`OutboxError::Invalid`] as for [`Subscriptions::create`], [`OutboxError::NotFound`], store failures.
    pub async fn update(
        &self,
        actor: &str,
        id: Uuid,
        change: &SubscriptionUpdate,
    ) -> Result<Subscription, OutboxError> {
        let url = match change.url.as_deref() {
            Some(u) => Some(self.receiver_url(u).await?),
            None => None,
        };
        let events = change.event_types.as_deref().map(validate::events).transpose()?;
        let filter = change.filter.as_ref().map(validate::filter).transpose()?;
        let mut tx = self.pool.begin().await?;
        let name: Option<String> = sqlx::query_scalar(
            "UPDATE subscriptions SET url = coalesce($2, url), event_types = coalesce($3, event_types),
                 filter = coalesce($4, filter), updated_at = now()
             WHERE id = $1 RETURNING name",
        )
        .bind(id)
        .bind(url.as_ref().map(url::Url::as_str))
        .bind(&events)
        .bind(&filter)
        .fetch_optional(&mut *tx)
        .await?;
        let name = name.ok_or(OutboxError::NotFound("subscription"))?;
        match change.enabled {
            Some(false) => {
                disable(&mut tx, id, &format!("disabled by {actor}"), actor).await?;
            }
            Some(true) => enable_in(&mut tx, id).await?,
            None => {}
        }
        let detail = json!({ "url": url.map(String::from), "event_types": events, "filter": filter,
                             "enabled": change.enabled });
        audit::append(&mut tx, actor, "subscription.update", &subject(&name), &detail).await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// Deletes a subscription and its delivery history.
    ///
    /// # Errors
    /// [`OutboxError::NotFound`], store failures.
    pub async fn delete(&self, actor: &str, id: Uuid) -> Result<(), OutboxError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM deliveries WHERE subscription_id = $1").bind(id).execute(&mut *tx).await?;
        let name: Option<String> = sqlx::query_scalar("DELETE FROM subscriptions WHERE id = $1 RETURNING name")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let name = name.ok_or(OutboxError::NotFound("subscription"))?;
        audit::append(&mut tx, actor, "subscription.delete", &subject(&name), &json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Re-enables a disabled subscription and restarts its failure clock. Deliveries stopped while it was
    /// disabled are not resent by this: use [`Subscriptions::replay_range`].
    ///
    /// # Errors
    /// [`OutboxError::NotFound`], store failures.
    pub async fn enable(&self, actor: &str, id: Uuid) -> Result<Subscription, OutboxError> {
        self.update(actor, id, &SubscriptionUpdate { enabled: Some(true), ..SubscriptionUpdate::default() }).await
    }

    /// Rotates the signing secret: `new` (or a generated one) signs from now on, and the current secret(s) stay
    /// valid — every message carries a signature for each — for `grace` (Standard Webhooks suggests 24 h).
    ///
    /// # Errors
    /// [`OutboxError::Invalid`] for a malformed secret, [`OutboxError::NotFound`], [`OutboxError::Crypto`] when
    /// the stored secrets cannot be opened, store failures.
    pub async fn rotate_secret(
        &self,
        actor: &str,
        id: Uuid,
        new: Option<SecretString>,
        grace: Duration,
    ) -> Result<RotatedSecret, OutboxError> {
        let secret = match new {
            Some(s) if secrets::is_valid(&s) => s,
            Some(_) => {
                return Err(OutboxError::Invalid("the secret must be `whsec_<base64 of 24–64 bytes>`".into()));
            }
            None => secrets::generate(),
        };
        let grace = chrono::Duration::from_std(grace)
            .map_err(|_| OutboxError::Invalid("the grace period is too long".into()))?;
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, Vec<u8>, Option<DateTime<Utc>>)> =
            sqlx::query_as("SELECT name, secrets, secrets_retire_at FROM subscriptions WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let (name, sealed, retire_at) = row.ok_or(OutboxError::NotFound("subscription"))?;
        let now = Utc::now();
        let mut list = vec![secret.clone()];
        list.extend(secrets::current(secrets::open(&self.secrets, &name, &sealed)?, retire_at, now));
        list.truncate(secrets::MAX_SECRETS);
        let until: DateTime<Utc> = sqlx::query_scalar(
            "UPDATE subscriptions SET secrets = $2, secrets_retire_at = $3, updated_at = now() WHERE id = $1
             RETURNING secrets_retire_at",
        )
        .bind(id)
        .bind(secrets::seal(&self.secrets, &name, &list))
        .bind(now + grace)
        .fetch_one(&mut *tx)
        .await?;
        let detail = json!({ "previous_valid_until": until, "secrets": list.len() });
        audit::append(&mut tx, actor, "subscription.rotate_secret", &subject(&name), &detail).await?;
        tx.commit().await?;
        Ok(RotatedSecret { secret, previous_valid_until: until })
    }
}

async fn enable_in(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE subscriptions SET enabled = true, disabled_reason = NULL, disabled_at = NULL, failing_since = NULL,
             updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Disables a subscription with `reason`, stops its pending deliveries (state `failed`) and audits it. Returns
/// whether it was enabled before.
pub(super) async fn disable(conn: &mut PgConnection, id: Uuid, reason: &str, actor: &str) -> Result<bool, sqlx::Error> {
    let name: Option<String> = sqlx::query_scalar(
        "UPDATE subscriptions SET enabled = false, disabled_reason = $2, disabled_at = now(), updated_at = now()
         WHERE id = $1 AND enabled RETURNING name",
    )
    .bind(id)
    .bind(reason)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(name) = name else { return Ok(false) };
    sqlx::query(
        "UPDATE deliveries SET state = 'failed', claim_token = NULL,
             last_error = left('stopped: subscription disabled (' || $2 || ')', 200)
         WHERE subscription_id = $1 AND state = 'pending'",
    )
    .bind(id)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    audit::append(conn, actor, "subscription.disable", &subject(&name), &json!({ "reason": reason })).await?;
    Ok(true)
}
