//! Message body checks with Discord's error shapes: `50035 Invalid Form Body` with an `errors`
//! tree, `50006 Cannot send an empty message`.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::fakes::params::{Params, chars};

/// The longest `content`.
pub const CONTENT_LIMIT: usize = 2_000;
/// Flags a message may carry: suppress embeds, ephemeral, suppress notifications.
const SUPPRESS_EMBEDS: u64 = 1 << 2;
const EPHEMERAL: u64 = 1 << 6;
const SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;

/// A refused request: HTTP status and Discord's error body.
pub(super) type Failure = (u16, Value);

/// The message fields the fake keeps.
pub(super) struct Fields {
    pub(super) content: Option<String>,
    pub(super) components: Option<Value>,
    pub(super) flags: Option<u64>,
    pub(super) embeds: bool,
}

/// Collects errors into Discord's nested `errors` object.
#[derive(Default)]
struct Errors(Map<String, Value>);

impl Errors {
    fn add(&mut self, path: &[&str], code: &str, message: &str) {
        let mut node = &mut self.0;
        for key in path {
            node = node.entry((*key).to_owned()).or_insert_with(|| json!({})).as_object_mut().expect("object node");
        }
        let list = node.entry("_errors").or_insert_with(|| json!([]));
        if let Some(list) = list.as_array_mut() {
            list.push(json!({"code": code, "message": message}));
        }
    }
}

/// Checks a create or edit body. `ephemeral_ok` allows the ephemeral flag (follow-ups).
pub(super) fn fields(p: &Params, ephemeral_ok: bool) -> Result<Fields, Failure> {
    let mut errors = Errors::default();
    let content = match p.str("content") {
        Ok(c) => c.map(str::to_owned),
        Err(()) => {
            errors.add(&["content"], "BASE_TYPE_STRING", "Must be a string.");
            None
        }
    };
    if content.as_deref().is_some_and(|c| chars(c) > CONTENT_LIMIT) {
        errors.add(&["content"], "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.");
    }
    let components = p.structured("components").unwrap_or_else(|()| {
        errors.add(&["components"], "BASE_TYPE_ARRAY", "Must be an array.");
        None
    });
    if let Some(c) = &components {
        check_components(c, &mut errors);
    }
    let flags = p.int("flags").unwrap_or_else(|()| {
        errors.add(&["flags"], "NUMBER_TYPE_COERCE", "Value is not int.");
        None
    });
    let allowed = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | if ephemeral_ok { EPHEMERAL } else { 0 };
    let flags = flags.map(|f| u64::try_from(f).unwrap_or(u64::MAX));
    if flags.is_some_and(|f| f & !allowed != 0) {
        errors.add(&["flags"], "MESSAGE_INVALID_FLAGS", "Invalid flags.");
    }
    match p.structured("allowed_mentions") {
        Ok(Some(Value::Object(m))) => {
            let parse = m.get("parse").and_then(Value::as_array).cloned().unwrap_or_default();
            if parse.iter().any(|v| !matches!(v.as_str(), Some("roles" | "users" | "everyone"))) {
                errors.add(
                    &["allowed_mentions", "parse"],
                    "BASE_TYPE_CHOICES",
                    "Value must be one of roles, users, everyone.",
                );
            }
        }
        Ok(None) => {}
        _ => errors.add(&["allowed_mentions"], "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType."),
    }
    let embeds = match p.structured("embeds") {
        Ok(Some(Value::Array(e))) if e.len() <= 10 => !e.is_empty(),
        Ok(None) => false,
        _ => {
            errors.add(&["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.");
            false
        }
    };
    if !errors.0.is_empty() {
        return Err((400, json!({"message": "Invalid Form Body", "code": 50_035, "errors": errors.0})));
    }
    Ok(Fields { content, components, flags, embeds })
}

/// The error for a message that would show nothing.
pub(super) fn empty() -> Failure {
    (400, json!({"message": "Cannot send an empty message", "code": 50_006}))
}

fn check_components(components: &Value, errors: &mut Errors) {
    let Some(rows) = components.as_array() else {
        errors.add(&["components"], "BASE_TYPE_ARRAY", "Must be an array.");
        return;
    };
    if rows.len() > 5 {
        errors.add(&["components"], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.");
    }
    let mut total = rows.len();
    let mut ids = HashSet::new();
    for (r, row) in rows.iter().enumerate() {
        let r = r.to_string();
        if row["type"] != 1 {
            errors.add(
                &["components", &r, "type"],
                "UNION_TYPE_CHOICES",
                "Value of field \"type\" must be one of (1,).",
            );
            continue;
        }
        let children = row["components"].as_array().map_or(&[][..], Vec::as_slice);
        if children.is_empty() || children.len() > 5 {
            errors.add(&["components", &r, "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.");
        }
        total += children.len();
        for (c, child) in children.iter().enumerate() {
            let c = c.to_string();
            let path = ["components", &r, "components", &c];
            check_child(child, &path, errors, &mut ids);
        }
    }
    if total > 40 {
        errors.add(&["components"], "BASE_TYPE_MAX_LENGTH", "Must be 40 or fewer in length.");
    }
}

fn check_child(child: &Value, path: &[&str; 4], errors: &mut Errors, ids: &mut HashSet<String>) {
    let at = |field: &'static str| [path[0], path[1], path[2], path[3], field];
    let custom_id = child["custom_id"].as_str();
    let is_link = child["type"] == 2 && child["style"] == 5;
    match child["type"].as_u64() {
        Some(2) => {
            if !matches!(child["style"].as_u64(), Some(1..=6)) {
                errors.add(&at("style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}.");
            }
            match child["label"].as_str() {
                Some(l) if chars(l) > 80 => {
                    errors.add(&at("label"), "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.")
                }
                None if child["emoji"].is_null() => {
                    errors.add(&at("label"), "BASE_TYPE_REQUIRED", "This field is required")
                }
                _ => {}
            }
            if is_link && (child["url"].as_str().is_none() || custom_id.is_some()) {
                errors.add(
                    &at("url"),
                    "BUTTON_COMPONENT_URL_REQUIRED",
                    "A url is required and custom_id is not allowed",
                );
            }
        }
        Some(3 | 5..=8) => {}
        _ => {
            errors.add(&at("type"), "UNION_TYPE_CHOICES", "Value of field \"type\" must be one of (2, 3, 5, 6, 7, 8).")
        }
    }
    if is_link {
        return;
    }
    match custom_id {
        Some(id) if (1..=100).contains(&chars(id)) => {
            if !ids.insert(id.to_owned()) {
                errors.add(
                    &at("custom_id"),
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                );
            }
        }
        Some(_) => errors.add(&at("custom_id"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."),
        None => errors.add(&at("custom_id"), "BASE_TYPE_REQUIRED", "This field is required"),
    }
}
