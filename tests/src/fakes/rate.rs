//! Rate limiters with exact waits: token buckets (Slack, Telegram) and fixed windows (Discord,
//! whose `X-RateLimit-*` headers describe a window).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A token bucket: up to `burst` requests at once, then one more every `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed back to back.
    pub burst: u32,
    /// The time in which one more request is allowed.
    pub every: Duration,
}

impl Rate {
    /// `per_minute` requests a minute on average, `burst` at once.
    #[must_use]
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self { burst, every: Duration::from_secs(60) / per_minute.max(1) }
    }

    /// `per_second` requests a second on average, `burst` at once.
    #[must_use]
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        Self { burst, every: Duration::from_secs(1) / per_second.max(1) }
    }

    /// A rate no test reaches.
    #[must_use]
    pub fn unlimited() -> Self {
        Self { burst: u32::MAX, every: Duration::from_nanos(1) }
    }
}

/// Token buckets by key.
#[derive(Debug)]
pub(crate) struct Buckets<K> {
    buckets: HashMap<K, (f64, Instant)>,
}

impl<K> Default for Buckets<K> {
    fn default() -> Self {
        Self { buckets: HashMap::new() }
    }
}

impl<K: Hash + Eq> Buckets<K> {
    /// Takes a token for `key` at `rate`, or returns how long until one is available.
    pub(crate) fn take(&mut self, key: K, rate: Rate, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(rate.burst.max(1));
        let every = rate.every.as_secs_f64().max(1e-9);
        let (tokens, last) = self.buckets.entry(key).or_insert((capacity, now));
        let refilled = (*tokens + now.saturating_duration_since(*last).as_secs_f64() / every).min(capacity);
        *last = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            Err(Duration::from_secs_f64((1.0 - refilled) * every))
        }
    }
}

/// A fixed window: `limit` requests, then none until `per` after the window's first request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Requests per window.
    pub limit: u32,
    /// The window's length.
    pub per: Duration,
}

impl Window {
    /// `limit` requests per `per`.
    #[must_use]
    pub const fn new(limit: u32, per: Duration) -> Self {
        Self { limit, per }
    }
}

/// What a fixed window says after a request: Discord's `X-RateLimit-*` values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WindowState {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    pub(crate) reset_after: Duration,
    /// The request was refused.
    pub(crate) limited: bool,
}

/// Fixed windows by key.
#[derive(Debug)]
pub(crate) struct Windows<K> {
    windows: HashMap<K, (Instant, u32)>,
}

impl<K> Default for Windows<K> {
    fn default() -> Self {
        Self { windows: HashMap::new() }
    }
}

impl<K: Hash + Eq> Windows<K> {
    /// Counts a request for `key`, unless the window is full.
    pub(crate) fn take(&mut self, key: K, window: Window, now: Instant) -> WindowState {
        let entry = self.windows.entry(key).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= window.per {
            *entry = (now, 0);
        }
        let limited = entry.1 >= window.limit;
        if !limited {
            entry.1 += 1;
        }
        WindowState {
            limit: window.limit,
            remaining: window.limit.saturating_sub(entry.1),
            reset_after: window.per.saturating_sub(now.saturating_duration_since(entry.0)),
            limited,
        }
    }
}

/// Whole seconds to wait, rounded up (at least 1): Slack's `Retry-After` and Telegram's
/// `retry_after` are integers.
pub(crate) fn ceil_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}
