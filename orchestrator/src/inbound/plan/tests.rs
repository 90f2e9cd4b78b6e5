use cynode_adapters::{Actor, Inbound, InboundKind, Platform, ThreadRef};
use serde_json::json;
use uuid::Uuid;

use super::{Prepared, classify, clean, plan, sanitize};
use crate::inbound::{NewInbound, Retry};

fn inbound(platform: Platform, kind: InboundKind) -> Inbound {
    Inbound {
        platform,
        delivery_id: "Ev1".into(),
        thread: ThreadRef {
            platform,
            install: "T1".into(),
            channel: "C1".into(),
            thread: Some("1.5".into()),
            reply_to: Some("1.6".into()),
        },
        actor: Actor { id: "U1".into(), name: None },
        kind,
        reply_handle: None,
    }
}

fn command(platform: Platform, name: &str, text: &str) -> (String, &'static str) {
    let p = classify(&inbound(platform, InboundKind::Command { command: name.into(), text: text.into() }));
    (p.text, p.state)
}

#[test]
fn slash_commands_become_command_text() {
    assert_eq!(command(Platform::Slack, "cynode", " run echo hi "), ("run echo hi".into(), "received"));
    assert_eq!(command(Platform::Discord, "status", ""), ("status".into(), "received"));
    assert_eq!(command(Platform::Telegram, "Run", "ls"), ("run ls".into(), "received"));
    assert_eq!(command(Platform::Slack, "cn", "jobs"), ("jobs".into(), "received"));
    assert_eq!(command(Platform::Telegram, "start", ""), ("help".into(), "received"));
    assert_eq!(command(Platform::Telegram, "weather", "paris"), ("/weather paris".into(), "received"));
}

#[test]
fn buttons_map_to_commands_and_unknown_ones_are_answered() {
    let action = |id: &str, value: &str| {
        classify(&inbound(
            Platform::Discord,
            InboundKind::Action { action_id: id.into(), value: value.into(), message_ref: None },
        ))
    };
    let p = action("approve", "3f2a9c1d");
    assert_eq!((p.text.as_str(), p.state), ("approve 3f2a9c1d", "received"));
    assert_eq!(action("cancel", "ab12cd34").text, "cancel ab12cd34");
    let p = action("approve", "");
    assert_eq!(p.state, "answered");
    let p = action("frobnicate", "x");
    assert_eq!(p.state, "answered");
    assert!(p.reply.as_deref().is_some_and(|r| r.contains("`frobnicate`")), "{p:?}");
}

#[test]
fn webhooks_run_their_command_field_or_are_only_recorded() {
    let hook =
        |payload| plan(&inbound(Platform::Webhook, InboundKind::Webhook { event: Some("push".into()), payload }));
    let p = hook(json!({ "command": "run make test" }));
    assert_eq!((p.text.as_str(), p.state), ("run make test", "received"));
    assert_eq!(p.args, json!({ "event": "push" }));
    for payload in [json!({ "ref": "main" }), json!({ "command": 3 }), json!({ "command": "  " }), json!([1])] {
        let p = hook(payload);
        assert_eq!((p.state, p.reply.as_deref()), ("answered", None));
    }
}

#[test]
fn nul_characters_are_replaced_everywhere() {
    assert_eq!(clean("a\0b"), "a\u{fffd}b");
    let mut v = json!({ "k\0": ["x\0", { "y": "\0" }], "n": 1 });
    sanitize(&mut v);
    assert_eq!(v, json!({ "k\u{fffd}": ["x\u{fffd}", { "y": "\u{fffd}" }], "n": 1 }));
    let mut i = inbound(Platform::Slack, InboundKind::Mention { text: "run echo \0".into() });
    i.thread.channel = "C\0".into();
    let p =
        Prepared::new(NewInbound { install_id: Uuid::nil(), inbound: i, retry: Retry::default(), replay_key: None });
    assert_eq!(p.task.text, "run echo \u{fffd}");
    assert_eq!(p.channel, "C\u{fffd}");
    assert!(!p.payload.to_string().contains("\\u0000"), "{}", p.payload);
}

#[test]
fn conversations_keep_the_thread_but_not_the_message() {
    let i = inbound(Platform::Slack, InboundKind::Mention { text: "help".into() });
    let p =
        Prepared::new(NewInbound { install_id: Uuid::nil(), inbound: i, retry: Retry::default(), replay_key: None });
    assert_eq!((p.channel.as_str(), p.thread.as_str()), ("C1", "1.5"));
    assert_eq!(p.thread_ref["reply_to"], json!(null));
    assert_eq!(p.thread_ref["thread"], json!("1.5"));
    assert_eq!(p.payload["thread"]["reply_to"], json!("1.6"));
    assert_eq!((p.kind, p.source, p.requester.as_str()), ("mention", "chat", "U1"));
}

#[test]
fn help_and_bad_input_are_answered_at_once() {
    let mention = |text: &str| plan(&inbound(Platform::Slack, InboundKind::Mention { text: text.into() }));
    let help = mention("help");
    assert_eq!((help.state, help.command), ("answered", "help"));
    assert!(help.reply.as_deref().is_some_and(|r| r.starts_with("Commands:")), "{help:?}");
    let bad = mention("run --frobnicate ls");
    assert_eq!((bad.state, bad.command), ("answered", "invalid"));
    assert!(bad.reply.as_deref().is_some_and(|r| r.contains("unknown option")), "{bad:?}");
    let unknown =
        plan(&inbound(Platform::Telegram, InboundKind::Command { command: "weather".into(), text: String::new() }));
    assert!(unknown.reply.as_deref().is_some_and(|r| r.starts_with("I don't know `/weather`")), "{unknown:?}");
    for text in ["run echo hi", "status", "what is 2+2?", "approve 3f2a9c1d"] {
        let p = mention(text);
        assert_eq!((p.state, p.reply), ("received", None), "{text}");
    }
}
