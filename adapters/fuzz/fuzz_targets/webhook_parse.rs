#![no_main]

#[path = "common.rs"]
mod common;

use arbitrary::Arbitrary;
use cynode_adapters::webhook;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    endpoint: &'a str,
    headers: Vec<common::FuzzHeader>,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let headers = common::header_map(&input.headers);
    if let Ok(parsed) = webhook::parse(input.endpoint, &headers, input.body) {
        common::check_parsed(&parsed);
    }
});
