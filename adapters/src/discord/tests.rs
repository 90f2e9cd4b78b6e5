use serde_json::json;

use super::*;

fn inbound(parsed: Result<Parsed, ParseError>) -> Inbound {
    match parsed {
        Ok(Parsed::Inbound(inbound)) => inbound,
        other => panic!("expected an inbound, got {other:?}"),
    }
}

fn command_in_guild() -> serde_json::Value {
    json!({
        "id": "1180000000000000001",
        "application_id": "1170000000000000000",
        "type": 2,
        "token": "aW50ZXJhY3Rpb246MTE4MDAwMDAwMDAwMDAwMDAwMTpzZWNyZXQ",
        "version": 1,
        "guild_id": "1100000000000000000",
        "channel_id": "1110000000000000000",
        "channel": {"id": "1110000000000000000", "type": 0, "name": "ops"},
        "member": {"user": {"id": "1000000000000000001", "username": "ada", "global_name": "Ada L"},
                   "roles": [], "permissions": "0"},
        "data": {"id": "1160000000000000000", "name": "cynode", "type": 1, "options": [
            {"name": "run", "type": 1, "options": [{"name": "command", "type": 3, "value": "echo hi"}]}
        ]},
        "locale": "en-US"
    })
}

#[test]
fn ping_is_answered_with_pong() {
    let Ok(Parsed::Handshake(h)) = parse(br#"{"type":1}"#) else { panic!() };
    assert_eq!(h.body, br#"{"type":1}"#);
    assert_eq!(h.content_type, "application/json");
    let Ok(Parsed::Handshake(_)) = parse(br#"{"id":"1","application_id":"2","type":1,"version":1,"token":"t"}"#) else {
        panic!()
    };
}

#[test]
fn application_command_becomes_a_command() {
    let got = inbound(parse(command_in_guild().to_string().as_bytes()));
    assert_eq!(got.platform, Platform::Discord);
    assert_eq!(got.delivery_id, "1180000000000000001");
    assert_eq!(got.thread.install, "1170000000000000000");
    assert_eq!(got.thread.channel, "1110000000000000000");
    assert_eq!(got.thread.thread, None);
    assert_eq!(got.actor, Actor { id: "1000000000000000001".into(), name: Some("Ada L".into()) });
    assert_eq!(got.kind, InboundKind::Command { command: "cynode".into(), text: "run echo hi".into() });
    assert_eq!(
        got.reply_handle,
        Some(ReplyHandle::Discord {
            application_id: "1170000000000000000".into(),
            token: "aW50ZXJhY3Rpb246MTE4MDAwMDAwMDAwMDAwMDAwMTpzZWNyZXQ".into(),
        })
    );
    assert!(!format!("{got:?}").contains("aW50ZXJhY3Rpb24"), "Debug must redact the token");
}

#[test]
fn dm_user_and_threads() {
    let mut dm = command_in_guild();
    let map = dm.as_object_mut().unwrap();
    map.remove("member");
    map.remove("guild_id");
    map.insert("user".into(), json!({"id": "42", "username": "bob", "global_name": null}));
    let got = inbound(parse(dm.to_string().as_bytes()));
    assert_eq!(got.actor, Actor { id: "42".into(), name: Some("bob".into()) });

    // In a guild, the member's nickname comes first, then the global display name.
    let mut nicked = command_in_guild();
    nicked["member"]["nick"] = json!("Countess");
    assert_eq!(inbound(parse(nicked.to_string().as_bytes())).actor.name.as_deref(), Some("Countess"));
    nicked["member"]["nick"] = json!(null);
    assert_eq!(inbound(parse(nicked.to_string().as_bytes())).actor.name.as_deref(), Some("Ada L"));

    let mut threaded = command_in_guild();
    threaded["channel_id"] = json!("1300");
    threaded["channel"] = json!({"id": "1300", "type": 11, "parent_id": "1110000000000000000"});
    let got = inbound(parse(threaded.to_string().as_bytes()));
    assert_eq!(got.thread.channel, "1110000000000000000");
    assert_eq!(got.thread.thread.as_deref(), Some("1300"));
}

#[test]
fn component_click_becomes_an_action() {
    let mut click = command_in_guild();
    click["type"] = json!(3);
    click["data"] = json!({"custom_id": "approve:job-42", "component_type": 2});
    click["message"] = json!({"id": "1190000000000000000", "content": "Approve?"});
    let got = inbound(parse(click.to_string().as_bytes()));
    assert_eq!(
        got.kind,
        InboundKind::Action {
            action_id: "approve".into(),
            value: "job-42".into(),
            message_ref: Some("1190000000000000000".into())
        }
    );
    click["data"] = json!({"custom_id": "template", "component_type": 3, "values": ["python", "gpu"]});
    let got = inbound(parse(click.to_string().as_bytes()));
    assert_eq!(
        got.kind,
        InboundKind::Action {
            action_id: "template".into(),
            value: "python,gpu".into(),
            message_ref: Some("1190000000000000000".into())
        }
    );
}

#[test]
fn other_types_are_ignored() {
    for (t, reason) in [(4, "autocomplete"), (5, "modal"), (99, "unsupported")] {
        let mut v = command_in_guild();
        v["type"] = json!(t);
        match parse(v.to_string().as_bytes()) {
            Ok(Parsed::Ignored { reason: r }) => assert!(r.starts_with(reason), "{r}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn malformed_interactions_are_errors() {
    assert_eq!(parse(b"{}"), Err(ParseError::MissingField("type")));
    assert_eq!(parse(br#"{"type":"2"}"#), Err(ParseError::InvalidField("type")));
    assert_eq!(parse(br#"{"type":-1}"#), Err(ParseError::InvalidField("type")));
    assert!(matches!(parse(br#"{"type":2,"data":{"#), Err(ParseError::Json { category: "truncated", .. })));
    assert_eq!(parse(br#"{"type":2}"#), Err(ParseError::MissingField("data")));
    let deep = format!(r#"{{"type":2,"data":{}{}}}"#, "{\"a\":".repeat(80), "}".repeat(80));
    assert_eq!(parse(deep.as_bytes()), Err(ParseError::TooDeep { limit: 64 }));
    let mut v = command_in_guild();
    v["data"]["name"] = json!("");
    assert_eq!(parse(v.to_string().as_bytes()), Err(ParseError::InvalidField("data.name")));
    let mut v = command_in_guild();
    v.as_object_mut().unwrap().remove("member");
    assert_eq!(parse(v.to_string().as_bytes()), Err(ParseError::MissingField("member.user")));
    let mut v = command_in_guild();
    v.as_object_mut().unwrap().remove("token");
    assert_eq!(parse(v.to_string().as_bytes()), Err(ParseError::MissingField("token")));
    let mut v = command_in_guild();
    v["data"]["options"] = json!("not a list");
    assert_eq!(parse(v.to_string().as_bytes()), Err(ParseError::InvalidField("data")));
}

#[test]
fn deferred_responses() {
    assert_eq!(deferred_response(DeferredKind::ChannelMessage).body, br#"{"type":5}"#);
    assert_eq!(deferred_response(DeferredKind::UpdateMessage).body, br#"{"type":6}"#);
    assert_eq!(deferred_response(DeferredKind::UpdateMessage).content_type, "application/json");
}
