use std::time::Duration;

use cynode_orchestrator::installs::{RateLimitOverrides, RateQuota};
use uuid::Uuid;

use super::{Admission, RateLimits, RateSettings, Scope, Who, notice_text, retry_after_secs};

fn tight() -> RateSettings {
    RateSettings {
        install: RateQuota { per_minute: 60, burst: 5 },
        user: RateQuota { per_minute: 1, burst: 2 },
        channel: RateQuota { per_minute: 1, burst: 3 },
        notice_window: Duration::from_secs(60),
    }
}

fn chat<'a>(user: &'a str, channel: &'a str) -> Who<'a> {
    Who::Chat { user, channel }
}

#[test]
fn users_are_limited_first_and_notified_once_per_window() {
    let limits = RateLimits::new(tight());
    let install = Uuid::now_v7();
    assert_eq!(limits.check(install, None, chat("U1", "C1")), Admission::Admitted);
    assert_eq!(limits.check(install, None, chat("U1", "C1")), Admission::Admitted);
    let Admission::Limited { scope, retry_after, notify } = limits.check(install, None, chat("U1", "C1")) else {
        panic!("third request of U1 is over the user limit");
    };
    assert_eq!((scope, notify), (Scope::User, true));
    assert!(retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60), "{retry_after:?}");
    let again = limits.check(install, None, chat("U1", "C1"));
    assert!(matches!(again, Admission::Limited { scope: Scope::User, notify: false, .. }), "{again:?}");
    // Another user in the same channel still has the channel's last cell.
    assert_eq!(limits.check(install, None, chat("U2", "C1")), Admission::Admitted);
    let ch = limits.check(install, None, chat("U3", "C1"));
    assert!(matches!(ch, Admission::Limited { scope: Scope::Channel, notify: true, .. }), "{ch:?}");
    // Other installs are not affected.
    assert_eq!(limits.check(Uuid::now_v7(), None, chat("U1", "C1")), Admission::Admitted);
}

#[test]
fn webhooks_only_count_against_their_endpoint() {
    let limits = RateLimits::new(tight());
    let endpoint = Uuid::now_v7();
    for _ in 0..5 {
        assert_eq!(limits.check(endpoint, None, Who::Webhook), Admission::Admitted);
    }
    let over = limits.check(endpoint, None, Who::Webhook);
    let Admission::Limited { scope: Scope::Install, retry_after, notify: false } = over else {
        panic!("{over:?}");
    };
    assert_eq!(retry_after_secs(retry_after), 1);
}

#[test]
fn installs_override_the_defaults() {
    let limits = RateLimits::new(tight());
    let install = Uuid::now_v7();
    let roomy = RateLimitOverrides { user: Some(RateQuota { per_minute: 600, burst: 50 }), ..Default::default() };
    let roomy_channel = RateLimitOverrides { channel: Some(RateQuota { per_minute: 600, burst: 50 }), ..roomy };
    for _ in 0..5 {
        assert_eq!(limits.check(install, Some(roomy_channel), chat("U1", "C1")), Admission::Admitted);
    }
    // The install default (burst 5) still applies.
    let over = limits.check(install, Some(roomy_channel), chat("U1", "C1"));
    assert!(matches!(over, Admission::Limited { scope: Scope::Install, .. }), "{over:?}");
    // Changed overrides start afresh.
    let wide = RateLimitOverrides { install: Some(RateQuota { per_minute: 600, burst: 50 }), ..roomy_channel };
    assert_eq!(limits.check(install, Some(wide), chat("U1", "C1")), Admission::Admitted);
}

#[test]
fn idle_keys_are_evicted() {
    let settings = RateSettings {
        user: RateQuota { per_minute: 60_000, burst: 1 },
        channel: RateQuota { per_minute: 60_000, burst: 1 },
        install: RateQuota { per_minute: 60_000, burst: 1 },
        notice_window: Duration::from_millis(1),
    };
    let limits = RateLimits::new(settings);
    let install = Uuid::now_v7();
    for i in 0..1000 {
        let user = format!("U{i}");
        limits.check(install, None, chat(&user, &user));
    }
    assert!(limits.keys() >= 2000, "{}", limits.keys());
    std::thread::sleep(Duration::from_millis(20));
    limits.retain_recent();
    assert_eq!(limits.keys(), 0);
}

#[test]
fn notices_round_up_to_whole_seconds() {
    assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    assert_eq!(retry_after_secs(Duration::ZERO), 1);
    assert_eq!(notice_text(Duration::from_secs(12)), "You're sending requests too fast; try again in 12 s.");
}
