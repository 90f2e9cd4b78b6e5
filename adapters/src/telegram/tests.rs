use serde_json::json;

use super::*;

const BOT: &str = "CyNodeBot";

fn update(message: &serde_json::Value) -> Vec<u8> {
    json!({"update_id": 745_228_001, "message": message}).to_string().into_bytes()
}

fn group_message(text: &str) -> serde_json::Value {
    json!({
        "message_id": 77,
        "message_thread_id": 5,
        "is_topic_message": true,
        "from": {"id": 1_234_567, "is_bot": false, "first_name": "Ada", "username": "ada"},
        "chat": {"id": -1_001_234_567_890_i64, "title": "Ops", "type": "supergroup", "is_forum": true},
        "date": 1_700_000_000,
        "text": text
    })
}

fn inbound(parsed: Result<Parsed, ParseError>) -> Inbound {
    match parsed {
        Ok(Parsed::Inbound(inbound)) => inbound,
        other => panic!("expected an inbound, got {other:?}"),
    }
}

fn ignored(parsed: Result<Parsed, ParseError>) -> &'static str {
    match parsed {
        Ok(Parsed::Ignored { reason }) => reason,
        other => panic!("expected ignored, got {other:?}"),
    }
}

#[test]
fn commands_in_a_forum_topic() {
    let got = inbound(parse(&update(&group_message("/cynode run pytest -x")), BOT));
    assert_eq!(got.platform, Platform::Telegram);
    assert_eq!(got.delivery_id, "745228001");
    assert_eq!(
        got.thread,
        ThreadRef {
            platform: Platform::Telegram,
            install: "CyNodeBot".into(),
            channel: "-1001234567890".into(),
            thread: Some("5".into()),
            reply_to: Some("77".into()),
        }
    );
    assert_eq!(got.actor, Actor { id: "1234567".into(), name: Some("ada".into()) });
    assert_eq!(got.kind, InboundKind::Command { command: "cynode".into(), text: "run pytest -x".into() });
    assert_eq!(got.reply_handle, None);

    let got = inbound(parse(&update(&group_message("/Cynode@cynodebot status")), "@CyNodeBot"));
    assert_eq!(got.kind, InboundKind::Command { command: "cynode".into(), text: "status".into() });
    assert_eq!(got.thread.install, "CyNodeBot");
    assert_eq!(ignored(parse(&update(&group_message("/cynode@OtherBot status")), BOT)), "command for another bot");
}

#[test]
fn mentions_replies_and_private_chats() {
    let got = inbound(parse(&update(&group_message("@cynodebot what failed in CI?")), BOT));
    assert_eq!(got.kind, InboundKind::Mention { text: "what failed in CI?".into() });

    let mut reply = group_message("and now?");
    reply["reply_to_message"] = json!({"message_id": 70, "from": {"id": 9, "is_bot": true, "first_name": "CyNode", "username": "CyNodeBot"}, "chat": {"id": 1, "type": "supergroup"}, "date": 1});
    assert_eq!(inbound(parse(&update(&reply), BOT)).kind, InboundKind::Mention { text: "and now?".into() });

    let mut private = group_message("summarize the incident");
    private["chat"] = json!({"id": 1_234_567, "type": "private", "first_name": "Ada"});
    private.as_object_mut().unwrap().remove("message_thread_id");
    let got = inbound(parse(&update(&private), BOT));
    assert_eq!(got.kind, InboundKind::Mention { text: "summarize the incident".into() });
    assert_eq!(got.thread.thread, None);
    assert_eq!(got.thread.channel, "1234567");
}

#[test]
fn chatter_bots_edits_and_other_updates_are_ignored() {
    assert_eq!(ignored(parse(&update(&group_message("lunch?")), BOT)), "group message not addressed to the bot");
    let mut from_bot = group_message("@cynodebot hi");
    from_bot["from"]["is_bot"] = json!(true);
    assert_eq!(ignored(parse(&update(&from_bot), BOT)), "message from a bot");
    let mut photo = group_message("");
    photo.as_object_mut().unwrap().remove("text");
    assert_eq!(ignored(parse(&update(&photo), BOT)), "message without text");
    let edited = json!({"update_id": 1, "edited_message": group_message("@cynodebot x")});
    assert_eq!(ignored(parse(edited.to_string().as_bytes(), BOT)), "edited message");
    let poll = json!({"update_id": 2, "poll": {"id": "1"}});
    assert_eq!(ignored(parse(poll.to_string().as_bytes(), BOT)), "unsupported telegram update type");
    let channel_post = json!({"update_id": 3, "channel_post": {"message_id": 1, "chat": {"id": -100, "type": "channel"}, "text": "/cynode x"}});
    assert_eq!(ignored(parse(channel_post.to_string().as_bytes(), BOT)), "unsupported telegram update type");
}

fn callback(data: Option<&str>) -> Vec<u8> {
    let mut query = json!({
        "id": "4382bfdwdsb323b2d9",
        "from": {"id": 1_234_567, "is_bot": false, "first_name": "Ada"},
        "message": group_message("Approve job 42?"),
        "chat_instance": "-1"
    });
    if let Some(data) = data {
        query["data"] = json!(data);
    }
    json!({"update_id": 9, "callback_query": query}).to_string().into_bytes()
}

#[test]
fn callback_query_becomes_an_action() {
    let got = inbound(parse(&callback(Some("approve:42")), BOT));
    assert_eq!(got.delivery_id, "9");
    assert_eq!(
        got.kind,
        InboundKind::Action { action_id: "approve".into(), value: "42".into(), message_ref: Some("77".into()) }
    );
    assert_eq!(got.thread.thread.as_deref(), Some("5"));
    assert_eq!(got.thread.reply_to, None);
    assert_eq!(got.actor, Actor { id: "1234567".into(), name: Some("Ada".into()) });
    assert_eq!(got.reply_handle, Some(ReplyHandle::Telegram { callback_query_id: "4382bfdwdsb323b2d9".into() }));
    assert_eq!(ignored(parse(&callback(None), BOT)), "callback query without data (game)");
}

#[test]
fn malformed_updates_are_errors() {
    assert_eq!(parse(b"{}", BOT), Err(ParseError::MissingField("update_id")));
    assert_eq!(parse(br#"{"update_id":"1"}"#, BOT), Err(ParseError::InvalidField("update_id")));
    assert_eq!(parse(br#"{"update_id":1.5}"#, BOT), Err(ParseError::InvalidField("update_id")));
    assert!(matches!(
        parse(br#"{"update_id":1,"message":{"#, BOT),
        Err(ParseError::Json { category: "truncated", .. })
    ));
    assert!(matches!(parse(b"\xff\xfe", BOT), Err(ParseError::Json { .. })));
    let deep = format!(r#"{{"update_id":1,"message":{}0{}}}"#, "[".repeat(70), "]".repeat(70));
    assert_eq!(parse(deep.as_bytes(), BOT), Err(ParseError::TooDeep { limit: 64 }));
    assert_eq!(
        parse(br#"{"update_id":1,"message":{"text":5,"from":{"id":1}}}"#, BOT),
        Err(ParseError::InvalidField("message"))
    );
    let mut no_chat = group_message("/cynode x");
    no_chat.as_object_mut().unwrap().remove("chat");
    assert_eq!(parse(&update(&no_chat), BOT), Err(ParseError::MissingField("message.chat")));
    let mut no_id = group_message("/cynode x");
    no_id.as_object_mut().unwrap().remove("message_id");
    assert_eq!(parse(&update(&no_id), BOT), Err(ParseError::MissingField("message.message_id")));
}

#[test]
fn the_actor_name_is_the_username_else_first_and_last_name() {
    let name = |from: serde_json::Value| {
        let mut u: serde_json::Value = serde_json::from_slice(&update(&group_message("/cynode status"))).unwrap();
        u["message"]["from"] = from;
        inbound(parse(u.to_string().as_bytes(), BOT)).actor.name
    };
    let full = json!({"id": 7, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace", "username": "ada"});
    assert_eq!(name(full).as_deref(), Some("ada"));
    let no_handle = json!({"id": 7, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace"});
    assert_eq!(name(no_handle).as_deref(), Some("Ada Lovelace"));
    let blank = json!({"id": 7, "is_bot": false, "first_name": "Ada", "username": " "});
    assert_eq!(name(blank).as_deref(), Some("Ada"));
}
