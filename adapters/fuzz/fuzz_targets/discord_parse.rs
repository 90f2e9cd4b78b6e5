#![no_main]

#[path = "common.rs"]
mod common;

use cynode_adapters::discord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(parsed) = discord::parse(body) {
        common::check_parsed(&parsed);
    }
});
