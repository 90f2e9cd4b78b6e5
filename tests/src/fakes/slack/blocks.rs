//! Block Kit validation, with Slack's limits: 50 blocks, unique `block_id`s of at most 255
//! characters, `section` text 3,000 (fields 10 × 2,000), `header` 150, `markdown` 12,000,
//! `context` 10 elements, `actions` 1–25 elements with unique `action_id`s (≤ 255), buttons with
//! text ≤ 75, `value` ≤ 2,000, `url` ≤ 3,000 and style `primary` or `danger`.
//!
//! Errors read like Slack's `response_metadata.messages`:
//! `[ERROR] must be less than 51 items [json-pointer:/blocks]`.

use std::collections::HashSet;

use serde_json::Value;

use crate::fakes::params::chars;

/// The most blocks in a message.
pub const MAX_BLOCKS: usize = 50;
/// The most elements in an `actions` block.
pub const MAX_ACTIONS: usize = 25;

struct Check {
    errors: Vec<String>,
}

impl Check {
    fn fail(&mut self, what: &str, path: &str) {
        self.errors.push(format!("[ERROR] {what} [json-pointer:/blocks{path}]"));
    }

    /// A text object: `plain_text` or `mrkdwn` (or only `plain_text` when `plain_only`), text
    /// 1..=`max` characters.
    fn text(&mut self, v: &Value, max: usize, plain_only: bool, path: &str) {
        let kind = v["type"].as_str();
        if !(kind == Some("plain_text") || (!plain_only && kind == Some("mrkdwn"))) {
            self.fail("must be a valid text object type", &format!("{path}/type"));
        }
        match v["text"].as_str() {
            Some(t) if !t.is_empty() && chars(t) <= max => {}
            Some("") => self.fail("must be more than 0 characters", &format!("{path}/text")),
            Some(_) => self.fail(&format!("must be less than {} characters", max + 1), &format!("{path}/text")),
            None => self.fail("must provide a string", &format!("{path}/text")),
        }
    }

    fn string_max(&mut self, v: &Value, max: usize, path: &str) {
        match v {
            Value::Null => {}
            Value::String(s) if chars(s) <= max && !s.is_empty() => {}
            Value::String(_) => self.fail(&format!("must be 1 to {max} characters"), path),
            _ => self.fail("must provide a string", path),
        }
    }

    fn element(&mut self, e: &Value, path: &str) {
        self.string_max(&e["action_id"], 255, &format!("{path}/action_id"));
        match e["type"].as_str() {
            Some("button") => {
                self.text(&e["text"], 75, true, &format!("{path}/text"));
                self.string_max(&e["value"], 2_000, &format!("{path}/value"));
                self.string_max(&e["url"], 3_000, &format!("{path}/url"));
                if !matches!(e["style"].as_str(), None | Some("primary" | "danger")) {
                    self.fail("must be one of primary, danger", &format!("{path}/style"));
                }
            }
            Some(_) => {}
            None => self.fail("must provide an element type", &format!("{path}/type")),
        }
    }

    fn block(&mut self, b: &Value, path: &str) {
        match b["type"].as_str() {
            Some("section") => {
                let has_text = !b["text"].is_null();
                if has_text {
                    self.text(&b["text"], 3_000, false, &format!("{path}/text"));
                }
                match &b["fields"] {
                    Value::Null if !has_text => self.fail("must provide either text or fields", path),
                    Value::Null => {}
                    Value::Array(f) if f.len() <= 10 && !f.is_empty() => {
                        for (i, field) in f.iter().enumerate() {
                            self.text(field, 2_000, false, &format!("{path}/fields/{i}"));
                        }
                    }
                    _ => self.fail("must be 1 to 10 items", &format!("{path}/fields")),
                }
                if !b["accessory"].is_null() {
                    self.element(&b["accessory"], &format!("{path}/accessory"));
                }
            }
            Some("header") => self.text(&b["text"], 150, true, &format!("{path}/text")),
            Some("divider") => {}
            Some("markdown") => self.string_max(&b["text"], 12_000, &format!("{path}/text")),
            Some("context") => match b["elements"].as_array() {
                Some(els) if !els.is_empty() && els.len() <= 10 => {
                    for (i, e) in els.iter().enumerate() {
                        if e["type"] != "image" {
                            self.text(e, 3_000, false, &format!("{path}/elements/{i}"));
                        }
                    }
                }
                _ => self.fail("must be 1 to 10 items", &format!("{path}/elements")),
            },
            Some("actions") => match b["elements"].as_array() {
                Some(els) if !els.is_empty() && els.len() <= MAX_ACTIONS => {
                    let mut ids = HashSet::new();
                    for (i, e) in els.iter().enumerate() {
                        self.element(e, &format!("{path}/elements/{i}"));
                        if let Some(id) = e["action_id"].as_str()
                            && !ids.insert(id)
                        {
                            self.fail("action_id must be unique in a block", &format!("{path}/elements/{i}/action_id"));
                        }
                    }
                }
                _ => self.fail(&format!("must be 1 to {MAX_ACTIONS} items"), &format!("{path}/elements")),
            },
            Some("image" | "rich_text" | "input" | "file" | "video") => {}
            Some(_) => self.fail("unsupported block type", &format!("{path}/type")),
            None => self.fail("must provide a block type", &format!("{path}/type")),
        }
    }
}

/// Checks a `blocks` value against the Block Kit limits.
///
/// # Errors
///
/// Slack-style messages, one per problem found.
pub fn validate(blocks: &Value) -> Result<(), Vec<String>> {
    let mut check = Check { errors: Vec::new() };
    let Some(list) = blocks.as_array() else {
        check.fail("must be an array", "");
        return Err(check.errors);
    };
    if list.len() > MAX_BLOCKS {
        check.fail(&format!("must be less than {} items", MAX_BLOCKS + 1), "");
    }
    let mut block_ids = HashSet::new();
    for (i, block) in list.iter().enumerate() {
        let path = format!("/{i}");
        check.string_max(&block["block_id"], 255, &format!("{path}/block_id"));
        if let Some(id) = block["block_id"].as_str()
            && !block_ids.insert(id)
        {
            check.fail("block_id must be unique", &format!("{path}/block_id"));
        }
        check.block(block, &path);
    }
    if check.errors.is_empty() { Ok(()) } else { Err(check.errors) }
}
