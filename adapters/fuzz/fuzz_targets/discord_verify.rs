#![no_main]

#[path = "common.rs"]
mod common;

use arbitrary::Arbitrary;
use cynode_adapters::discord;
use ed25519_dalek::{Signer, SigningKey};
use libfuzzer_sys::fuzz_target;

const SEED: [u8; 32] = [0x9d; 32];

#[derive(Arbitrary, Debug)]
struct Input {
    headers: Vec<common::FuzzHeader>,
    body: Vec<u8>,
    now: i64,
    window: u32,
    /// When set, sign `timestamp + body` properly so the accepting path runs too.
    signed_at: Option<u32>,
}

fuzz_target!(|input: Input| {
    let signing = SigningKey::from_bytes(&SEED);
    let key = discord::PublicKey::from_hex(&hex(signing.verifying_key().as_bytes())).unwrap();
    let mut headers = common::header_map(&input.headers);
    if let Some(ts) = input.signed_at {
        let mut message = ts.to_string().into_bytes();
        message.extend_from_slice(&input.body);
        let sig = hex(&signing.sign(&message).to_bytes());
        headers.insert(discord::TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
        headers.insert(discord::SIGNATURE_HEADER, sig.parse().unwrap());
        let fresh = (i128::from(input.now) - i128::from(ts)).abs() <= i128::from(input.window);
        let ok = discord::verify(&headers, &input.body, &key, input.now, input.window).is_ok();
        assert_eq!(ok, fresh);
    } else {
        assert!(discord::verify(&headers, &input.body, &key, input.now, input.window).is_err());
    }
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
