//! Integration tests of the public ingress API: verify then parse, as the gateway calls it,
//! with signatures produced by independent implementations (Slack's Python SDK, PyNaCl, the
//! `standardwebhooks` Python library, Python's `hmac`). The values were generated once and are
//! pasted here; no test needs Python.
//!
//! Also: the outbound platform clients against the fake Slack, Discord and Telegram servers of
//! `cynode-tests` ([`clients`]), and the fakes' own rule enforcement with raw requests
//! ([`fake_rules`]).

mod clients;
mod discord;
mod fake_rules;
mod slack;
mod telegram;
mod webhook;

use http::{HeaderMap, HeaderName, HeaderValue};

/// Builds a header map from name/value pairs.
fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
    }
    map
}
