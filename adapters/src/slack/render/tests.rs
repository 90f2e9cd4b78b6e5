use serde_json::{Value, json};

use super::*;
use crate::testing::{Rng, card, random_reply};
use crate::{Actor, ApprovalState, InboundKind, Parsed, code_block};

fn utf16(s: &str) -> usize {
    s.encode_utf16().count()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// A message's blocks as the JSON Slack receives.
fn json_blocks(message: &SlackMessage) -> Option<Vec<Value>> {
    message.blocks.as_ref().map(|b| b.iter().map(|b| serde_json::to_value(b).unwrap()).collect())
}

/// The Block Kit limits CyNode relies on (the fake Slack server checks them all again).
fn assert_blocks_valid(blocks: &[Value]) {
    assert!(blocks.len() <= MAX_BLOCKS);
    for block in blocks {
        match block["type"].as_str().unwrap() {
            "section" => {
                let text = block["text"]["text"].as_str().unwrap();
                assert!(!text.is_empty() && utf16(text) <= SECTION_TEXT_LIMIT, "{}", utf16(text));
            }
            "actions" => {
                let elements = block["elements"].as_array().unwrap();
                assert!(!elements.is_empty() && elements.len() <= MAX_ACTIONS_ELEMENTS);
                assert!(block["block_id"].as_str().unwrap().len() <= ID_LIMIT);
                let mut ids: Vec<&str> = elements.iter().map(|e| e["action_id"].as_str().unwrap()).collect();
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(ids.len(), elements.len(), "action ids repeat in a block");
                for e in elements {
                    assert!(e["text"]["text"].as_str().unwrap().chars().count() <= BUTTON_TEXT_LIMIT);
                    assert!(e["action_id"].as_str().unwrap().len() <= ID_LIMIT);
                    assert!(e["value"].as_str().unwrap_or_default().len() <= BUTTON_VALUE_LIMIT);
                }
            }
            "context" => {
                let text = block["elements"][0]["text"].as_str().unwrap();
                assert!(utf16(text) <= SECTION_TEXT_LIMIT);
            }
            other => panic!("unexpected block type {other}"),
        }
    }
}

#[test]
fn ten_thousand_lines_fit_and_stay_reachable() {
    let output: String = (0..10_000).map(|i| format!("test_{i} <ok> & fine\n")).collect();
    let reply = Reply::new(code_block(&output, "text"))
        .with_status("✅ Finished `pytest` (exit 0, 12.3 s)")
        .with_footer("10,000 lines");
    let pages = render_pages(&reply);
    assert!(pages.len() > 50);
    let mut all = String::new();
    for page in &pages {
        assert!(utf16(&page.text) <= TEXT_LIMIT, "{}", utf16(&page.text));
        assert!(page.blocks.is_none());
        assert!(!page.text.contains('<'), "text must be escaped");
        all.push_str(&unescape(&page.text));
    }
    assert!(pages[0].text.starts_with("✅ Finished"));
    assert!(pages.last().unwrap().text.ends_with("```\n10,000 lines"));
    for i in [0, 1, 4_999, 9_999] {
        assert!(all.contains(&format!("test_{i} <ok> & fine\n")), "line {i} lost");
    }
    let tail = render_tail(&reply);
    assert!(utf16(&tail.text) <= TEXT_LIMIT);
    assert!(tail.text.contains("earlier lines\n```\ntest_"), "languages are dropped for Slack");
    assert!(pages.iter().all(|p| !p.text.contains("```text")));
    assert!(tail.text.ends_with("test_9999 &lt;ok&gt; &amp; fine\n```\n10,000 lines"));
}

#[test]
fn output_cannot_mention_or_link() {
    let msg = SlackMessage::plain("<!channel> <@U1> <https://x|y> & more");
    assert_eq!(msg.text, "&lt;!channel&gt; &lt;@U1&gt; &lt;https://x|y&gt; &amp; more");
    assert_eq!(SlackMessage::plain(" ").text, "…");
}

#[test]
fn approval_cards_are_valid_block_kit_and_round_trip_through_the_parser() {
    let reply = Reply::new("")
        .with_status("⏸ Job `3f2a9c1d` is waiting for approval")
        .with_approval(card(ApprovalState::Pending { expires_at: Some(1_700_000_000) }));
    let pages = render_pages(&reply);
    assert_eq!(pages.len(), 1);
    let blocks = json_blocks(&pages[0]).unwrap();
    assert_blocks_valid(&blocks);
    assert_eq!(pages[0].text, "🔐 Approval needed: job 3f2a9c1d");
    let body = serde_json::to_string(&blocks).unwrap();
    assert!(body.contains("<@U0ADA>"));
    assert!(body.contains("&lt;!channel&gt; &amp; done"), "the command is escaped");
    assert!(body.contains("<!date^1700000000^{date_short_pretty} at {time}|2023-11-14 22:13 UTC>"));
    let actions = blocks.iter().find(|b| b["type"] == "actions").unwrap();
    for (i, (id, job)) in [("approve", "3f2a9c1d"), ("deny", "3f2a9c1d")].into_iter().enumerate() {
        let element = &actions["elements"][i];
        let payload = json!({
            "type": "block_actions",
            "user": {"id": "U0BOSS", "username": "boss", "team_id": "T1"},
            "team": {"id": "T1"}, "channel": {"id": "C1"}, "trigger_id": "1.2.3",
            "container": {"type": "message", "message_ts": "200.1", "channel_id": "C1"},
            "actions": [{"action_id": element["action_id"], "block_id": actions["block_id"],
                         "value": element["value"], "type": "button", "action_ts": "1.1"}]
        });
        let form =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
        let Ok(Parsed::Inbound(inbound)) =
            crate::slack::parse(Some("application/x-www-form-urlencoded"), form.as_bytes())
        else {
            panic!("button {i} does not parse");
        };
        let InboundKind::Action { action_id, value, .. } = inbound.kind else { panic!() };
        assert_eq!((action_id.as_str(), value.as_str()), (id, job));
    }
    let decided = Reply::new("").with_approval(card(ApprovalState::Approved {
        by: Actor { id: "U0BOSS".into(), name: None },
        at: 1_700_000_060,
    }));
    let blocks = json_blocks(&render_tail(&decided)).unwrap();
    assert_blocks_valid(&blocks);
    assert!(blocks.iter().all(|b| b["type"] != "actions"), "a decided card has no buttons");
    assert!(serde_json::to_string(&blocks).unwrap().contains("✅ Approved by <@U0BOSS>"));
}

#[test]
fn random_replies_stay_within_limits() {
    for seed in 0..150 {
        let reply = random_reply(&mut Rng(seed));
        let mut messages = render_pages(&reply);
        messages.push(render_tail(&reply));
        for m in &messages {
            assert!(utf16(&m.text) <= TEXT_LIMIT && !m.text.is_empty(), "seed {seed}");
            if let Some(blocks) = json_blocks(m) {
                assert_blocks_valid(&blocks);
            }
        }
    }
}
