use serde_json::json;

use super::*;
use crate::{Actor, Inbound, InboundKind, Platform, ReplyHandle};

const JSON: Option<&str> = Some("application/json");
const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

fn event(event: serde_json::Value) -> Vec<u8> {
    json!({
        "token": "XXYYZZ",
        "team_id": "T123ABC456",
        "api_app_id": "A123ABC456",
        "event": event,
        "type": "event_callback",
        "event_id": "Ev123ABC456",
        "event_time": 1_515_449_522,
        "authorizations": [{"enterprise_id": null, "team_id": "T123ABC456", "user_id": "UBOT", "is_bot": true}]
    })
    .to_string()
    .into_bytes()
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

const SLASH: &[u8] = b"token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&team_domain=example&enterprise_id=E0001&enterprise_name=Globular%20Construct%20Inc&channel_id=C2147483705&channel_name=test&user_id=U2147483697&user_name=Steve&command=/cynode&text=run+echo+hi&response_url=https://hooks.slack.com/commands/1234/5678&trigger_id=13345224609.738474920.8088930838d88f008e0&api_app_id=A123456";

fn interaction(payload: &serde_json::Value) -> Vec<u8> {
    let encoded: String =
        url::form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
    encoded.into_bytes()
}

fn block_actions() -> serde_json::Value {
    json!({
        "type": "block_actions",
        "user": {"id": "U1", "username": "ada", "name": "ada", "team_id": "T1"},
        "api_app_id": "A1", "token": "x", "trigger_id": "1.2.abc",
        "container": {"type": "message", "message_ts": "200.1", "channel_id": "C1", "is_ephemeral": false},
        "team": {"id": "T1", "domain": "d"},
        "enterprise": null,
        "channel": {"id": "C1", "name": "general"},
        "message": {"type": "message", "ts": "200.1", "thread_ts": "100.0", "text": "Approve?"},
        "response_url": "https://hooks.slack.com/actions/T1/1/x",
        "actions": [{"action_id": "approve", "block_id": "b", "text": {"type": "plain_text", "text": "Approve"},
                     "value": "job-42", "type": "button", "action_ts": "1548426417.840180"}]
    })
}

#[test]
fn install_hint_reads_all_three_body_kinds() {
    let hint = install_hint(JSON, &event(json!({"type": "app_mention"}))).unwrap();
    assert_eq!(hint.api_app_id.as_deref(), Some("A123ABC456"));
    assert_eq!(hint.team_id.as_deref(), Some("T123ABC456"));
    let hint = install_hint(FORM, SLASH).unwrap();
    assert_eq!(
        hint,
        InstallHint {
            api_app_id: Some("A123456".into()),
            team_id: Some("T0001".into()),
            enterprise_id: Some("E0001".into()),
        }
    );
    let hint = install_hint(None, &interaction(&block_actions())).unwrap();
    assert_eq!((hint.api_app_id.as_deref(), hint.team_id.as_deref()), (Some("A1"), Some("T1")));
    assert_eq!(install_hint(JSON, b"{\"x\":1}"), None);
    assert_eq!(install_hint(JSON, b"{\"team_id\""), None);
    assert_eq!(install_hint(FORM, b"team_id=T1&team_id=T2"), None);
    assert_eq!(install_hint(Some("text/plain"), b"team_id=T1"), None);
}

mod events;
mod forms;
