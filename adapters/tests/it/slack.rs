use cynode_adapters::{InboundKind, Parsed, VerifyError, slack};

use crate::headers;

// Signed by slack-sdk 3.47.0: SignatureVerifier("cynode-independent-signing-secret")
// .generate_signature(timestamp="1750000000", body=BODY).
const SECRET: &[u8] = b"cynode-independent-signing-secret";
const BODY: &str = r#"{"type":"event_callback","team_id":"T0CYNODE","api_app_id":"A0CYNODE","event_id":"Ev0CYNODE1","event":{"type":"app_mention","user":"U0ADA","text":"<@U0BOT> run echo hi","ts":"1750000000.000100","channel":"C0OPS"},"authorizations":[{"user_id":"U0BOT","is_bot":true}]}"#;
const SIG: &str = "v0=34d80c54be32785c3d7b4b474055895e5b3873d04ef95c48468d3668bb1109b1";
const TS: i64 = 1_750_000_000;

#[test]
fn hint_verify_parse_with_an_sdk_signature() {
    let h = headers(&[
        ("x-slack-request-timestamp", "1750000000"),
        ("x-slack-signature", SIG),
        ("content-type", "application/json"),
    ]);
    let hint = slack::install_hint(Some("application/json"), BODY.as_bytes()).unwrap();
    assert_eq!(hint.api_app_id.as_deref(), Some("A0CYNODE"));
    slack::verify(&h, BODY.as_bytes(), SECRET, TS + 42).unwrap();
    assert_eq!(slack::sign(SECRET, TS, BODY.as_bytes()).unwrap(), SIG);
    let Parsed::Inbound(inbound) = slack::parse(Some("application/json"), BODY.as_bytes()).unwrap() else {
        panic!("expected an inbound");
    };
    assert_eq!(inbound.delivery_id, "Ev0CYNODE1");
    assert_eq!(inbound.thread.install, "T0CYNODE");
    assert_eq!(inbound.kind, InboundKind::Mention { text: "run echo hi".into() });
    assert_eq!(slack::verify(&h, BODY.as_bytes(), SECRET, TS + 301), Err(VerifyError::StaleTimestamp));
}
