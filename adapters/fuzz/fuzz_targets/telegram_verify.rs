#![no_main]

#[path = "common.rs"]
mod common;

use arbitrary::Arbitrary;
use cynode_adapters::telegram;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    headers: Vec<common::FuzzHeader>,
    expected: String,
}

fuzz_target!(|input: Input| {
    let headers = common::header_map(&input.headers);
    if telegram::verify(&headers, &input.expected).is_ok() {
        // Accepting means exactly one header, equal to a valid configured token.
        assert!(telegram::is_valid_secret_token(&input.expected));
        let values: Vec<_> = headers
            .get_all(telegram::SECRET_TOKEN_HEADER)
            .iter()
            .collect();
        assert_eq!(values.len(), 1);
        assert_eq!(values[0].to_str().unwrap().trim(), input.expected);
    }
});
