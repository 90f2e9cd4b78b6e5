//! Flattening application command options into one line of text.

use serde_json::Value;

use super::model::CommandOption;

const SUB_COMMAND: u64 = 1;
const SUB_COMMAND_GROUP: u64 = 2;
const BOOLEAN: u64 = 5;

/// Options whose value is the free text of the command rather than a named flag.
const POSITIONAL: [&str; 7] = ["text", "command", "cmd", "prompt", "args", "input", "id"];

/// Flattens options: subcommand names in order, then `--flag` for true booleans and
/// `--name value` for other named options, then the values of free-text options.
pub(super) fn flatten(options: &[CommandOption]) -> String {
    let mut words = Vec::new();
    flatten_into(options, &mut words);
    words.join(" ")
}

fn flatten_into(options: &[CommandOption], words: &mut Vec<String>) {
    let mut flags = Vec::new();
    let mut positional = Vec::new();
    let mut nested: Option<&[CommandOption]> = None;
    for option in options {
        let Some(name) = option.name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        match option.kind {
            Some(SUB_COMMAND | SUB_COMMAND_GROUP) => {
                words.push(name.to_owned());
                // A subcommand is the only option at its level; take the first one.
                if nested.is_none() {
                    nested = Some(option.options.as_deref().unwrap_or_default());
                }
            }
            Some(BOOLEAN) => {
                if option.value.as_ref().and_then(Value::as_bool) == Some(true) {
                    flags.push(format!("--{name}"));
                }
            }
            _ => {
                let Some(value) = option.value.as_ref().and_then(scalar) else {
                    continue;
                };
                if POSITIONAL.contains(&name) {
                    positional.push(value);
                } else {
                    flags.push(format!("--{name}"));
                    flags.push(value);
                }
            }
        }
    }
    words.extend(flags);
    words.extend(positional);
    if let Some(nested) = nested {
        flatten_into(nested, words);
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn flat(options: &serde_json::Value) -> String {
        let options: Vec<CommandOption> = serde_json::from_value(options.clone()).unwrap();
        flatten(&options)
    }

    #[test]
    fn subcommand_with_free_text() {
        let options = json!([{"name": "run", "type": 1, "options": [
            {"name": "command", "type": 3, "value": "echo hi"}
        ]}]);
        assert_eq!(flat(&options), "run echo hi");
    }

    #[test]
    fn flags_come_before_free_text() {
        let options = json!([{"name": "run", "type": 1, "options": [
            {"name": "command", "type": 3, "value": "pytest -x"},
            {"name": "template", "type": 3, "value": "python"},
            {"name": "gpu", "type": 5, "value": true},
            {"name": "network", "type": 5, "value": false},
            {"name": "retries", "type": 4, "value": 3}
        ]}]);
        assert_eq!(flat(&options), "run --template python --gpu --retries 3 pytest -x");
    }

    #[test]
    fn groups_nest_and_junk_is_skipped() {
        let options = json!([{"name": "jobs", "type": 2, "options": [
            {"name": "cancel", "type": 1, "options": [
                {"name": "id", "type": 4, "value": 42},
                {"name": "", "type": 3, "value": "x"},
                {"name": "odd", "type": 3, "value": {"nested": true}},
                {"name": "blank", "type": 3, "value": "  "}
            ]}
        ]}]);
        assert_eq!(flat(&options), "jobs cancel 42");
        assert_eq!(flat(&json!([])), "");
        assert_eq!(flat(&json!([{"name": "text", "type": 3, "value": "summarize"}])), "summarize");
    }
}
