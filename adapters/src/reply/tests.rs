use super::*;
use crate::testing::card;
use crate::{Actor, ApprovalState, compact_action};

#[test]
fn buttons_are_validated_for_every_platform() {
    let b = Button::new("approve", "3f2a9c1d", "Approve", ButtonStyle::Success).unwrap();
    assert_eq!(b.compact(), "approve:3f2a9c1d");
    assert_eq!(b.compact(), compact_action(b.action_id(), b.value()));
    assert_eq!(Button::new("a:b", "v", "L", ButtonStyle::Neutral), Err(ButtonError::InvalidActionId));
    assert_eq!(Button::new("", "v", "L", ButtonStyle::Neutral), Err(ButtonError::InvalidActionId));
    assert_eq!(Button::new("a b", "v", "L", ButtonStyle::Neutral), Err(ButtonError::InvalidActionId));
    assert_eq!(Button::new("a", "v", "  ", ButtonStyle::Neutral), Err(ButtonError::EmptyLabel));
    // 64 bytes is the limit, counted in bytes: "a:" + 62 bytes fits, one more byte does not.
    assert!(Button::new("a", &"x".repeat(62), "L", ButtonStyle::Neutral).is_ok());
    assert_eq!(Button::new("a", &"é".repeat(32), "L", ButtonStyle::Neutral), Err(ButtonError::TooLong { bytes: 66 }));
    // A value may contain the separator: parsers split at the first one.
    assert!(Button::new("a", "x:y", "L", ButtonStyle::Neutral).is_ok());
    let long = Button::new("a", "", &"é".repeat(100), ButtonStyle::Neutral).unwrap();
    assert_eq!(long.label().chars().count(), MAX_LABEL_CHARS);
    assert!(long.label().ends_with('…'));
    assert_eq!(long.compact(), "a");
}

#[test]
fn buttons_are_validated_when_read_back() {
    let b = Button::new("cancel", "j1", "Cancel", ButtonStyle::Danger).unwrap();
    let json = serde_json::to_value(&b).unwrap();
    assert_eq!(serde_json::from_value::<Button>(json.clone()).unwrap(), b);
    let mut bad = json;
    bad["action_id"] = "x:y".into();
    assert!(serde_json::from_value::<Button>(bad).is_err());
}

#[test]
fn replies_dedupe_and_cap_buttons() {
    let b = |a: &str, v: &str| Button::new(a, v, "L", ButtonStyle::Neutral).unwrap();
    let mut reply = Reply::new("x").with_button(b("cancel", "1")).with_button(b("cancel", "1"));
    reply = reply.with_button(b("cancel", "2"));
    assert_eq!(reply.shown_buttons().len(), 2);
    for i in 0..20 {
        reply = reply.with_button(b("logs", &i.to_string()));
    }
    assert_eq!(reply.shown_buttons().len(), MAX_BUTTONS);
    let stored = serde_json::to_string(&reply).unwrap();
    assert_eq!(serde_json::from_str::<Reply>(&stored).unwrap(), reply);
}

#[test]
fn code_blocks_cannot_be_closed_by_their_content() {
    assert_eq!(code_block("a\n```\nb", "sh"), "```sh\na\n``\u{200B}`\nb\n```");
    assert_eq!(code_block("x\n", "bad!tag"), "```\nx\n```");
    assert_eq!(code_block("", ""), "```\n```");
}

#[test]
fn cards_show_buttons_only_while_pending() {
    let pending = card(ApprovalState::Pending { expires_at: None });
    let ids: Vec<String> = pending.buttons().iter().map(Button::compact).collect();
    assert_eq!(ids, ["approve:3f2a9c1d", "deny:3f2a9c1d"]);
    let by = Actor { id: "U0BOSS".into(), name: None };
    for state in [
        ApprovalState::Approved { by: by.clone(), at: 1 },
        ApprovalState::Denied { by, at: 1 },
        ApprovalState::Expired { at: 1 },
    ] {
        assert!(card(state).buttons().is_empty());
    }
    let mut long = pending;
    long.job = "j".repeat(80);
    assert!(long.buttons().is_empty(), "a job id too long to encode gets no buttons");
    let d = Dialect { escape: str::to_owned, mention: display_name, time: time::utc };
    assert!(long.state_text(&d).contains("Reply `approve jjj"));
    assert_eq!(long.access_text(), "network, no GPU");
}
