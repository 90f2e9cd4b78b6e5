#![no_main]

#[path = "common.rs"]
mod common;

use cynode_adapters::slack;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 4] = [
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("text/plain"),
];

fuzz_target!(|input: (u8, &[u8])| {
    let (ct, body) = input;
    let content_type = CONTENT_TYPES[usize::from(ct) % CONTENT_TYPES.len()];
    let _ = slack::install_hint(content_type, body);
    if let Ok(parsed) = slack::parse(content_type, body) {
        common::check_parsed(&parsed);
    }
});
