use cynode_adapters::{InboundKind, Parsed, VerifyError, telegram};

use crate::headers;

#[test]
fn verify_parse_round_trip() {
    let h = headers(&[("x-telegram-bot-api-secret-token", "Tg_secret-123")]);
    telegram::verify(&h, "Tg_secret-123").unwrap();
    assert_eq!(telegram::verify(&h, "Tg_secret-124"), Err(VerifyError::BadToken));
    let body = br#"{"update_id":10,"message":{"message_id":3,"from":{"id":5,"is_bot":false,"first_name":"A"},"chat":{"id":5,"type":"private"},"date":1,"text":"/cynode@cynode_bot ask why"}}"#;
    let Parsed::Inbound(inbound) = telegram::parse(body, "cynode_bot").unwrap() else {
        panic!("expected an inbound");
    };
    assert_eq!(inbound.delivery_id, "10");
    assert_eq!(inbound.kind, InboundKind::Command { command: "cynode".into(), text: "ask why".into() });
}
