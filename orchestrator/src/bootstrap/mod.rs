//! The bootstrap file: a YAML document that seeds installs (with their secrets and API base URLs), node keys,
//! sandbox templates, approval policy and webhook subscriptions. Import is idempotent; afterwards PostgreSQL is
//! the source of truth. The format is documented in `docs/configuration.md`.

mod import;
mod team;

use std::collections::BTreeMap;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use import::{ImportReport, import, import_with};
pub use team::{TeamPolicySpec, TeamSpec};

use crate::installs::RateLimitOverrides;
use crate::usage::UsageOverrides;

/// Errors reading or validating a bootstrap file. Messages name the file, the place and the fix; they never
/// contain a secret value.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The file cannot be read.
    #[error("cannot read bootstrap file {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        cause: String,
    },
    /// The file is not valid YAML or does not match the schema.
    #[error("bootstrap file {path}: {cause}")]
    Parse {
        /// The file.
        path: String,
        /// Where and what (line and column when known).
        cause: String,
    },
    /// A value is well-formed YAML but not acceptable.
    #[error("bootstrap file {path}: {at}: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// Which entry.
        at: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// Writing to the store failed.
    #[error("importing the bootstrap file failed: {0}")]
    Store(#[from] sqlx::Error),
    /// A stored secret could not be decrypted for comparison.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapFile {
    /// Platform installs.
    #[serde(default)]
    pub installs: Vec<InstallSpec>,
    /// Pre-shared keys that node agents register with.
    #[serde(default)]
    pub node_keys: Vec<NodeKeySpec>,
    /// Sandbox templates.
    #[serde(default)]
    pub templates: Vec<TemplateSpec>,
    /// Approval policy rules, evaluated in order.
    #[serde(default)]
    pub policy: Vec<PolicyRuleSpec>,
    /// Outbound webhook subscriptions.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionSpec>,
    /// External OpenAI-compatible model providers (see [`crate::providers`]).
    #[serde(default)]
    pub providers: Vec<crate::providers::ProviderSpec>,
    /// Team mode: roles per install (default role, grants, per-user and per-channel roles).
    #[serde(default)]
    pub teams: Vec<TeamSpec>,
}

/// One platform install.
#[derive(Debug, Deserialize)]
#[serde(tag = "platform", rename_all = "lowercase", deny_unknown_fields)]
pub enum InstallSpec {
    /// A Slack app in one workspace.
    Slack {
        /// Display name.
        name: String,
        /// Workspace (team) id, `T…`.
        team_id: String,
        /// App id, `A…` (optional, checked when present).
        #[serde(default)]
        api_app_id: Option<String>,
        /// Signing secret from the app's Basic Information page.
        signing_secret: SecretString,
        /// Bot token, `xoxb-…`.
        bot_token: SecretString,
        /// Web API base (default `https://slack.com/api`); tests point it at a fake.
        #[serde(default)]
        api_base_url: Option<String>,
        /// Disabled installs answer 401 to every request.
        #[serde(default = "yes")]
        enabled: bool,
        /// Overrides of the configured rate limits for this install (`install`, `user`, `channel`, each
        /// `{ per_minute, burst }`).
        #[serde(default)]
        rate_limits: Option<RateLimitOverrides>,
        /// Overrides of the configured daily token budgets for this install (`daily_tokens`,
        /// `daily_tokens_per_requester`; 0 = unlimited).
        #[serde(default)]
        usage: Option<UsageOverrides>,
    },
    /// A Discord application (interactions over HTTP).
    Discord {
        /// Display name.
        name: String,
        /// Application id.
        application_id: String,
        /// Ed25519 public key, 64 hex characters.
        public_key: String,
        /// Bot token.
        bot_token: SecretString,
        /// API base (default `https://discord.com/api/v10`).
        #[serde(default)]
        api_base_url: Option<String>,
        /// Disabled installs answer 401 to every request.
        #[serde(default = "yes")]
        enabled: bool,
        /// Overrides of the configured rate limits for this install (`install`, `user`, `channel`, each
        /// `{ per_minute, burst }`).
        #[serde(default)]
        rate_limits: Option<RateLimitOverrides>,
        /// Overrides of the configured daily token budgets for this install (`daily_tokens`,
        /// `daily_tokens_per_requester`; 0 = unlimited).
        #[serde(default)]
        usage: Option<UsageOverrides>,
    },
    /// A Telegram bot with a webhook at `/telegram/{bot}`.
    Telegram {
        /// Display name.
        name: String,
        /// The path segment of the webhook URL.
        bot: String,
        /// The bot's @username, to recognise mentions.
        username: String,
        /// Bot API token.
        bot_token: SecretString,
        /// The `secret_token` given to `setWebhook` (1–256 of `A-Za-z0-9_-`).
        secret_token: SecretString,
        /// Bot API base (default `https://api.telegram.org`).
        #[serde(default)]
        api_base_url: Option<String>,
        /// Disabled installs answer 401 to every request.
        #[serde(default = "yes")]
        enabled: bool,
        /// Overrides of the configured rate limits for this install (`install`, `user`, `channel`, each
        /// `{ per_minute, burst }`).
        #[serde(default)]
        rate_limits: Option<RateLimitOverrides>,
        /// Overrides of the configured daily token budgets for this install (`daily_tokens`,
        /// `daily_tokens_per_requester`; 0 = unlimited).
        #[serde(default)]
        usage: Option<UsageOverrides>,
    },
    /// A generic inbound webhook endpoint at `/hooks/{endpoint}`.
    Webhook {
        /// Display name.
        name: String,
        /// The path segment of the endpoint URL.
        endpoint: String,
        /// `github`, `standard` (Standard Webhooks) or `hmac`.
        scheme: String,
        /// Secrets; several for rotation. Standard Webhooks secrets are `whsec_<base64>`.
        secrets: Vec<SecretString>,
        /// Header carrying the signature for the `hmac` scheme.
        #[serde(default)]
        header: Option<String>,
        /// Disabled installs answer 401 to every request.
        #[serde(default = "yes")]
        enabled: bool,
        /// Overrides of the configured rate limits for this install (`install`, `user`, `channel`, each
        /// `{ per_minute, burst }`).
        #[serde(default)]
        rate_limits: Option<RateLimitOverrides>,
        /// Overrides of the configured daily token budgets for this install (`daily_tokens`,
        /// `daily_tokens_per_requester`; 0 = unlimited).
        #[serde(default)]
        usage: Option<UsageOverrides>,
    },
}

/// A node pre-shared key and what nodes using it may offer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeKeySpec {
    /// Unique name.
    pub name: String,
    /// The key (at least 24 characters).
    pub key: SecretString,
    /// Executors nodes with this key may run (default: docker).
    #[serde(default = "default_executors")]
    pub executors: Vec<String>,
}

/// A sandbox template.
#[derive(Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// Template name used in `run --template NAME`.
    pub name: String,
    /// Image (must exist locally on nodes; only template images may run).
    pub image: String,
    /// Whether the sandbox gets network access.
    #[serde(default)]
    pub network: bool,
    /// Memory limit in MiB.
    #[serde(default = "default_memory")]
    pub memory_mb: u64,
    /// CPU limit in cores.
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    /// Process limit.
    #[serde(default = "default_pids")]
    pub pids: u64,
    /// Wall-clock timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// Output cap in KiB.
    #[serde(default = "default_output")]
    pub max_output_kb: u64,
    /// Environment variable names a job may set.
    #[serde(default)]
    pub env_allowlist: Vec<String>,
    /// Whether jobs get GPUs.
    #[serde(default)]
    pub gpu: bool,
}

/// One approval rule: when a job matches `when`, it needs approval by one of `approvers`.
#[derive(Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyRuleSpec {
    /// Install name the rule applies to (default: all installs).
    #[serde(default)]
    pub install: Option<String>,
    /// Conditions, all of which must hold.
    #[serde(default)]
    pub when: PolicyMatch,
    /// Whether a matching job waits for approval.
    #[serde(default = "yes")]
    pub require_approval: bool,
    /// Platform user ids allowed to approve.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// How many distinct approvers must approve (N of M; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<u32>,
    /// Whether a requester who is an approver may approve their own job (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requester_may_approve: bool,
}

/// Conditions of a policy rule; absent fields match anything.
#[derive(Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyMatch {
    /// Template names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Vec<String>>,
    /// Jobs with network access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
    /// Jobs that use a GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<bool>,
    /// Requesting user ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<Vec<String>>,
}

/// An outbound webhook subscription.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// Unique name.
    pub name: String,
    /// Receiver URL (http or https).
    pub url: String,
    /// Event types, e.g. `job.finished`; empty means all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Signing secrets `whsec_…`; the first signs, all are sent during rotation.
    pub secrets: Vec<SecretString>,
}

fn yes() -> bool {
    true
}
fn default_executors() -> Vec<String> {
    vec!["docker".into()]
}
fn default_memory() -> u64 {
    256
}
fn default_cpus() -> f64 {
    1.0
}
fn default_pids() -> u64 {
    128
}
fn default_timeout() -> u64 {
    300
}
fn default_output() -> u64 {
    1024
}

/// The neutral form of an install that the store keeps: non-secret settings and secret values apart.
#[derive(Debug)]
pub struct InstallRecord {
    /// `slack`, `discord`, `telegram` or `webhook`.
    pub platform: &'static str,
    /// What identifies the install in requests.
    pub external_id: String,
    /// Display name.
    pub name: String,
    /// Enabled or not.
    pub enabled: bool,
    /// Non-secret settings (stored as JSON).
    pub settings: serde_json::Value,
    /// Secret values (stored encrypted).
    pub secrets: BTreeMap<String, SecretString>,
}

impl BootstrapFile {
    /// Reads and validates a file.
    ///
    /// # Errors
    /// [`BootstrapError`] naming the file, place and problem.
    pub fn load(path: &Path) -> Result<Self, BootstrapError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| BootstrapError::Read { path: shown.clone(), cause: e.to_string() })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates YAML text; `origin` names it in errors.
    ///
    /// # Errors
    /// [`BootstrapError::Parse`] or [`BootstrapError::Invalid`].
    pub fn parse(text: &str, origin: &str) -> Result<Self, BootstrapError> {
        let mut file: Self = if text.trim().is_empty() {
            Self::default()
        } else {
            serde_yaml::from_str(text)
                .map_err(|e| BootstrapError::Parse { path: origin.to_string(), cause: e.to_string() })?
        };
        file.validate(origin)?;
        file.load_policies(origin)?;
        Ok(file)
    }

    fn validate(&self, origin: &str) -> Result<(), BootstrapError> {
        let invalid = |at: String, problem: &str| BootstrapError::Invalid {
            path: origin.to_string(),
            at,
            problem: problem.to_string(),
        };
        let mut seen = std::collections::HashSet::new();
        for (i, spec) in self.installs.iter().enumerate() {
            let rec = spec.record();
            let at = format!("installs[{i}] ({} `{}`)", rec.platform, rec.external_id);
            if !seen.insert((rec.platform, rec.external_id.clone())) {
                return Err(invalid(at, "appears twice"));
            }
            validate_install(spec, &rec).map_err(|p| invalid(at, &p))?;
        }
        for (i, k) in self.node_keys.iter().enumerate() {
            if k.key.expose_secret().len() < 24 {
                return Err(invalid(format!("node_keys[{i}] (`{}`)", k.name), "key must be at least 24 characters"));
            }
            if let Some(e) = k.executors.iter().find(|e| !["docker", "inference", "host"].contains(&e.as_str())) {
                return Err(invalid(
                    format!("node_keys[{i}] (`{}`)", k.name),
                    &format!("unknown executor `{e}` (expected docker, inference or host)"),
                ));
            }
        }
        for (i, t) in self.templates.iter().enumerate() {
            if t.name.is_empty() || t.image.is_empty() || t.memory_mb == 0 || t.cpus <= 0.0 || t.timeout_s == 0 {
                return Err(invalid(
                    format!("templates[{i}] (`{}`)", t.name),
                    "name and image are required; memory_mb, cpus and timeout_s must be positive",
                ));
            }
        }
        let names: Vec<&str> = self.installs.iter().map(|s| s.name()).collect();
        for (i, r) in self.policy.iter().enumerate() {
            if let Some(inst) = &r.install
                && !names.contains(&inst.as_str())
            {
                return Err(invalid(format!("policy[{i}]"), &format!("no install named `{inst}` in this file")));
            }
            if let Some(n) = r.approvals
                && (n == 0 || (!r.approvers.is_empty() && n as usize > r.approvers.len()))
            {
                return Err(invalid(
                    format!("policy[{i}]"),
                    &format!("approvals must be between 1 and the number of approvers ({})", r.approvers.len()),
                ));
            }
        }
        for (i, t) in self.teams.iter().enumerate() {
            let at = format!("teams[{i}] (`{}`)", t.install);
            if !names.contains(&t.install.as_str()) {
                return Err(invalid(at, &format!("no install named `{}` in this file", t.install)));
            }
            let mut roles = t.roles.values().chain(t.channels.values().flat_map(BTreeMap::values));
            if let Some(bad) = roles.find(|r| crate::team::TeamRole::parse(r).is_none()) {
                return Err(invalid(at, &format!("`{bad}` is not a role (admin, approver, member, viewer, none)")));
            }
            crate::team::check_settings(&t.default_role, &t.grants).map_err(|p| invalid(at, &p))?;
        }
        for (i, s) in self.subscriptions.iter().enumerate() {
            let at = format!("subscriptions[{i}] (`{}`)", s.name);
            check_url(&s.url).map_err(|p| invalid(at.clone(), &p))?;
            if s.secrets.is_empty() || s.secrets.iter().any(|k| !is_whsec(k.expose_secret())) {
                return Err(invalid(at, "secrets must be one or more `whsec_<base64 of 24–64 bytes>` values"));
            }
        }
        Ok(())
    }
}

fn validate_install(spec: &InstallSpec, rec: &InstallRecord) -> Result<(), String> {
    if rec.external_id.is_empty() || rec.name.is_empty() {
        return Err("name and id must not be empty".into());
    }
    if let Some(url) = rec.settings.get("api_base_url").and_then(|v| v.as_str()) {
        check_url(url)?;
    }
    if let Some(limits) = spec.rate_limits() {
        limits.validate()?;
    }
    match spec {
        InstallSpec::Discord { public_key, .. } => {
            if public_key.len() != 64 || hex::decode(public_key).is_err() {
                return Err("public_key must be the application's Ed25519 public key: 64 hex characters".into());
            }
        }
        InstallSpec::Telegram { secret_token, .. } => {
            let t = secret_token.expose_secret();
            if t.is_empty() || t.len() > 256 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err("secret_token must be 1–256 characters of A-Z a-z 0-9 _ -".into());
            }
        }
        InstallSpec::Webhook { scheme, secrets, header, .. } => {
            if secrets.is_empty() {
                return Err("at least one secret is required".into());
            }
            match scheme.as_str() {
                "github" => {}
                "standard" if secrets.iter().all(|s| is_whsec(s.expose_secret())) => {}
                "standard" => return Err("standard webhook secrets must be `whsec_<base64>`".into()),
                "hmac" if header.is_some() => {}
                "hmac" => return Err("the hmac scheme needs `header` (the header carrying the signature)".into()),
                other => return Err(format!("unknown scheme `{other}` (expected github, standard or hmac)")),
            }
        }
        InstallSpec::Slack { .. } => {}
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(format!("`{url}` is not an http(s) URL")),
    }
}

fn is_whsec(s: &str) -> bool {
    use base64::Engine as _;
    s.strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .is_some_and(|k| (24..=64).contains(&k.len()))
}

impl InstallSpec {
    /// The display name.
    pub fn name(&self) -> &str {
        match self {
            Self::Slack { name, .. }
            | Self::Discord { name, .. }
            | Self::Telegram { name, .. }
            | Self::Webhook { name, .. } => name,
        }
    }

    /// The rate limit overrides, if any.
    pub fn rate_limits(&self) -> Option<&RateLimitOverrides> {
        match self {
            Self::Slack { rate_limits, .. }
            | Self::Discord { rate_limits, .. }
            | Self::Telegram { rate_limits, .. }
            | Self::Webhook { rate_limits, .. } => rate_limits.as_ref(),
        }
    }

    /// The daily token budget overrides, if any.
    pub fn usage(&self) -> Option<&UsageOverrides> {
        match self {
            Self::Slack { usage, .. }
            | Self::Discord { usage, .. }
            | Self::Telegram { usage, .. }
            | Self::Webhook { usage, .. } => usage.as_ref(),
        }
    }

    /// Splits the spec into stored settings and secrets.
    pub fn record(&self) -> InstallRecord {
        use serde_json::json;
        let mut secrets = BTreeMap::new();
        let (platform, external_id, name, enabled, mut settings) = match self {
            Self::Slack { name, team_id, api_app_id, signing_secret, bot_token, api_base_url, enabled, .. } => {
                secrets.insert("signing_secret".into(), signing_secret.clone());
                secrets.insert("bot_token".into(), bot_token.clone());
                ("slack", team_id, name, enabled, json!({"api_app_id": api_app_id, "api_base_url": api_base_url}))
            }
            Self::Discord { name, application_id, public_key, bot_token, api_base_url, enabled, .. } => {
                secrets.insert("bot_token".into(), bot_token.clone());
                (
                    "discord",
                    application_id,
                    name,
                    enabled,
                    json!({"public_key": public_key, "api_base_url": api_base_url}),
                )
            }
            Self::Telegram { name, bot, username, bot_token, secret_token, api_base_url, enabled, .. } => {
                secrets.insert("bot_token".into(), bot_token.clone());
                secrets.insert("secret_token".into(), secret_token.clone());
                ("telegram", bot, name, enabled, json!({"username": username, "api_base_url": api_base_url}))
            }
            Self::Webhook { name, endpoint, scheme, secrets: s, header, enabled, .. } => {
                for (i, v) in s.iter().enumerate() {
                    secrets.insert(format!("secret_{i}"), v.clone());
                }
                ("webhook", endpoint, name, enabled, json!({"scheme": scheme, "header": header}))
            }
        };
        // Only present when set, so installs without overrides keep the settings they always had.
        if let (Some(limits), Some(map)) = (self.rate_limits(), settings.as_object_mut()) {
            map.insert("rate_limits".into(), serde_json::to_value(limits).unwrap_or_default());
        }
        if let (Some(usage), Some(map)) = (self.usage(), settings.as_object_mut()) {
            map.insert("usage".into(), serde_json::to_value(usage).unwrap_or_default());
        }
        InstallRecord {
            platform,
            external_id: external_id.clone(),
            name: name.clone(),
            enabled: *enabled,
            settings,
            secrets,
        }
    }
}
