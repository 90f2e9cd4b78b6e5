//! Integration tests of the public ingress API: verify then parse, as the gateway calls it,
//! with signatures produced by independent implementations (Slack's Python SDK, PyNaCl, the
//! `standardwebhooks` Python library, Python's `hmac`). The values were generated once and are
//! pasted here; no test needs Python.

mod discord;
mod slack;
mod telegram;
mod webhook;

use http::{HeaderMap, HeaderName, HeaderValue};

/// Builds a header map from name/value pairs.
fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}
