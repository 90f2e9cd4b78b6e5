//! Idempotent import of a bootstrap file into the store, in one transaction.

use std::collections::BTreeMap;

use secrecy::ExposeSecret;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{BootstrapError, BootstrapFile, InstallRecord};
use crate::admin::AdminError;
use crate::audit;
use crate::crypto::{SecretBox, hash_credential};
use crate::outbound_guard::OutboundGuard;
use crate::policy::rego;
use crate::providers::Put;

/// What an import changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Rows created.
    pub created: u32,
    /// Rows whose content changed.
    pub updated: u32,
    /// Rows already as the file says.
    pub unchanged: u32,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} created, {} updated, {} unchanged", self.created, self.updated, self.unchanged)
    }
}

#[derive(Clone, Copy)]
enum Change {
    Created,
    Updated,
    Unchanged,
}

impl ImportReport {
    fn count(&mut self, c: Change) {
        match c {
            Change::Created => self.created += 1,
            Change::Updated => self.updated += 1,
            Change::Unchanged => self.unchanged += 1,
        }
    }
}

/// Imports `file`: creates what is missing, updates what differs, leaves the rest (and anything not in the
/// file) alone. Running it twice changes nothing the second time.
///
/// # Errors
/// [`BootstrapError::Store`] (the transaction is rolled back) or [`BootstrapError::Crypto`] when stored
/// secrets were sealed under another master key.
pub async fn import(
    pool: &PgPool,
    secrets: &SecretBox,
    file: &BootstrapFile,
    origin: &str,
) -> Result<ImportReport, BootstrapError> {
    import_with(pool, secrets, file, origin, &OutboundGuard::default()).await
}

/// [`import`], judging providers' base URLs with `guard` (the gateway's `outbound.allow_cidrs`).
///
/// # Errors
/// As [`import`]; a provider the guard or its checks refuse is [`BootstrapError::Invalid`].
pub async fn import_with(
    pool: &PgPool,
    secrets: &SecretBox,
    file: &BootstrapFile,
    origin: &str,
    guard: &OutboundGuard,
) -> Result<ImportReport, BootstrapError> {
    let mut tx = pool.begin().await?;
    let mut report = ImportReport::default();
    let mut install_ids = BTreeMap::new();
    for spec in &file.installs {
        let rec = spec.record();
        let (id, change) = upsert_install(&mut tx, secrets, &rec).await?;
        install_ids.insert(rec.name.clone(), id);
        report.count(change);
    }
    for k in &file.node_keys {
        let hash = hash_credential(k.key.expose_secret());
        let grants = serde_json::json!({ "executors": k.executors });
        let row: Option<(Vec<u8>, serde_json::Value)> =
            sqlx::query_as("SELECT key_hash, grants FROM node_keys WHERE name = $1")
                .bind(&k.name)
                .fetch_optional(&mut *tx)
                .await?;
        let change = match row {
            Some((h, g)) if h == hash && g == grants => Change::Unchanged,
            Some(_) => {
                sqlx::query("UPDATE node_keys SET key_hash = $2, grants = $3, revoked_at = NULL WHERE name = $1")
                    .bind(&k.name)
                    .bind(&hash)
                    .bind(&grants)
                    .execute(&mut *tx)
                    .await?;
                Change::Updated
            }
            None => {
                sqlx::query("INSERT INTO node_keys (id, name, key_hash, grants) VALUES ($1, $2, $3, $4)")
                    .bind(Uuid::now_v7())
                    .bind(&k.name)
                    .bind(&hash)
                    .bind(&grants)
                    .execute(&mut *tx)
                    .await?;
                Change::Created
            }
        };
        report.count(change);
    }
    for t in &file.templates {
        let spec = serde_json::to_value(t).unwrap_or_default();
        let change = upsert_json(
            &mut tx,
            "SELECT spec FROM templates WHERE name = $1",
            "INSERT INTO templates (name, image, spec) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET image = $2, spec = $3, updated_at = now()",
            &t.name,
            &t.image,
            &spec,
        )
        .await?;
        report.count(change);
    }
    report.count(replace_policy(&mut tx, file, &install_ids).await?);
    for s in &file.subscriptions {
        report.count(upsert_subscription(&mut tx, secrets, s).await?);
    }
    for p in &file.providers {
        let put = crate::providers::put(&mut tx, secrets, guard, "bootstrap", p).await.map_err(|e| match e {
            AdminError::Db(e) => BootstrapError::Store(e),
            other => BootstrapError::Invalid {
                path: origin.to_string(),
                at: format!("providers[{}]", p.name),
                problem: other.to_string(),
            },
        })?;
        report.count(match put.1 {
            Put::Created => Change::Created,
            Put::Updated => Change::Updated,
            Put::Unchanged => Change::Unchanged,
        });
    }
    for t in &file.teams {
        let Some(&install) = install_ids.get(&t.install) else { continue };
        for change in import_team(&mut tx, install, t).await? {
            report.count(change);
        }
    }
    if report.created + report.updated > 0 {
        let detail = serde_json::to_value(report).unwrap_or_default();
        audit::append(&mut tx, "bootstrap", "bootstrap.import", origin, &detail).await?;
    }
    tx.commit().await?;
    Ok(report)
}

#[derive(sqlx::FromRow)]
struct StoredInstall {
    id: Uuid,
    name: String,
    enabled: bool,
    settings: serde_json::Value,
    secrets: Option<Vec<u8>>,
}

async fn upsert_install(
    tx: &mut Transaction<'_, Postgres>,
    secrets: &SecretBox,
    rec: &InstallRecord,
) -> Result<(Uuid, Change), BootstrapError> {
    let context = format!("install:{}:{}", rec.platform, rec.external_id);
    let plain: BTreeMap<&str, &str> = rec.secrets.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
    let plain = serde_json::to_vec(&plain).unwrap_or_default();
    let row: Option<StoredInstall> = sqlx::query_as(
        "SELECT id, name, enabled, settings, secrets FROM installs WHERE platform = $1 AND external_id = $2",
    )
    .bind(rec.platform)
    .bind(&rec.external_id)
    .fetch_optional(&mut **tx)
    .await?;
    let sealed = secrets.seal(&context, &plain);
    match row {
        Some(StoredInstall { id, name, enabled, settings, secrets: stored }) => {
            let same_secrets = match stored {
                Some(s) => secrets.open(&context, &s)? == plain,
                None => false,
            };
            if same_secrets && name == rec.name && enabled == rec.enabled && settings == rec.settings {
                return Ok((id, Change::Unchanged));
            }
            sqlx::query(
                "UPDATE installs SET name = $2, enabled = $3, settings = $4, secrets = $5, updated_at = now()
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&rec.name)
            .bind(rec.enabled)
            .bind(&rec.settings)
            .bind(&sealed)
            .execute(&mut **tx)
            .await?;
            Ok((id, Change::Updated))
        }
        None => {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO installs (id, platform, external_id, name, enabled, settings, secrets)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(rec.platform)
            .bind(&rec.external_id)
            .bind(&rec.name)
            .bind(rec.enabled)
            .bind(&rec.settings)
            .bind(&sealed)
            .execute(&mut **tx)
            .await?;
            Ok((id, Change::Created))
        }
    }
}

async fn upsert_json(
    tx: &mut Transaction<'_, Postgres>,
    select: &'static str,
    upsert: &'static str,
    key: &str,
    second: &str,
    value: &serde_json::Value,
) -> Result<Change, BootstrapError> {
    let existing: Option<serde_json::Value> = sqlx::query_scalar(select).bind(key).fetch_optional(&mut **tx).await?;
    if existing.as_ref() == Some(value) {
        return Ok(Change::Unchanged);
    }
    sqlx::query(upsert).bind(key).bind(second).bind(value).execute(&mut **tx).await?;
    Ok(if existing.is_some() { Change::Updated } else { Change::Created })
}

async fn replace_policy(
    tx: &mut Transaction<'_, Postgres>,
    file: &BootstrapFile,
    install_ids: &BTreeMap<String, Uuid>,
) -> Result<Change, BootstrapError> {
    let wanted: Vec<(Option<Uuid>, serde_json::Value)> = file
        .policy
        .iter()
        .map(|r| {
            let id = r.install.as_ref().and_then(|n| install_ids.get(n).copied());
            (id, serde_json::to_value(r).unwrap_or_default())
        })
        .collect();
    let current: Vec<(Option<Uuid>, serde_json::Value)> =
        sqlx::query_as("SELECT install_id, rule FROM policy_rules ORDER BY position").fetch_all(&mut **tx).await?;
    if current == wanted || file.policy.is_empty() {
        return Ok(Change::Unchanged);
    }
    sqlx::query("DELETE FROM policy_rules").execute(&mut **tx).await?;
    for (pos, (install, rule)) in wanted.iter().enumerate() {
        sqlx::query("INSERT INTO policy_rules (id, install_id, position, rule) VALUES ($1, $2, $3, $4)")
            .bind(Uuid::now_v7())
            .bind(install)
            .bind(i32::try_from(pos).unwrap_or(i32::MAX))
            .bind(rule)
            .execute(&mut **tx)
            .await?;
    }
    Ok(if current.is_empty() { Change::Created } else { Change::Updated })
}

async fn upsert_subscription(
    tx: &mut Transaction<'_, Postgres>,
    secrets: &SecretBox,
    s: &super::SubscriptionSpec,
) -> Result<Change, BootstrapError> {
    let context = format!("subscription:{}", s.name);
    let plain: Vec<&str> = s.secrets.iter().map(|k| k.expose_secret()).collect();
    let plain = serde_json::to_vec(&plain).unwrap_or_default();
    let row: Option<(String, Vec<String>, Vec<u8>)> =
        sqlx::query_as("SELECT url, event_types, secrets FROM subscriptions WHERE name = $1")
            .bind(&s.name)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some((url, events, stored)) = &row
        && url == &s.url
        && events == &s.events
        && secrets.open(&context, stored)? == plain
    {
        return Ok(Change::Unchanged);
    }
    sqlx::query(
        "INSERT INTO subscriptions (id, name, url, event_types, secrets) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) DO UPDATE SET url = $3, event_types = $4, secrets = $5, updated_at = now()",
    )
    .bind(Uuid::now_v7())
    .bind(&s.name)
    .bind(&s.url)
    .bind(&s.events)
    .bind(secrets.seal(&context, &plain))
    .execute(&mut **tx)
    .await?;
    Ok(if row.is_some() { Change::Updated } else { Change::Created })
}

/// The install's team settings and its listed role grants: created, updated or unchanged each.
async fn import_team(
    tx: &mut Transaction<'_, Postgres>,
    install: Uuid,
    t: &super::TeamSpec,
) -> Result<Vec<Change>, BootstrapError> {
    let mut changes = Vec::new();
    let grants = serde_json::to_value(&t.grants).unwrap_or_default();
    let current: Option<(String, serde_json::Value)> =
        sqlx::query_as("SELECT default_role, grants FROM team_settings WHERE install_id = $1")
            .bind(install)
            .fetch_optional(&mut **tx)
            .await?;
    changes.push(match current {
        Some((r, g)) if r == t.default_role && g == grants => Change::Unchanged,
        before => {
            sqlx::query(
                "INSERT INTO team_settings (install_id, default_role, grants) VALUES ($1, $2, $3)
                 ON CONFLICT (install_id) DO UPDATE SET default_role = $2, grants = $3, updated_at = now()",
            )
            .bind(install)
            .bind(&t.default_role)
            .bind(&grants)
            .execute(&mut **tx)
            .await?;
            if before.is_some() { Change::Updated } else { Change::Created }
        }
    });
    let wide = t.roles.iter().map(|(u, r)| ("", u, r));
    let per_channel = t.channels.iter().flat_map(|(c, m)| m.iter().map(move |(u, r)| (c.as_str(), u, r)));
    for (channel, user, role) in wide.chain(per_channel) {
        let current: Option<String> =
            sqlx::query_scalar("SELECT role FROM role_grants WHERE install_id = $1 AND channel = $2 AND user_id = $3")
                .bind(install)
                .bind(channel)
                .bind(user)
                .fetch_optional(&mut **tx)
                .await?;
        if current.as_deref() == Some(role.as_str()) {
            changes.push(Change::Unchanged);
            continue;
        }
        sqlx::query(
            "INSERT INTO role_grants (install_id, channel, user_id, role) VALUES ($1, $2, $3, $4)
             ON CONFLICT (install_id, channel, user_id) DO UPDATE SET role = $4, updated_at = now()",
        )
        .bind(install)
        .bind(channel)
        .bind(user)
        .bind(role)
        .execute(&mut **tx)
        .await?;
        changes.push(if current.is_some() { Change::Updated } else { Change::Created });
    }
    // The install's Rego policy, compiled when the file was read; as stored already: unchanged.
    if let Some(p) = &t.policy
        && let Some((name, source)) = &p.loaded
    {
        let mode = if p.enforce() { rego::Mode::Enforce } else { rego::Mode::Shadow };
        let policy = rego::Stored { install: Some(install), name, source, mode, fail_open: p.fail_open() };
        let had: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM rego_policies WHERE install_id = $1)")
            .bind(install)
            .fetch_one(&mut **tx)
            .await?;
        changes.push(match rego::store_compiled(tx, "bootstrap", &policy).await? {
            false => Change::Unchanged,
            true if had => Change::Updated,
            true => Change::Created,
        });
    }
    Ok(changes)
}
