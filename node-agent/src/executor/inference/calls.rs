//! Assembles the tool calls of a streamed chat completion from their deltas.
//!
//! Real servers differ in how they stream a call, and the assembler accepts all of them: arguments split over
//! many chunks (appended in order), the function's name repeated in every delta (llama-cpp-python; kept once),
//! `role: null`, a call's `id` only in its first delta or in none (one is made up), no `index` (a new `id`
//! starts a new call), and a whole call in one chunk.

use cynode_protocol::ToolCall;
use serde_json::Value;

/// Tool calls being assembled, in the order the model started them.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    calls: Vec<Partial>,
}

#[derive(Debug, Default)]
struct Partial {
    index: Option<u64>,
    id: String,
    name: String,
    arguments: String,
}

impl Calls {
    /// Takes the `tool_calls` array of one chunk's `delta` (or of a whole `message`).
    pub(crate) fn push(&mut self, deltas: &[Value]) {
        for d in deltas {
            let index = d["index"].as_u64();
            let id = d["id"].as_str().unwrap_or_default();
            let slot = self.slot(index, id);
            if slot.id.is_empty() && !id.is_empty() {
                id.clone_into(&mut slot.id);
            }
            if let Some(name) = d["function"]["name"].as_str()
                && slot.name.is_empty()
            {
                name.clone_into(&mut slot.name);
            }
            if let Some(args) = d["function"]["arguments"].as_str() {
                slot.arguments.push_str(args);
            } else if let Some(obj) = d["function"]["arguments"].as_object() {
                // A server that sends the arguments as an object rather than JSON text.
                slot.arguments.push_str(&Value::Object(obj.clone()).to_string());
            }
        }
    }

    fn slot(&mut self, index: Option<u64>, id: &str) -> &mut Partial {
        let pos = match index {
            Some(i) => self.calls.iter().position(|c| c.index == Some(i)),
            // No index: the same call continues unless a new id starts another one.
            None => match self.calls.last() {
                Some(last) if id.is_empty() || last.id.is_empty() || last.id == id => Some(self.calls.len() - 1),
                _ => None,
            },
        };
        match pos {
            Some(p) => &mut self.calls[p],
            None => {
                self.calls.push(Partial { index, ..Partial::default() });
                let last = self.calls.len() - 1;
                &mut self.calls[last]
            }
        }
    }

    /// The finished calls; a call without an id gets `call_<n>`, one without a name is kept with an empty name
    /// (the orchestrator answers it as an unknown tool).
    pub(crate) fn finish(self) -> Vec<ToolCall> {
        self.calls
            .into_iter()
            .enumerate()
            .map(|(n, c)| ToolCall {
                id: if c.id.is_empty() { format!("call_{n}") } else { c.id },
                name: c.name,
                arguments: c.arguments,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn split_arguments_and_repeated_names_make_one_call() {
        let mut c = Calls::default();
        c.push(&[json!({"index": 0, "id": "call_a", "type": "function", "function": {"name": "run_command", "arguments": ""}})]);
        c.push(&[json!({"index": 0, "function": {"name": "run_command", "arguments": "{\"comm"}})]);
        c.push(&[json!({"index": 0, "function": {"name": "run_command", "arguments": "and\": \"ls\"}"}})]);
        let calls = c.finish();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].id, "call_a");
        assert_eq!(calls[0].name, "run_command");
        assert_eq!(calls[0].arguments, "{\"command\": \"ls\"}");
    }

    #[test]
    fn parallel_calls_by_index_and_by_id_and_missing_ids() {
        let mut c = Calls::default();
        c.push(&[json!({"index": 0, "function": {"name": "a", "arguments": "{}"}})]);
        c.push(&[json!({"index": 1, "id": "x", "function": {"name": "b", "arguments": "{\"n\":"}})]);
        c.push(&[json!({"index": 1, "function": {"arguments": "1}"}})]);
        let calls = c.finish();
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[0].id.as_str(), calls[0].name.as_str()), ("call_0", "a"));
        assert_eq!((calls[1].id.as_str(), calls[1].arguments.as_str()), ("x", "{\"n\":1}"));

        let mut c = Calls::default();
        c.push(&[json!({"id": "p", "function": {"name": "a", "arguments": "{"}})]);
        c.push(&[json!({"function": {"arguments": "}"}})]);
        c.push(&[json!({"id": "q", "function": {"name": "b", "arguments": {"k": 1}}})]);
        let calls = c.finish();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].arguments, "{}");
        assert_eq!((calls[1].name.as_str(), calls[1].arguments.as_str()), ("b", "{\"k\":1}"));
    }
}
