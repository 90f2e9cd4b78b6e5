use cynode_adapters::{InboundKind, Parsed, VerifyError, discord};

use crate::headers;

// Signed with PyNaCl 1.6.2: SigningKey(bytes([0x42] * 32)).sign(b"1750000000" + BODY).
const PUBLIC_KEY: &str = "2152f8d19b791d24453242e15f2eab6cb7cffa7b6a5ed30097960e069881db12";
const BODY: &str = r#"{"type":2,"id":"1","application_id":"2","token":"t","channel_id":"3","user":{"id":"4"},"data":{"name":"cynode"}}"#;
const SIG: &str = "0370b6ad735d458468a8580f381d75b7f996fee255ad0c029703e7670d820ae054a53d64c73b02159dd7dfd9c761f0ab035fc63755509cc173fab790e3f9c802";

#[test]
fn verify_parse_with_a_pynacl_signature() {
    let key = discord::PublicKey::from_hex(PUBLIC_KEY).unwrap();
    let h = headers(&[("x-signature-ed25519", SIG), ("x-signature-timestamp", "1750000000")]);
    let now = 1_750_000_001;
    discord::verify(&h, BODY.as_bytes(), &key, now, discord::DEFAULT_WINDOW_SECS).unwrap();
    let mut tampered = BODY.as_bytes().to_vec();
    tampered.push(b' ');
    assert_eq!(discord::verify(&h, &tampered, &key, now, discord::DEFAULT_WINDOW_SECS), Err(VerifyError::BadSignature));
    let Parsed::Inbound(inbound) = discord::parse(BODY.as_bytes()).unwrap() else {
        panic!("expected an inbound");
    };
    assert_eq!(inbound.kind, InboundKind::Command { command: "cynode".into(), text: String::new() });
    assert_eq!(inbound.actor.id, "4");
    assert_eq!(inbound.thread.channel, "3");
}
