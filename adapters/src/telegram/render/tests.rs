use serde_json::json;

use super::*;
use crate::testing::{Rng, card, random_reply};
use crate::{ApprovalState, InboundKind, Parsed, code_block};

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

fn assert_valid(m: &TelegramMessage) {
    let len = utf16(&m.text);
    assert!((1..=TEXT_LIMIT).contains(&len), "{len}");
    assert_eq!(m.text, m.text.trim());
    for e in &m.entities {
        assert!(e.length > 0 && e.offset + e.length <= len, "{e:?} in {len}");
    }
    for row in m.reply_markup.iter().flat_map(|k| &k.inline_keyboard) {
        for b in row {
            assert!((1..=CALLBACK_DATA_LIMIT).contains(&b.callback_data.len()));
            assert!(!b.text.is_empty());
        }
    }
}

#[test]
fn entities_replace_code_markers() {
    let (text, entities) = to_entities("Run `ls`:\n```sh\nfile 🎉\nb\n```\ndone `x");
    assert_eq!(text, "Run ls:\nfile 🎉\nb\ndone `x");
    let got: Vec<(&str, usize, usize, Option<&str>)> =
        entities.iter().map(|e| (e.kind, e.offset, e.length, e.language.as_deref())).collect();
    assert_eq!(got, [("code", 4, 2, None), ("pre", 8, 9, Some("sh"))]);
    let (text, entities) = to_entities("\n```\n  code\n```\n\n");
    assert_eq!(text, "code");
    assert_eq!((entities[0].offset, entities[0].length), (0, 4));
    assert_eq!(to_entities("``no`` ```"), ("``no`` ```".to_owned(), Vec::new()));
    assert_eq!(to_entities("```\n```").0, "");
}

#[test]
fn ten_thousand_lines_fit() {
    let output: String = (0..10_000).map(|i| format!("😀 line {i}\n")).collect();
    let reply = Reply::new(code_block(&output, "log")).with_footer("full output: `cynode logs 3f2a9c1d`");
    let pages = render_pages(&reply);
    assert!(pages.len() > 30);
    pages.iter().for_each(assert_valid);
    assert!(pages.iter().all(|p| p.entities.iter().any(|e| e.kind == "pre")));
    let tail = render_tail(&reply);
    assert_valid(&tail);
    assert!(tail.text.ends_with("😀 line 9999\nfull output: cynode logs 3f2a9c1d"));
}

#[test]
fn approval_keyboard_round_trips_through_the_parser() {
    let reply = Reply::new("")
        .with_status("⏸ waiting")
        .with_approval(card(ApprovalState::Pending { expires_at: Some(1_700_000_000) }));
    let msg = render_tail(&reply);
    assert_valid(&msg);
    assert!(msg.text.contains("Expires 2023-11-14 22:13 UTC"));
    let row = &msg.reply_markup.as_ref().unwrap().inline_keyboard[0];
    assert_eq!(row[0].style, Some("success"));
    for (b, want) in row.iter().zip(["approve", "deny"]) {
        let update = json!({"update_id": 9, "callback_query": {
            "id": "q1", "from": {"id": 7, "is_bot": false, "first_name": "B"},
            "message": {"message_id": 55, "chat": {"id": -100, "type": "supergroup"}, "date": 1},
            "data": b.callback_data, "chat_instance": "c"}});
        let Ok(Parsed::Inbound(inbound)) = crate::telegram::parse(update.to_string().as_bytes(), "bot") else {
            panic!()
        };
        let InboundKind::Action { action_id, value, .. } = inbound.kind else { panic!() };
        assert_eq!((action_id.as_str(), value.as_str()), (want, "3f2a9c1d"));
    }
    let json = serde_json::to_value(&msg).unwrap();
    assert_eq!(json["reply_markup"]["inline_keyboard"][0][1]["callback_data"], "deny:3f2a9c1d");
    let decided = render_pages(&Reply::new("").with_approval(card(ApprovalState::Expired { at: 0 })));
    assert!(decided[0].reply_markup.is_none());
    assert!(serde_json::to_value(&decided[0]).unwrap().get("reply_markup").is_none());
}

#[test]
fn random_replies_stay_within_limits() {
    for seed in 0..150 {
        let reply = random_reply(&mut Rng(seed));
        render_pages(&reply).iter().for_each(assert_valid);
        assert_valid(&render_tail(&reply));
    }
}
