use serde_json::json;

use super::*;

fn sample() -> Inbound {
    Inbound {
        platform: Platform::Discord,
        delivery_id: "1180".into(),
        thread: ThreadRef {
            platform: Platform::Discord,
            install: "1170".into(),
            channel: "1110".into(),
            thread: Some("1300".into()),
            reply_to: None,
        },
        actor: Actor { id: "42".into(), name: Some("Ada".into()) },
        kind: InboundKind::Command { command: "cynode".into(), text: "run echo hi".into() },
        reply_handle: Some(ReplyHandle::Discord { application_id: "1170".into(), token: "interaction-token".into() }),
    }
}

#[test]
fn platforms_have_stable_names() {
    for (p, name) in [
        (Platform::Slack, "slack"),
        (Platform::Discord, "discord"),
        (Platform::Telegram, "telegram"),
        (Platform::Webhook, "webhook"),
    ] {
        assert_eq!(p.as_str(), name);
        assert_eq!(p.to_string(), name);
        assert_eq!(serde_json::to_value(p).unwrap(), json!(name));
        assert_eq!(serde_json::from_value::<Platform>(json!(name)).unwrap(), p);
    }
}

#[test]
fn inbound_round_trips_through_json_with_a_stable_shape() {
    let inbound = sample();
    let stored = serde_json::to_value(&inbound).unwrap();
    assert_eq!(stored["kind"], json!({"type": "command", "command": "cynode", "text": "run echo hi"}));
    assert_eq!(
        stored["reply_handle"],
        json!({"platform": "discord", "application_id": "1170", "token": "interaction-token"})
    );
    assert_eq!(stored["thread"]["platform"], json!("discord"));
    assert_eq!(serde_json::from_value::<Inbound>(stored).unwrap(), inbound);

    let webhook = InboundKind::Webhook { event: None, payload: json!({"type": "x", "n": [1, 2]}) };
    let text = serde_json::to_string(&webhook).unwrap();
    assert_eq!(serde_json::from_str::<InboundKind>(&text).unwrap(), webhook);
}

#[test]
fn debug_output_redacts_reply_credentials() {
    let shown = format!("{:?}", sample());
    assert!(!shown.contains("interaction-token"), "{shown}");
    assert!(shown.contains("<redacted>"));
    let slack = ReplyHandle::Slack {
        response_url: Some("https://hooks.slack.com/commands/T1/2/secret".into()),
        trigger_id: Some("13345224609.738474920".into()),
    };
    let shown = format!("{slack:?}");
    assert!(!shown.contains("hooks.slack.com") && shown.contains("13345224609"), "{shown}");
}

#[test]
fn compact_actions_round_trip() {
    assert_eq!(compact_action("approve", "job-42"), "approve:job-42");
    assert_eq!(compact_action("help", ""), "help");
    assert_eq!(split_compact_action("approve:job-42"), ("approve", "job-42"));
    assert_eq!(split_compact_action("pick:a:b"), ("pick", "a:b"));
    assert_eq!(split_compact_action("help"), ("help", ""));
    assert_eq!(split_compact_action(""), ("", ""));
}
