use serde_json::json;

use super::*;

#[test]
fn url_verification_answers_the_challenge() {
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let Ok(Parsed::Handshake(h)) = parse(JSON, body) else { panic!() };
    assert_eq!(h.body, b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    assert!(h.content_type.starts_with("text/plain"));
    assert_eq!(parse(JSON, br#"{"type":"url_verification"}"#), Err(ParseError::MissingField("challenge")));
}

#[test]
fn app_mention_becomes_a_mention_in_its_thread() {
    let body = event(json!({
        "type": "app_mention", "user": "U061F7AUR", "text": "<@UBOT> run pytest -x",
        "ts": "1515449522.000016", "channel": "C123ABC456", "event_ts": "1515449522000016"
    }));
    let got = inbound(parse(JSON, &body));
    assert_eq!(got.platform, Platform::Slack);
    assert_eq!(got.delivery_id, "Ev123ABC456");
    assert_eq!(got.thread.install, "T123ABC456");
    assert_eq!(got.thread.channel, "C123ABC456");
    assert_eq!(got.thread.thread.as_deref(), Some("1515449522.000016"));
    assert_eq!(got.thread.reply_to.as_deref(), Some("1515449522.000016"));
    assert_eq!(got.actor, Actor { id: "U061F7AUR".into(), name: None });
    assert_eq!(got.kind, InboundKind::Mention { text: "run pytest -x".into() });
    assert_eq!(got.reply_handle, None);

    // Inside an existing thread, the thread is the parent's ts.
    let body = event(json!({
        "type": "app_mention", "user": "U1", "text": "<@UBOT> status", "ts": "2.0",
        "thread_ts": "1.0", "channel": "C1"
    }));
    let got = inbound(parse(JSON, &body));
    assert_eq!(got.thread.thread.as_deref(), Some("1.0"));
    assert_eq!(got.thread.reply_to.as_deref(), Some("2.0"));
}

#[test]
fn direct_messages_are_mentions_but_channel_chatter_is_ignored() {
    let dm = event(json!({
        "type": "message", "channel_type": "im", "user": "U1", "text": "ask what is 2+2",
        "ts": "3.0", "channel": "D1"
    }));
    assert_eq!(inbound(parse(JSON, &dm)).kind, InboundKind::Mention { text: "ask what is 2+2".into() });
    let chatter = event(json!({
        "type": "message", "channel_type": "channel", "user": "U1", "text": "hi", "ts": "3.0", "channel": "C1"
    }));
    assert_eq!(ignored(parse(JSON, &chatter)), "channel message not addressed to the app");
}

#[test]
fn bots_edits_and_own_messages_are_ignored() {
    let bot = event(json!({
        "type": "message", "channel_type": "im", "bot_id": "B1", "text": "echo", "ts": "1.0", "channel": "D1"
    }));
    assert_eq!(ignored(parse(JSON, &bot)), "message from a bot");
    let edit = event(json!({
        "type": "message", "subtype": "message_changed", "channel_type": "im", "channel": "D1",
        "message": {"text": "x"}, "ts": "1.0"
    }));
    assert!(ignored(parse(JSON, &edit)).starts_with("message subtype"));
    let own = event(json!({
        "type": "message", "channel_type": "im", "user": "UBOT", "text": "hi", "ts": "1.0", "channel": "D1"
    }));
    assert_eq!(ignored(parse(JSON, &own)), "message from the app itself");
}

#[test]
fn unknown_events_and_envelopes_are_ignored() {
    // `user` is an object in user_change: parsing must not choke on it.
    let other = event(json!({"type": "user_change", "user": {"id": "U1"}}));
    assert_eq!(ignored(parse(JSON, &other)), "unsupported slack event type");
    let limited =
        br#"{"token":"x","type":"app_rate_limited","team_id":"T1","minute_rate_limited":1518467820,"api_app_id":"A1"}"#;
    assert_eq!(ignored(parse(JSON, limited)), "unsupported slack envelope type");
}

#[test]
fn malformed_events_are_errors() {
    assert_eq!(parse(JSON, br#"{"team_id":"T1"}"#), Err(ParseError::MissingField("type")));
    assert!(matches!(
        parse(JSON, br#"{"type":"event_callback","team"#),
        Err(ParseError::Json { category: "truncated", .. })
    ));
    assert!(matches!(parse(JSON, b"[1,2"), Err(ParseError::Json { .. })));
    let deep = format!(r#"{{"type":"event_callback","event":{}1{}}}"#, "[".repeat(100), "]".repeat(100));
    assert_eq!(parse(JSON, deep.as_bytes()), Err(ParseError::TooDeep { limit: 64 }));
    let no_id = br#"{"type":"event_callback","team_id":"T1","event":{"type":"app_mention"}}"#;
    assert_eq!(parse(JSON, no_id), Err(ParseError::MissingField("event_id")));
    let no_user = event(json!({"type": "app_mention", "text": "hi", "ts": "1.0", "channel": "C1"}));
    assert_eq!(parse(JSON, &no_user), Err(ParseError::MissingField("event.user")));
    let bad_shape = event(json!({"type": "app_mention", "user": 7, "ts": "1.0", "channel": "C1"}));
    assert_eq!(parse(JSON, &bad_shape), Err(ParseError::InvalidField("event")));
    assert_eq!(parse(Some("text/xml"), b"<a/>"), Err(ParseError::UnsupportedContentType));
}
