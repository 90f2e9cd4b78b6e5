//! The subscription management API: what the HTTP layer and the CLI call.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{OutboxError, OutboxWaker, secrets, validate};
use crate::audit;
use crate::crypto::SecretBox;
use crate::outbound_guard::OutboundGuard;

/// A subscription as the API shows it. Secrets are never part of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// The install (tenant) that owns it: it receives only that install's events, and only tokens of that
    /// install (or global ones) see it. `None`: global.
    pub install_id: Option<Uuid>,
    /// Receiver URL.
    pub url: String,
    /// Subscribed event types; empty means every event except opt-in ones (`job.output`).
    pub event_types: Vec<String>,
    /// Equality filter on top-level payload fields (`{}` = none).
    pub filter: serde_json::Value,
    /// Whether deliveries are created and sent.
    pub enabled: bool,
    /// Why it was disabled (410 Gone, sustained failure, or by whom).
    pub disabled_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Every attempt since then failed (the sustained-failure clock); `None` while healthy.
    pub failing_since: Option<DateTime<Utc>>,
    /// While a rotation's grace period runs: when the previous secrets stop being signed with.
    pub rotation_ends_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// What [`Subscriptions::create`] needs.
#[derive(Debug, Clone, Default)]
pub struct NewSubscription {
    /// Unique name: 1–100 characters of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// Receiver URL, http(s).
    pub url: String,
    /// Owner install (tenant), or `None` for a global subscription.
    pub install_id: Option<Uuid>,
    /// Event types (`job.finished`, …); empty means all except opt-in ones.
    pub event_types: Vec<String>,
    /// Optional equality filter, e.g. `{"install_id": "…"}`; `Null` or `{}` for none.
    pub filter: serde_json::Value,
    /// A `whsec_…` secret to use; a fresh one is generated when `None`.
    pub secret: Option<SecretString>,
}

/// The result of [`Subscriptions::create`]: the only time the secret is returned.
#[derive(Debug)]
pub struct CreatedSubscription {
    /// The stored subscription.
    pub subscription: Subscription,
    /// Its signing secret. Show it once; it cannot be read back.
    pub secret: SecretString,
}

/// Changes for [`Subscriptions::update`]; `None` leaves a field alone. The name cannot change.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionUpdate {
    /// New receiver URL.
    pub url: Option<String>,
    /// New event types.
    pub event_types: Option<Vec<String>>,
    /// New filter.
    pub filter: Option<serde_json::Value>,
    /// `false` disables (and stops pending deliveries); `true` re-enables like [`Subscriptions::enable`].
    pub enabled: Option<bool>,
}

/// The result of [`Subscriptions::rotate_secret`].
#[derive(Debug)]
pub struct RotatedSecret {
    /// The new secret (signs from now on). Show it once.
    pub secret: SecretString,
    /// Until when the previous secret(s) are still signed with.
    pub previous_valid_until: DateTime<Utc>,
}

/// The columns of [`Subscription`], for `concat!` into static SQL.
macro_rules! columns {
    () => {
        "id, name, install_id, url, event_types, filter, enabled, disabled_reason, disabled_at, failing_since, \
         CASE WHEN secrets_retire_at > now() THEN secrets_retire_at END AS rotation_ends_at, created_at, updated_at"
    };
}

/// The management API over the store. Cheap to clone; build one at start-up.
#[derive(Debug, Clone)]
pub struct Subscriptions {
    pub(super) pool: PgPool,
    pub(super) secrets: SecretBox,
    pub(super) deny_hosts: Arc<[String]>,
    pub(super) waker: Option<OutboxWaker>,
    pub(super) guard: OutboundGuard,
}

impl Subscriptions {
    /// `deny_hosts` lists where CyNode itself is reachable (listen address, public URL host): subscriptions may
    /// not point there. Entries are `host`, `host:port` or a URL; see `docs/webhooks.md`.
    pub fn new(pool: PgPool, secrets: SecretBox, deny_hosts: Vec<String>) -> Self {
        Self { pool, secrets, deny_hosts: deny_hosts.into(), waker: None, guard: OutboundGuard::default() }
    }

    /// Sets which receiver addresses are accepted (by default no internal one; give the deliverer's guard, so a
    /// URL accepted here is one it sends to).
    #[must_use]
    pub fn with_guard(mut self, guard: OutboundGuard) -> Self {
        self.guard = guard;
        self
    }

    /// Checks a receiver URL: well formed, not CyNode itself, not an internal address (literal, `localhost`,
    /// or a name that resolves only to refused addresses).
    pub(super) async fn receiver_url(&self, raw: &str) -> Result<url::Url, OutboxError> {
        let url = validate::url(raw, &self.deny_hosts)?;
        self.guard.check_url_resolved(&url).await.map_err(|e| OutboxError::Invalid(e.to_string()))?;
        Ok(url)
    }

    /// Wakes the local deliverer after test pings and replays (give it [`super::Deliverer::waker`]).
    #[must_use]
    pub fn with_waker(mut self, waker: OutboxWaker) -> Self {
        self.waker = Some(waker);
        self
    }

    /// Creates a subscription; `actor` is recorded in the audit log.
    ///
    /// # Errors
    /// [`OutboxError::Invalid`] (bad name, URL, denied host or internal address, event, filter or secret), [`OutboxError::Conflict`]
    /// when the name is taken, store failures.
    pub async fn create(&self, actor: &str, new: &NewSubscription) -> Result<CreatedSubscription, OutboxError> {
        check_name(&new.name)?;
        let url = self.receiver_url(&new.url).await?;
        let events = validate::events(&new.event_types)?;
        let filter = validate::filter(&new.filter)?;
        let secret = match &new.secret {
            Some(s) if secrets::is_valid(s) => s.clone(),
            Some(_) => {
                return Err(OutboxError::Invalid("the secret must be `whsec_<base64 of 24–64 bytes>`".into()));
            }
            None => secrets::generate(),
        };
        let sealed = secrets::seal(&self.secrets, &new.name, std::slice::from_ref(&secret));
        let mut tx = self.pool.begin().await?;
        if let Some(install) = new.install_id
            && !crate::installs::exists(&mut tx, install).await?
        {
            return Err(OutboxError::Invalid(format!("there is no install {install}")));
        }
        let sql = concat!(
            "INSERT INTO subscriptions (id, name, url, event_types, filter, secrets, install_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name) DO NOTHING RETURNING ",
            columns!()
        );
        let row: Option<Subscription> = sqlx::query_as(sql)
            .bind(Uuid::now_v7())
            .bind(&new.name)
            .bind(url.as_str())
            .bind(&events)
            .bind(&filter)
            .bind(&sealed)
            .bind(new.install_id)
            .fetch_optional(&mut *tx)
            .await?;
        let subscription =
            row.ok_or_else(|| OutboxError::Conflict(format!("a subscription named `{}` already exists", new.name)))?;
        let detail = json!({ "url": subscription.url, "event_types": events, "filter": filter,
                             "install_id": new.install_id });
        audit::append(&mut tx, actor, "subscription.create", &subject(&new.name), &detail).await?;
        tx.commit().await?;
        Ok(CreatedSubscription { subscription, secret })
    }

    /// Every subscription, by name.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list(&self) -> Result<Vec<Subscription>, OutboxError> {
        self.list_for(None).await
    }

    /// The subscriptions a reader limited to `install` sees (that install's own), by name; `None` lists all.
    ///
    /// # Errors
    /// Store failures.
    pub async fn list_for(&self, install: Option<Uuid>) -> Result<Vec<Subscription>, OutboxError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM subscriptions WHERE $1::uuid IS NULL OR install_id = $1 ORDER BY name"
        );
        Ok(sqlx::query_as(sql).bind(install).fetch_all(&self.pool).await?)
    }

    /// One subscription.
    ///
    /// # Errors
    /// [`OutboxError::NotFound`], store failures.
    pub async fn get(&self, id: Uuid) -> Result<Subscription, OutboxError> {
        let sql = concat!("SELECT ", columns!(), " FROM subscriptions WHERE id = $1");
        let row = sqlx::query_as(sql).bind(id).fetch_optional(&self.pool).await?;
        row.ok_or(OutboxError::NotFound("subscription"))
    }

    /// One subscription by name.
    ///
    /// # Errors
    /// [`OutboxError::NotFound`], store failures.
    pub async fn get_by_name(&self, name: &str) -> Result<Subscription, OutboxError> {
        let sql = concat!("SELECT ", columns!(), " FROM subscriptions WHERE name = $1");
        let row = sqlx::query_as(sql).bind(name).fetch_optional(&self.pool).await?;
        row.ok_or(OutboxError::NotFound("subscription"))
    }
}

pub(super) fn subject(name: &str) -> String {
    format!("subscription:{name}")
}

fn check_name(name: &str) -> Result<(), OutboxError> {
    let ok = (1..=100).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(OutboxError::Invalid("the name must be 1–100 characters of A-Z a-z 0-9 . _ -".into()))
    }
}
