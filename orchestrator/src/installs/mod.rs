//! Platform installs as the ingress path sees them: found by what a request names (Slack team or app id,
//! Discord application id, Telegram bot path, webhook endpoint), secrets decrypted with the master key, and kept
//! in a short-lived in-memory cache so the hot path does not query the store for every request.
//!
//! Changes in the store (a new install, a disabled one, a rotated secret) are seen within the cache TTL.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cynode_adapters::Platform;
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto::SecretBox;

mod settings;

pub use settings::{InstallSettings, RateLimitOverrides, RateQuota};

/// The most cached lookups (found, unknown and unusable); beyond it expired entries are dropped first, then
/// negative ones, so a flood of requests naming unknown installs cannot grow memory without bound.
const MAX_CACHED: usize = 10_000;
/// The longest external id the store accepts.
const MAX_ID_LEN: usize = 255;
/// The most installs of one platform tried for a Slack request that names no app or team (`url_verification`).
const MAX_CANDIDATES: i64 = 100;

/// An enabled install with its decrypted secrets. `Debug` never shows secret values.
#[derive(Debug)]
pub struct Install {
    /// Row id.
    pub id: Uuid,
    /// Platform.
    pub platform: Platform,
    /// What identifies it in requests.
    pub external_id: String,
    /// Display name.
    pub name: String,
    /// Non-secret settings.
    pub settings: InstallSettings,
    secrets: BTreeMap<String, SecretString>,
}

impl Install {
    /// A secret by name (`signing_secret`, `bot_token`, `secret_token`, `secret_0`, …).
    pub fn secret(&self, name: &str) -> Option<&SecretString> {
        self.secrets.get(name)
    }

    /// The webhook secrets `secret_0`, `secret_1`, … in order (several during a rotation).
    pub fn webhook_secrets(&self) -> Vec<&SecretString> {
        (0..).map_while(|i| self.secrets.get(&format!("secret_{i}"))).collect()
    }
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// An enabled, usable install.
    Found(Arc<Install>),
    /// No such install.
    Unknown,
    /// The install exists but is disabled.
    Disabled,
}

/// Why a lookup failed. The gateway refuses the request either way; neither message contains a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InstallError {
    /// The store could not be queried.
    #[error("install lookup failed: {0}")]
    Store(String),
    /// The install's stored secrets or settings cannot be used (wrong master key, altered data).
    #[error("install {platform} `{external_id}` is unusable: {problem}")]
    Unusable {
        /// Platform.
        platform: Platform,
        /// External id.
        external_id: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Clone)]
enum Cached {
    Found(Arc<Install>),
    Unknown,
    Disabled,
    Unusable(InstallError),
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    External(Platform, String),
    SlackApp(String),
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    external_id: String,
    name: String,
    enabled: bool,
    settings: serde_json::Value,
    secrets: Option<Vec<u8>>,
}

/// Enabled installs of one platform, shared.
pub type Candidates = Arc<[Arc<Install>]>;

const BY_EXTERNAL_ID: &str = "SELECT id, external_id, name, enabled, settings, secrets FROM installs
     WHERE platform = $1 AND external_id = $2";
const BY_SLACK_APP: &str = "SELECT id, external_id, name, enabled, settings, secrets FROM installs
     WHERE platform = 'slack' AND settings->>'api_app_id' = $1 ORDER BY enabled DESC, created_at LIMIT 1";
const ENABLED: &str = "SELECT id, external_id, name, enabled, settings, secrets FROM installs
     WHERE platform = $1 AND enabled ORDER BY created_at LIMIT $2";

/// Install lookups with a TTL cache. One per process; cheap to share behind an `Arc`.
pub struct Installs {
    pool: PgPool,
    secrets: SecretBox,
    ttl: Duration,
    cache: RwLock<HashMap<Key, (Instant, Cached)>>,
    candidates: RwLock<HashMap<Platform, (Instant, Candidates)>>,
}

impl std::fmt::Debug for Installs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installs").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Installs {
    /// Lookups over `pool`, decrypting with `secrets`, caching each answer for `ttl`.
    pub fn new(pool: PgPool, secrets: SecretBox, ttl: Duration) -> Self {
        Self { pool, secrets, ttl, cache: RwLock::default(), candidates: RwLock::default() }
    }

    /// The install of `platform` whose external id is `external_id`.
    ///
    /// # Errors
    /// [`InstallError`] when the store fails or the install's secrets cannot be decrypted.
    pub async fn find(&self, platform: Platform, external_id: &str) -> Result<Lookup, InstallError> {
        if !plausible(external_id) {
            return Ok(Lookup::Unknown);
        }
        let key = Key::External(platform, external_id.to_string());
        if let Some(hit) = self.cached(&key) {
            return hit;
        }
        let row: Option<Row> = sqlx::query_as(BY_EXTERNAL_ID)
            .bind(platform.as_str())
            .bind(external_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| InstallError::Store(e.to_string()))?;
        self.remember(key, self.resolve(platform, row))
    }

    /// The Slack install of workspace `team_id`, else the install whose `api_app_id` is `app_id` (one app, one
    /// signing secret, for workspaces not configured one by one).
    ///
    /// # Errors
    /// As [`Installs::find`].
    pub async fn find_slack(&self, team_id: Option<&str>, app_id: Option<&str>) -> Result<Lookup, InstallError> {
        if let Some(team) = team_id {
            match self.find(Platform::Slack, team).await? {
                Lookup::Unknown => {}
                found => return Ok(found),
            }
        }
        let Some(app) = app_id.filter(|a| plausible(a)) else { return Ok(Lookup::Unknown) };
        let key = Key::SlackApp(app.to_string());
        if let Some(hit) = self.cached(&key) {
            return hit;
        }
        let row: Option<Row> = sqlx::query_as(BY_SLACK_APP)
            .bind(app)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| InstallError::Store(e.to_string()))?;
        self.remember(key, self.resolve(Platform::Slack, row))
    }

    /// Every enabled, usable install of `platform` (at most 100), for requests that name none (Slack's
    /// `url_verification` handshake carries neither team nor app id). Unusable installs are skipped.
    ///
    /// # Errors
    /// [`InstallError::Store`].
    pub async fn enabled(&self, platform: Platform) -> Result<Candidates, InstallError> {
        if let Ok(map) = self.candidates.read()
            && let Some((at, list)) = map.get(&platform)
            && at.elapsed() < self.ttl
        {
            return Ok(list.clone());
        }
        let rows: Vec<Row> = sqlx::query_as(ENABLED)
            .bind(platform.as_str())
            .bind(MAX_CANDIDATES)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| InstallError::Store(e.to_string()))?;
        let list: Candidates = rows
            .into_iter()
            .filter_map(|r| match self.resolve(platform, Some(r)) {
                Cached::Found(i) => Some(i),
                _ => None,
            })
            .collect();
        if let Ok(mut map) = self.candidates.write() {
            map.insert(platform, (Instant::now(), list.clone()));
        }
        Ok(list)
    }

    /// Drops every cached answer (after an import, or in tests).
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.write() {
            c.clear();
        }
        if let Ok(mut c) = self.candidates.write() {
            c.clear();
        }
    }

    fn cached(&self, key: &Key) -> Option<Result<Lookup, InstallError>> {
        let map = self.cache.read().ok()?;
        let (at, entry) = map.get(key)?;
        (at.elapsed() < self.ttl).then(|| answer(entry.clone()))
    }

    fn remember(&self, key: Key, entry: Cached) -> Result<Lookup, InstallError> {
        if let Ok(mut map) = self.cache.write() {
            if map.len() >= MAX_CACHED {
                let ttl = self.ttl;
                map.retain(|_, (at, _)| at.elapsed() < ttl);
                if map.len() >= MAX_CACHED {
                    map.retain(|_, (_, e)| matches!(e, Cached::Found(_)));
                }
                if map.len() >= MAX_CACHED {
                    map.clear();
                }
            }
            map.insert(key, (Instant::now(), entry.clone()));
        }
        answer(entry)
    }

    fn resolve(&self, platform: Platform, row: Option<Row>) -> Cached {
        let Some(row) = row else { return Cached::Unknown };
        if !row.enabled {
            return Cached::Disabled;
        }
        let unusable = |problem: &str| {
            Cached::Unusable(InstallError::Unusable {
                platform,
                external_id: row.external_id.clone(),
                problem: problem.to_string(),
            })
        };
        let Ok(settings) = serde_json::from_value::<InstallSettings>(row.settings.clone()) else {
            return unusable("its settings are malformed");
        };
        let context = format!("install:{}:{}", platform.as_str(), row.external_id);
        let secrets = match &row.secrets {
            Some(sealed) => match self.secrets.open(&context, sealed) {
                Ok(plain) => match serde_json::from_slice::<BTreeMap<String, String>>(&plain) {
                    Ok(map) => map.into_iter().map(|(k, v)| (k, SecretString::from(v))).collect(),
                    Err(_) => return unusable("its stored secrets are malformed"),
                },
                Err(_) => {
                    return unusable("its stored secrets cannot be decrypted (wrong master key, or altered data)");
                }
            },
            None => BTreeMap::new(),
        };
        Cached::Found(Arc::new(Install {
            id: row.id,
            platform,
            external_id: row.external_id,
            name: row.name,
            settings,
            secrets,
        }))
    }
}

/// Whether an id taken from a request could name an install (the store holds 1 to 255 characters). Longer ones
/// are unknown without a query, and are never cached, so request-controlled strings cannot fill memory.
fn plausible(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
}

fn answer(entry: Cached) -> Result<Lookup, InstallError> {
    match entry {
        Cached::Found(i) => Ok(Lookup::Found(i)),
        Cached::Unknown => Ok(Lookup::Unknown),
        Cached::Disabled => Ok(Lookup::Disabled),
        Cached::Unusable(e) => Err(e),
    }
}

/// Whether an install with this id exists (enabled or not).
///
/// # Errors
/// Store failures.
pub async fn exists(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM installs WHERE id = $1)").bind(id).fetch_one(conn).await
}
