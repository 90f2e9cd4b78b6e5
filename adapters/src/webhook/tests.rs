use http::{HeaderName, HeaderValue};
use serde_json::json;

use super::*;
use crate::VerifyError;

// The official GitHub vector (PLATFORMS.md).
const GH_SECRET: &str = "It's a Secret to Everybody";
const GH_BODY: &[u8] = b"Hello, World!";
const GH_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

fn github() -> Scheme {
    Scheme::GitHub { secrets: vec![Secret::new(GH_SECRET).unwrap()] }
}

fn with(name: &'static str, value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(name, HeaderValue::from_str(value).unwrap());
    h
}

#[test]
fn github_official_vector() {
    assert_eq!(verify(&github(), &with("X-Hub-Signature-256", GH_SIG), GH_BODY, 0), Ok(()));
    assert_eq!(github_signature(&Secret::new(GH_SECRET).unwrap(), GH_BODY), GH_SIG);
}

#[test]
fn github_rejects_forgeries_and_malformed_headers() {
    let h = with(GITHUB_SIGNATURE_HEADER, GH_SIG);
    assert_eq!(verify(&github(), &h, b"Hello, World?", 0), Err(VerifyError::BadSignature));
    let wrong = Scheme::GitHub { secrets: vec![Secret::new("another").unwrap()] };
    assert_eq!(verify(&wrong, &h, GH_BODY, 0), Err(VerifyError::BadSignature));
    for bad in [&GH_SIG[7..], "sha1=757107ea0eb2509fc211221cce984b8a37570b6d", &GH_SIG[..70], "sha256=xyz"] {
        let h = with(GITHUB_SIGNATURE_HEADER, bad);
        assert_eq!(verify(&github(), &h, GH_BODY, 0), Err(VerifyError::BadHeader(GITHUB_SIGNATURE_HEADER)), "{bad}");
    }
    assert_eq!(
        verify(&github(), &HeaderMap::new(), GH_BODY, 0),
        Err(VerifyError::MissingHeader(GITHUB_SIGNATURE_HEADER))
    );
    let none = Scheme::GitHub { secrets: vec![] };
    assert_eq!(verify(&none, &h, GH_BODY, 0), Err(VerifyError::InvalidKey));
    // Rotation: the old secret still verifies while listed.
    let rotating = Scheme::GitHub { secrets: vec![Secret::new("new").unwrap(), Secret::new(GH_SECRET).unwrap()] };
    assert_eq!(verify(&rotating, &h, GH_BODY, 0), Ok(()));
    assert_eq!(Secret::new(""), Err(VerifyError::InvalidKey));
    assert_eq!(format!("{:?}", github()), "GitHub { secrets: [Secret(<redacted>)] }");
}

fn plain(encoding: Encoding, prefix: Option<&str>) -> Scheme {
    Scheme::Hmac(HmacScheme {
        header: HeaderName::from_static("x-signature"),
        encoding,
        prefix: prefix.map(str::to_owned),
        secrets: vec![Secret::new(GH_SECRET).unwrap()],
    })
}

#[test]
fn plain_hmac_hex_and_base64() {
    let hex_tag = &GH_SIG[7..];
    let b64 = "dXEH6g6yUJ/CESIczphLijdXC211hsIsRvQ3nIsEPhc=";
    assert_eq!(verify(&plain(Encoding::Hex, None), &with("X-Signature", hex_tag), GH_BODY, 0), Ok(()));
    assert_eq!(verify(&plain(Encoding::Hex, Some("sha256=")), &with("x-signature", GH_SIG), GH_BODY, 0), Ok(()));
    assert_eq!(verify(&plain(Encoding::Base64, None), &with("x-signature", b64), GH_BODY, 0), Ok(()));
    assert_eq!(
        verify(&plain(Encoding::Base64, None), &with("x-signature", b64.trim_end_matches('=')), GH_BODY, 0),
        Ok(())
    );
    assert_eq!(
        verify(&plain(Encoding::Base64, None), &with("x-signature", b64), b"tampered", 0),
        Err(VerifyError::BadSignature)
    );
    let label = CONFIGURED_HEADER_LABEL;
    for (scheme, value) in [
        (plain(Encoding::Hex, None), GH_SIG),
        (plain(Encoding::Hex, Some("sha256=")), hex_tag),
        (plain(Encoding::Base64, None), hex_tag),
        (plain(Encoding::Base64, None), "!!!!"),
        (plain(Encoding::Base64, None), "AAAA"),
    ] {
        assert_eq!(
            verify(&scheme, &with("x-signature", value), GH_BODY, 0),
            Err(VerifyError::BadHeader(label)),
            "{value}"
        );
    }
    assert_eq!(
        verify(&plain(Encoding::Hex, None), &HeaderMap::new(), GH_BODY, 0),
        Err(VerifyError::MissingHeader(label))
    );
}

fn inbound(parsed: Result<Parsed, ParseError>) -> Inbound {
    match parsed {
        Ok(Parsed::Inbound(inbound)) => inbound,
        other => panic!("expected an inbound, got {other:?}"),
    }
}

#[test]
fn github_delivery_parses_with_event_and_delivery_id() {
    let mut h = with(GITHUB_EVENT_HEADER, "pull_request");
    h.insert(GITHUB_DELIVERY_HEADER, HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"));
    let body = br#"{"action":"opened","number":7}"#;
    let got = inbound(parse("ci", &h, body));
    assert_eq!(got.platform, Platform::Webhook);
    assert_eq!(got.delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(got.thread.install, "ci");
    assert_eq!(got.actor.id, "ci");
    assert_eq!(
        got.kind,
        InboundKind::Webhook { event: Some("pull_request".into()), payload: json!({"action": "opened", "number": 7}) }
    );
}

#[test]
fn standard_and_unsigned_ids_and_payload_event_names() {
    let h = with(standard::ID_HEADER, "msg_1");
    let got = inbound(parse("hooks", &h, br#"{"type":"invoice.paid","event":"ignored"}"#));
    assert_eq!(got.delivery_id, "msg_1");
    assert_eq!(
        got.kind,
        InboundKind::Webhook {
            event: Some("invoice.paid".into()),
            payload: json!({"type":"invoice.paid","event":"ignored"})
        }
    );

    let body = br#"{"event":"deploy"}"#;
    let got = inbound(parse("hooks", &HeaderMap::new(), body));
    assert_eq!(got.delivery_id, hex::encode(crypto::sha256(body)));
    assert_eq!(got.delivery_id.len(), 64);
    assert_eq!(got.kind, InboundKind::Webhook { event: Some("deploy".into()), payload: json!({"event":"deploy"}) });

    let long = with(GITHUB_DELIVERY_HEADER, &"x".repeat(201));
    let got = inbound(parse("hooks", &long, b"[1]"));
    assert_eq!(got.delivery_id, hex::encode(crypto::sha256(b"[1]")));
    assert_eq!(got.kind, InboundKind::Webhook { event: None, payload: json!([1]) });
}

#[test]
fn form_encoded_github_payload() {
    let h = with("content-type", "application/x-www-form-urlencoded");
    let got = inbound(parse("ci", &h, b"payload=%7B%22zen%22%3A%22Keep+it+simple%22%7D"));
    assert_eq!(got.kind, InboundKind::Webhook { event: None, payload: json!({"zen": "Keep it simple"}) });
    assert_eq!(parse("ci", &h, b"zen=1"), Err(ParseError::MissingField("payload")));
    assert_eq!(parse("ci", &h, b"payload=%"), Err(ParseError::Form("invalid percent escape")));
}

#[test]
fn malformed_bodies_are_errors() {
    let h = HeaderMap::new();
    assert!(matches!(parse("x", &h, br#"{"a":"#), Err(ParseError::Json { category: "truncated", .. })));
    assert!(matches!(parse("x", &h, b""), Err(ParseError::Json { category: "truncated", .. })));
    assert!(matches!(parse("x", &h, b"not json"), Err(ParseError::Json { category: "syntax", .. })));
    let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
    assert_eq!(parse("x", &h, deep.as_bytes()), Err(ParseError::TooDeep { limit: 64 }));
}

#[test]
fn float_payloads_survive_storage_exactly() {
    // Found by the webhook_parse fuzz target: without serde_json's `float_roundtrip`, this
    // number parsed, stored as JSON and read back came out one ulp different.
    let got = inbound(parse("x", &HeaderMap::new(), b"1111111111111111111111"));
    let stored = serde_json::to_string(&got).unwrap();
    assert_eq!(serde_json::from_str::<Inbound>(&stored).unwrap(), got);
}

#[test]
fn only_schemes_with_an_unsigned_delivery_id_get_a_replay_key() {
    let secret = || vec![Secret::new("s").expect("secret")];
    let github = Scheme::GitHub { secrets: secret() };
    assert!(!github.signs_delivery_id());
    assert_eq!(replay_key(&github, b"{}"), Some(crypto::sha256(b"{}")));
    let hmac = Scheme::Hmac(HmacScheme {
        header: http::HeaderName::from_static("x-signature"),
        encoding: Encoding::Hex,
        prefix: None,
        secrets: secret(),
    });
    assert_eq!(replay_key(&hmac, b"[1]"), Some(crypto::sha256(b"[1]")));
    let standard = Scheme::Standard {
        secrets: vec![standard::StandardSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret")],
    };
    assert!(standard.signs_delivery_id());
    assert_eq!(replay_key(&standard, b"{}"), None);
}
