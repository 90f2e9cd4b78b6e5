use cynode_adapters::webhook::{self, Scheme, Secret, standard};
use cynode_adapters::{InboundKind, Parsed, VerifyError};

use crate::headers;

// Signed with standardwebhooks 1.1.0 (Python): Webhook(SECRET).sign("msg_cynode_1",
// datetime.fromtimestamp(1750000000, utc), BODY).
const SECRET: &str = "whsec_Y3lub2RlLWluZGVwZW5kZW50LXRlc3Qta2V5LTMyYg==";
const BODY: &str = r#"{"type":"job.completed","data":{"id":"job_42","exit_code":0}}"#;
const SIG: &str = "v1,tyg4ebZaJqA++6j+PKXXmYKTejDhZ0nzQL/nRAM49sc=";

#[test]
fn standard_webhooks_library_signature_verifies_and_we_sign_the_same() {
    let secret = standard::StandardSecret::parse(SECRET).unwrap();
    assert_eq!(standard::sign(&secret, "msg_cynode_1", 1_750_000_000, BODY.as_bytes()), SIG);
    let h = headers(&[("webhook-id", "msg_cynode_1"), ("webhook-timestamp", "1750000000"), ("webhook-signature", SIG)]);
    let scheme = Scheme::Standard { secrets: vec![secret] };
    webhook::verify(&scheme, &h, BODY.as_bytes(), 1_750_000_100).unwrap();
    assert_eq!(webhook::verify(&scheme, &h, BODY.as_bytes(), 1_750_000_301), Err(VerifyError::StaleTimestamp));
    let Parsed::Inbound(inbound) = webhook::parse("deploys", &h, BODY.as_bytes()).unwrap() else {
        panic!("expected an inbound");
    };
    assert_eq!(inbound.delivery_id, "msg_cynode_1");
    let InboundKind::Webhook { event, .. } = inbound.kind else { panic!("expected a webhook") };
    assert_eq!(event.as_deref(), Some("job.completed"));
}

// Python: "sha256=" + hmac.new(b"cynode-github-secret", BODY, hashlib.sha256).hexdigest().
#[test]
fn github_signature_from_python_hmac_verifies() {
    let body = br#"{"action":"opened","number":7}"#;
    let sig = "sha256=6930223a1ee18c53285d8df1364dde9ea2ea5e32a436b4dff707d702468936c2";
    let scheme = Scheme::GitHub { secrets: vec![Secret::new("cynode-github-secret").unwrap()] };
    let h = headers(&[("x-hub-signature-256", sig), ("x-github-event", "pull_request")]);
    webhook::verify(&scheme, &h, body, 0).unwrap();
    assert_eq!(webhook::verify(&scheme, &h, b"{}", 0), Err(VerifyError::BadSignature));
}
