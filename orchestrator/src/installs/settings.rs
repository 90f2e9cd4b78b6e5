//! The non-secret settings of an install, including its rate limit overrides.

use serde::{Deserialize, Serialize};

/// A sustained rate with bursts: `per_minute` requests a minute on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateQuota {
    /// Requests per minute, sustained (at least 1).
    pub per_minute: u32,
    /// Requests allowed at once after a quiet period (at least 1).
    pub burst: u32,
}

/// Per-install overrides of the configured rate limits, stored as `settings.rate_limits` (set with
/// `rate_limits:` on an install in the bootstrap file). Absent fields keep the configured default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitOverrides {
    /// All requests of the install (for webhooks: of the endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<RateQuota>,
    /// Requests of one user of the install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<RateQuota>,
    /// Requests in one channel of the install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<RateQuota>,
}

impl RateLimitOverrides {
    /// Checks every quota is usable.
    ///
    /// # Errors
    /// A message naming the quota that has a zero field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, q) in [("install", self.install), ("user", self.user), ("channel", self.channel)] {
            if q.is_some_and(|q| q.per_minute == 0 || q.burst == 0) {
                return Err(format!("rate_limits.{name}: per_minute and burst must be at least 1"));
            }
        }
        Ok(())
    }
}

/// The non-secret settings of an install (the `settings` column). Which fields are set depends on the
/// platform; unknown keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct InstallSettings {
    /// Slack app id (`A…`); when set, requests naming another app are refused.
    #[serde(default)]
    pub api_app_id: Option<String>,
    /// Discord application public key (64 hex characters).
    #[serde(default)]
    pub public_key: Option<String>,
    /// Telegram bot username.
    #[serde(default)]
    pub username: Option<String>,
    /// Webhook scheme: `github`, `standard` or `hmac`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Webhook signature header for the `hmac` scheme.
    #[serde(default)]
    pub header: Option<String>,
    /// Platform API base URL override.
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Rate limit overrides.
    #[serde(default)]
    pub rate_limits: Option<RateLimitOverrides>,
}
