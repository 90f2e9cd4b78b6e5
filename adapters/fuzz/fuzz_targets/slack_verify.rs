#![no_main]

#[path = "common.rs"]
mod common;

use arbitrary::Arbitrary;
use cynode_adapters::slack;
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

#[derive(Arbitrary, Debug)]
struct Input {
    headers: Vec<common::FuzzHeader>,
    body: Vec<u8>,
    now: i64,
    /// When set, sign the body properly with this timestamp so the accepting path runs too.
    signed_at: Option<i64>,
}

fuzz_target!(|input: Input| {
    let mut headers = common::header_map(&input.headers);
    if let Some(ts) = input.signed_at {
        let sig = slack::sign(SECRET, ts, &input.body).expect("non-empty secret");
        headers.insert(slack::TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
        headers.insert(slack::SIGNATURE_HEADER, sig.parse().unwrap());
        let fresh = ts >= 0 && (i128::from(input.now) - i128::from(ts)).abs() <= 300;
        let ok = slack::verify(&headers, &input.body, SECRET, input.now).is_ok();
        // Negative or overlong timestamps are refused as malformed even when signed.
        assert_eq!(
            ok,
            fresh && ts.to_string().len() <= 18,
            "ts={ts} now={}",
            input.now
        );
    } else {
        // Nobody can forge an HMAC: unsigned input never verifies.
        assert!(slack::verify(&headers, &input.body, SECRET, input.now).is_err());
    }
});
