//! Admission: keyed rate limits (governor) per install, per user and per channel, with per-install overrides
//! from the install's `settings.rate_limits`, and at most one "slow down" notice per user per window.
//!
//! Limits are per replica: with N replicas behind a load balancer, an install may reach N times its limit.
//! Keys of quiet users and channels are evicted by [`RateLimits::retain_recent`], which the server calls
//! periodically, so memory stays bounded by the number of recently active keys.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cynode_orchestrator::installs::{RateLimitOverrides, RateQuota};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

/// The default limits (configuration `limits.rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateSettings {
    /// All requests of one install (for webhooks: of one endpoint).
    pub install: RateQuota,
    /// Requests of one user of an install (chat platforms).
    pub user: RateQuota,
    /// Requests in one channel of an install (chat platforms).
    pub channel: RateQuota,
    /// At most one "slow down" notice per user per this window.
    pub notice_window: Duration,
}

impl Default for RateSettings {
    fn default() -> Self {
        Self {
            install: RateQuota { per_minute: 6000, burst: 300 },
            user: RateQuota { per_minute: 30, burst: 10 },
            channel: RateQuota { per_minute: 120, burst: 30 },
            notice_window: Duration::from_secs(60),
        }
    }
}

/// Which limit a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The install's (or webhook endpoint's) limit.
    Install,
    /// The user's limit.
    User,
    /// The channel's limit.
    Channel,
}

impl Scope {
    /// Label for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::User => "user",
            Self::Channel => "channel",
        }
    }
}

/// Who sent a request, as far as limits care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who<'a> {
    /// A chat user in a channel.
    Chat {
        /// The platform's user id.
        user: &'a str,
        /// The channel id.
        channel: &'a str,
    },
    /// A webhook delivery (only the endpoint's limit applies).
    Webhook,
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within every limit.
    Admitted,
    /// Over a limit.
    Limited {
        /// The limit hit.
        scope: Scope,
        /// How long until the request would be admitted.
        retry_after: Duration,
        /// Whether this user should get a "slow down" notice (the first time in the window).
        notify: bool,
    },
}

type UserKey = (Uuid, Box<str>);

struct Limiters {
    install: DefaultKeyedRateLimiter<Uuid>,
    user: DefaultKeyedRateLimiter<UserKey>,
    channel: DefaultKeyedRateLimiter<UserKey>,
}

impl Limiters {
    fn new(settings: &RateSettings, overrides: &RateLimitOverrides) -> Self {
        Self {
            install: RateLimiter::keyed(quota(overrides.install.unwrap_or(settings.install))),
            user: RateLimiter::keyed(quota(overrides.user.unwrap_or(settings.user))),
            channel: RateLimiter::keyed(quota(overrides.channel.unwrap_or(settings.channel))),
        }
    }

    fn retain_recent(&self) {
        self.install.retain_recent();
        self.user.retain_recent();
        self.channel.retain_recent();
        self.install.shrink_to_fit();
        self.user.shrink_to_fit();
        self.channel.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.install.len() + self.user.len() + self.channel.len()
    }
}

fn quota(q: RateQuota) -> Quota {
    let per_minute = NonZeroU32::new(q.per_minute).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(q.burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(per_minute).allow_burst(burst)
}

/// The rate limits of every install. One per process.
pub struct RateLimits {
    settings: RateSettings,
    defaults: Arc<Limiters>,
    custom: Mutex<HashMap<Uuid, (RateLimitOverrides, Arc<Limiters>)>>,
    notices: DefaultKeyedRateLimiter<UserKey>,
    clock: DefaultClock,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Limits with these defaults.
    pub fn new(settings: RateSettings) -> Self {
        let window = settings.notice_window.max(Duration::from_millis(1));
        let notice_quota = Quota::with_period(window).unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN));
        Self {
            defaults: Arc::new(Limiters::new(&settings, &RateLimitOverrides::default())),
            custom: Mutex::new(HashMap::new()),
            notices: RateLimiter::keyed(notice_quota),
            clock: DefaultClock::default(),
            settings,
        }
    }

    /// Checks one request to `install` (with its `overrides`, if any). A chat request is checked against the
    /// user, channel and install limits, in that order; a webhook delivery only against the install's. An
    /// admitted request uses one cell of each limit it was checked against.
    pub fn check(&self, install: Uuid, overrides: Option<RateLimitOverrides>, who: Who<'_>) -> Admission {
        let limiters = self.limiters(install, overrides);
        let key = |s: &str| (install, Box::<str>::from(s));
        let verdict = match who {
            Who::Chat { user, channel } => limiters
                .user
                .check_key(&key(user))
                .map_err(|n| (Scope::User, n))
                .and_then(|()| limiters.channel.check_key(&key(channel)).map_err(|n| (Scope::Channel, n)))
                .and_then(|()| limiters.install.check_key(&install).map_err(|n| (Scope::Install, n))),
            Who::Webhook => limiters.install.check_key(&install).map_err(|n| (Scope::Install, n)),
        };
        match verdict {
            Ok(()) => Admission::Admitted,
            Err((scope, not_until)) => Admission::Limited {
                scope,
                retry_after: not_until.wait_time_from(self.clock.now()),
                notify: match who {
                    Who::Chat { user, .. } => self.notices.check_key(&key(user)).is_ok(),
                    Who::Webhook => false,
                },
            },
        }
    }

    /// Forgets keys whose limits are fully replenished (idle users, channels, installs), and releases memory.
    pub fn retain_recent(&self) {
        self.defaults.retain_recent();
        self.notices.retain_recent();
        self.notices.shrink_to_fit();
        if let Ok(custom) = self.custom.lock() {
            for (_, limiters) in custom.values() {
                limiters.retain_recent();
            }
        }
    }

    /// How many keys are held (for tests and debugging).
    pub fn keys(&self) -> usize {
        let custom: usize = self.custom.lock().map_or(0, |c| c.values().map(|(_, l)| l.len()).sum());
        self.defaults.len() + self.notices.len() + custom
    }

    fn limiters(&self, install: Uuid, overrides: Option<RateLimitOverrides>) -> Arc<Limiters> {
        let Some(overrides) = overrides.filter(|o| *o != RateLimitOverrides::default()) else {
            return self.defaults.clone();
        };
        let Ok(mut custom) = self.custom.lock() else { return self.defaults.clone() };
        match custom.get(&install) {
            Some((o, limiters)) if *o == overrides => limiters.clone(),
            // New or changed overrides: start afresh with the new quotas.
            _ => {
                let limiters = Arc::new(Limiters::new(&self.settings, &overrides));
                custom.insert(install, (overrides, limiters.clone()));
                limiters
            }
        }
    }
}

/// Whole seconds to wait, rounded up and at least 1 (for `Retry-After` and the notice text).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The "slow down" notice delivered to a user over their limit.
pub fn notice_text(wait: Duration) -> String {
    format!("You're sending requests too fast; try again in {} s.", retry_after_secs(wait))
}

#[cfg(test)]
mod tests;
