use serde_json::json;

use super::*;

#[test]
fn slash_command_becomes_a_command() {
    let got = inbound(parse(FORM, SLASH));
    assert_eq!(got.delivery_id, "13345224609.738474920.8088930838d88f008e0");
    assert_eq!(got.thread.install, "T0001");
    assert_eq!(got.thread.channel, "C2147483705");
    assert_eq!(got.thread.thread, None);
    assert_eq!(got.actor, Actor { id: "U2147483697".into(), name: Some("Steve".into()) });
    assert_eq!(got.kind, InboundKind::Command { command: "cynode".into(), text: "run echo hi".into() });
    assert_eq!(
        got.reply_handle,
        Some(ReplyHandle::Slack {
            response_url: Some("https://hooks.slack.com/commands/1234/5678".into()),
            trigger_id: Some("13345224609.738474920.8088930838d88f008e0".into()),
        })
    );
    // The reply handle's Debug hides the response_url.
    assert!(!format!("{got:?}").contains("hooks.slack.com"));
    // The official signing vector's body is a slash command too.
    let vector = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let got = inbound(parse(None, vector));
    assert_eq!(got.kind, InboundKind::Command { command: "webhook-collect".into(), text: String::new() });
}

#[test]
fn malformed_forms_are_errors() {
    assert_eq!(parse(FORM, b"team_id=T1&command=/x&text=%zz"), Err(ParseError::Form("invalid percent escape")));
    assert_eq!(parse(FORM, b"team_id=T1&team_id=T2&command=/x"), Err(ParseError::Form("repeated field")));
    assert_eq!(parse(FORM, b"team_id=T1&user_id=U1"), Err(ParseError::MissingField("command")));
    assert_eq!(
        parse(FORM, b"team_id=T1&command=/x&channel_id=C1&user_id=U1"),
        Err(ParseError::MissingField("trigger_id"))
    );
    assert_eq!(parse(FORM, b"command=/x&trigger_id=t\xff"), Err(ParseError::NotUtf8));
    assert!(matches!(parse(FORM, b"payload=%7B%22type%22"), Err(ParseError::Json { .. })));
}

#[test]
fn block_actions_become_actions() {
    let got = inbound(parse(FORM, &interaction(&block_actions())));
    assert_eq!(got.delivery_id, "1.2.abc");
    assert_eq!(got.thread.install, "T1");
    assert_eq!(got.thread.channel, "C1");
    assert_eq!(got.thread.thread.as_deref(), Some("100.0"));
    assert_eq!(got.actor, Actor { id: "U1".into(), name: Some("ada".into()) });
    assert_eq!(
        got.kind,
        InboundKind::Action { action_id: "approve".into(), value: "job-42".into(), message_ref: Some("200.1".into()) }
    );
    // A select menu carries its value in selected_option.
    let mut select = block_actions();
    select["actions"][0] = json!({"action_id": "pick", "type": "static_select", "selected_option": {"value": "gpu"}});
    let got = inbound(parse(FORM, &interaction(&select)));
    assert_eq!(
        got.kind,
        InboundKind::Action { action_id: "pick".into(), value: "gpu".into(), message_ref: Some("200.1".into()) }
    );
}

#[test]
fn other_interactions_are_ignored_or_rejected() {
    assert_eq!(
        ignored(parse(FORM, &interaction(&json!({"type": "view_submission"})))),
        "unsupported slack interaction type"
    );
    let mut home = block_actions();
    home["channel"] = serde_json::Value::Null;
    home["container"] = json!({"type": "view", "view_id": "V1"});
    assert!(ignored(parse(FORM, &interaction(&home))).starts_with("block action outside"));
    let mut empty = block_actions();
    empty["actions"] = json!([]);
    assert_eq!(parse(FORM, &interaction(&empty)), Err(ParseError::MissingField("payload.actions")));
    let mut no_user = block_actions();
    no_user["user"]["id"] = json!("");
    assert_eq!(parse(FORM, &interaction(&no_user)), Err(ParseError::InvalidField("payload.user.id")));
}
