#![no_main]

#[path = "common.rs"]
mod common;

use arbitrary::Arbitrary;
use cynode_adapters::webhook::{self, Encoding, HmacScheme, Scheme, Secret, standard};
use http::HeaderName;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    scheme: u8,
    headers: Vec<common::FuzzHeader>,
    body: Vec<u8>,
    now: i64,
    /// For Standard Webhooks: sign properly with this id and timestamp.
    signed: Option<(String, u32)>,
    /// A secret string fed to the secret parser.
    whsec: String,
}

fuzz_target!(|input: Input| {
    let _ = standard::StandardSecret::parse(&input.whsec);
    let secret = standard::StandardSecret::from_bytes(vec![7; 32]).unwrap();
    let scheme = match input.scheme % 4 {
        0 => Scheme::GitHub {
            secrets: vec![Secret::new("gh").unwrap()],
        },
        1 => Scheme::Standard {
            secrets: vec![secret.clone()],
        },
        2 => Scheme::Hmac(HmacScheme {
            header: HeaderName::from_static("x-signature"),
            encoding: Encoding::Hex,
            prefix: Some("sha256=".into()),
            secrets: vec![Secret::new("plain").unwrap()],
        }),
        _ => Scheme::Hmac(HmacScheme {
            header: HeaderName::from_static("x-signature"),
            encoding: Encoding::Base64,
            prefix: None,
            secrets: vec![Secret::new("plain").unwrap()],
        }),
    };
    let mut headers = common::header_map(&input.headers);
    match (&scheme, &input.signed) {
        (Scheme::Standard { .. }, Some((id, ts))) => {
            let (Ok(id_value), Ok(sig_value)) = (
                id.parse(),
                standard::sign(&secret, id, i64::from(*ts), &input.body).parse(),
            ) else {
                return;
            };
            for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                headers.remove(name);
            }
            headers.insert("webhook-id", id_value);
            headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
            headers.insert("webhook-signature", sig_value);
            let fresh = (i128::from(input.now) - i128::from(*ts)).abs() <= 300;
            let ok = webhook::verify(&scheme, &headers, &input.body, input.now).is_ok();
            // Header values must be visible ASCII (spaces and tabs allowed inside); an id that
            // is blank, padded or not ASCII is refused as malformed.
            let trimmed = id.trim_matches([' ', '\t']);
            let well_formed = !trimmed.is_empty()
                && trimmed == id
                && id.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
            assert_eq!(
                ok,
                fresh && well_formed,
                "id={id:?} ts={ts} now={}",
                input.now
            );
        }
        _ => assert!(webhook::verify(&scheme, &headers, &input.body, input.now).is_err()),
    }
});
