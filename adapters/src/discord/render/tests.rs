use serde_json::json;

use super::*;
use crate::testing::{Rng, card, random_reply};
use crate::{ApprovalState, InboundKind, Parsed, code_block};

fn assert_valid(m: &DiscordMessage) {
    assert!(!m.content.is_empty());
    assert!(m.content.chars().count() <= CONTENT_LIMIT);
    assert_eq!(m.allowed_mentions, json!({"parse": []}));
    let mut total = m.components.len();
    let mut ids = Vec::new();
    for row in &m.components {
        let buttons = row["components"].as_array().unwrap();
        assert!(!buttons.is_empty() && buttons.len() <= MAX_ROW_COMPONENTS);
        total += buttons.len();
        for b in buttons {
            let id = b["custom_id"].as_str().unwrap();
            assert!((1..=CUSTOM_ID_LIMIT).contains(&id.chars().count()));
            assert!(b["label"].as_str().unwrap().chars().count() <= LABEL_LIMIT);
            ids.push(id.to_owned());
        }
    }
    assert!(total <= MAX_COMPONENTS);
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "custom ids repeat");
}

#[test]
fn ten_thousand_lines_fit() {
    let output: String = (0..10_000).map(|i| format!("line {i} @everyone\n")).collect();
    let reply = Reply::new(code_block(&output, "")).with_status("✅ done");
    let pages = render_pages(&reply);
    assert!(pages.len() > 100);
    pages.iter().for_each(assert_valid);
    let joined: String = pages.iter().map(|p| p.content.as_str()).collect();
    assert!(joined.contains("line 0 @everyone\n") && joined.contains("line 9999 @everyone"));
    let tail = render_tail(&reply);
    assert_valid(&tail);
    assert!(tail.content.starts_with("✅ done\n… "));
    assert!(tail.content.ends_with("line 9999 @everyone\n```"));
}

#[test]
fn approval_buttons_round_trip_through_the_parser() {
    let reply = Reply::new("").with_approval(card(ApprovalState::Pending { expires_at: None }));
    let pages = render_pages(&reply);
    assert_eq!(pages.len(), 1);
    assert_valid(&pages[0]);
    assert!(pages[0].content.contains("Requested by ada"), "{}", pages[0].content);
    let buttons = pages[0].components[0]["components"].as_array().unwrap();
    assert_eq!(buttons[0]["style"], 3);
    assert_eq!(buttons[1]["style"], 4);
    for (b, want) in buttons.iter().zip(["approve", "deny"]) {
        let click = json!({
            "id": "1", "application_id": "2", "type": 3, "token": "t", "channel_id": "3",
            "member": {"user": {"id": "4", "username": "boss"}},
            "message": {"id": "5"},
            "data": {"custom_id": b["custom_id"], "component_type": 2}
        });
        let Ok(Parsed::Inbound(inbound)) = crate::discord::parse(click.to_string().as_bytes()) else { panic!() };
        let InboundKind::Action { action_id, value, message_ref } = inbound.kind else { panic!() };
        assert_eq!((action_id.as_str(), value.as_str()), (want, "3f2a9c1d"));
        assert_eq!(message_ref.as_deref(), Some("5"));
    }
    let mut requester = card(ApprovalState::Expired { at: 1_700_000_000 });
    requester.requester.id = "1000000000000000001".into();
    let done = render_tail(&Reply::new("").with_approval(requester));
    assert!(done.components.is_empty());
    assert!(done.content.contains("<@1000000000000000001>"));
    assert!(done.content.contains("⌛ Expired at <t:1700000000:f>"));
}

#[test]
fn a_card_that_does_not_fit_gets_its_own_message() {
    let body = code_block(&"x".repeat(1_900), "");
    let reply = Reply::new(body).with_approval(card(ApprovalState::Pending { expires_at: None }));
    let pages = render_pages(&reply);
    assert_eq!(pages.len(), 2);
    assert!(pages[0].components.is_empty());
    assert!(pages[1].content.starts_with("🔐 Approval needed"));
    assert_eq!(pages[1].components.len(), 1);
    assert_eq!(DiscordMessage::plain("hi").ephemeral().flags, Some(64));
}

#[test]
fn random_replies_stay_within_limits() {
    for seed in 0..150 {
        let reply = random_reply(&mut Rng(seed));
        render_pages(&reply).iter().for_each(assert_valid);
        assert_valid(&render_tail(&reply));
    }
}
