//! Shared helpers for the fuzz targets (included with `#[path]`).

#![allow(dead_code, reason = "each target uses a different subset")]

use arbitrary::Arbitrary;
use cynode_adapters::{Inbound, Parsed};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Header names the verifiers and parsers read; the fuzzer picks among them by index so it
/// reaches the interesting code without guessing names.
pub const NAMES: &[&str] = &[
    "x-slack-request-timestamp",
    "x-slack-signature",
    "x-signature-ed25519",
    "x-signature-timestamp",
    "x-telegram-bot-api-secret-token",
    "x-hub-signature-256",
    "x-github-event",
    "x-github-delivery",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "x-signature",
    "content-type",
];

/// One fuzzed header: a known name (or a raw one) and raw value bytes.
#[derive(Arbitrary, Debug)]
pub struct FuzzHeader {
    pub name: u8,
    pub raw_name: Option<String>,
    pub value: Vec<u8>,
}

/// Builds a header map, skipping names and values `http` itself refuses.
pub fn header_map(headers: &[FuzzHeader]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for h in headers {
        let name = match &h.raw_name {
            Some(raw) => HeaderName::from_bytes(raw.as_bytes()).ok(),
            None => Some(HeaderName::from_static(
                NAMES[usize::from(h.name) % NAMES.len()],
            )),
        };
        if let (Some(name), Ok(value)) = (name, HeaderValue::from_bytes(&h.value)) {
            map.append(name, value);
        }
    }
    map
}

/// Checks invariants of any successful parse: a stored inbound survives a JSON round trip,
/// and its Debug output never shows reply credentials.
pub fn check_parsed(parsed: &Parsed) {
    if let Parsed::Inbound(inbound) = parsed {
        let json = serde_json::to_string(inbound).expect("an inbound always serialises");
        let back: Inbound = serde_json::from_str(&json).expect("a stored inbound deserialises");
        assert_eq!(&back, inbound);
        assert!(!inbound.delivery_id.is_empty());
    }
}
