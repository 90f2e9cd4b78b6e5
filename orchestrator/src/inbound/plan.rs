//! What a verified inbound request becomes: the rows to insert (inbound event, conversation, task), prepared
//! on the caller's task so the writer only binds them.

use cynode_adapters::{Inbound, InboundKind, Platform, ThreadRef};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{NewInbound, Retry};

/// The command words a slash command may be named after (`/run echo hi` is `run echo hi`).
const VERBS: [&str; 11] =
    ["run", "ask", "status", "jobs", "cancel", "approve", "deny", "help", "remember", "recall", "forget"];
/// Button actions that map to a command with the value as its argument (`approve:<job>` is `approve <job>`).
const ACTIONS: [&str; 3] = ["approve", "deny", "cancel"];

/// The task a request creates, before interpretation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskPlan {
    /// The request's kind, kept in `tasks.command` until interpretation names the command word.
    pub(crate) command: &'static str,
    /// The command text to interpret.
    pub(crate) text: String,
    /// Platform details worth keeping (`command`, `action_id`, `event`, …).
    pub(crate) args: Value,
    /// `received` (to interpret) or `answered` (nothing to run).
    pub(crate) state: &'static str,
    /// The reply of an `answered` task.
    pub(crate) reply: Option<String>,
}

impl TaskPlan {
    fn received(command: &'static str, text: String, args: Value) -> Self {
        Self { command, text, args, state: "received", reply: None }
    }

    fn answered(command: &'static str, args: Value, reply: Option<String>) -> Self {
        Self { command, text: String::new(), args, state: "answered", reply }
    }
}

/// Decides what task `inbound` creates:
///
/// - a mention is its text;
/// - a slash command named `cynode` is its text; one named after a command word is that command (`/status`);
///   on Telegram `/start` is `help` and other names are answered as unknown; on Slack and Discord any other
///   name is the app's own command, so its text;
/// - a button `approve`, `deny` or `cancel` with a value is that command on the value; other buttons are
///   answered as unknown;
/// - a webhook whose JSON payload has a string `command` runs it; any other webhook is only recorded.
///
/// A command that needs no store to answer (`help`, an unknown word, input the grammar refuses) is recorded
/// `answered` with the reply the commands give ([`crate::commands::immediate`]).
pub(crate) fn plan(inbound: &Inbound) -> TaskPlan {
    let plan = classify(inbound);
    if plan.state != "received" {
        return plan;
    }
    // Help and input the grammar refuses need no store: recorded already answered, never claimed.
    match crate::commands::immediate(&plan.text) {
        Some(done) => TaskPlan {
            command: done.verb,
            text: plan.text,
            args: plan.args,
            state: "answered",
            reply: Some(done.reply.text),
        },
        None => plan,
    }
}

fn classify(inbound: &Inbound) -> TaskPlan {
    match &inbound.kind {
        InboundKind::Mention { text } => TaskPlan::received("mention", text.trim().to_string(), json!({})),
        InboundKind::Command { command, text } => {
            let name = command.to_ascii_lowercase();
            let args = json!({ "command": name });
            let text = text.trim();
            let line = if VERBS.contains(&name.as_str()) {
                join(&name, text)
            } else if name == "cynode" || inbound.platform != Platform::Telegram {
                text.to_string()
            } else if name == "start" {
                "help".to_string()
            } else {
                join(&format!("/{name}"), text)
            };
            TaskPlan::received("command", line, args)
        }
        InboundKind::Action { action_id, value, message_ref } => {
            let args = json!({ "action_id": action_id, "value": value, "message_ref": message_ref });
            if ACTIONS.contains(&action_id.as_str()) && !value.trim().is_empty() {
                TaskPlan::received("action", join(action_id, value.trim()), args)
            } else {
                let reply = format!("I don't know what to do with the button `{}`.", clean(action_id));
                TaskPlan::answered("action", args, Some(reply))
            }
        }
        InboundKind::Webhook { event, payload } => {
            let args = json!({ "event": event });
            match payload.get("command").and_then(Value::as_str).map(str::trim) {
                Some(command) if !command.is_empty() => TaskPlan::received("webhook", command.to_string(), args),
                _ => TaskPlan::answered("webhook", args, None),
            }
        }
    }
}

fn join(word: &str, rest: &str) -> String {
    if rest.is_empty() { word.to_string() } else { format!("{word} {rest}") }
}

/// The neutral kind's label, stored in `inbound_events.kind`.
pub(crate) fn kind_label(kind: &InboundKind) -> &'static str {
    match kind {
        InboundKind::Mention { .. } => "mention",
        InboundKind::Command { .. } => "command",
        InboundKind::Action { .. } => "action",
        InboundKind::Webhook { .. } => "webhook",
    }
}

/// Every row value of one request, ready to bind.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) inbound_id: Uuid,
    pub(crate) task_id: Uuid,
    pub(crate) conversation_id: Uuid,
    pub(crate) install_id: Uuid,
    pub(crate) platform: &'static str,
    pub(crate) delivery_id: String,
    pub(crate) kind: &'static str,
    pub(crate) payload: Value,
    pub(crate) retry: Retry,
    pub(crate) channel: String,
    pub(crate) thread: String,
    pub(crate) thread_ref: Value,
    pub(crate) requester: String,
    pub(crate) source: &'static str,
    pub(crate) task: TaskPlan,
    /// Hex SHA-256 of an unsigned-id webhook's body ([`NewInbound::replay_key`]).
    pub(crate) replay_key: Option<String>,
}

impl Prepared {
    pub(crate) fn new(new: NewInbound) -> Self {
        let NewInbound { install_id, inbound, retry, replay_key } = new;
        let mut task = plan(&inbound);
        task.text = clean(&task.text);
        sanitize(&mut task.args);
        let mut payload = serde_json::to_value(&inbound).unwrap_or(Value::Null);
        sanitize(&mut payload);
        let mut thread_ref =
            serde_json::to_value(ThreadRef { reply_to: None, ..inbound.thread.clone() }).unwrap_or(Value::Null);
        sanitize(&mut thread_ref);
        Self {
            inbound_id: Uuid::now_v7(),
            task_id: Uuid::now_v7(),
            conversation_id: Uuid::now_v7(),
            install_id,
            platform: inbound.platform.as_str(),
            delivery_id: clean(&inbound.delivery_id),
            kind: kind_label(&inbound.kind),
            payload,
            retry: Retry { num: retry.num, reason: retry.reason.map(|r| clean(&r)) },
            channel: clean(&inbound.thread.channel),
            thread: inbound.thread.thread.as_deref().map(clean).unwrap_or_default(),
            thread_ref,
            requester: clean(&inbound.actor.id),
            source: if inbound.platform == Platform::Webhook { "webhook" } else { "chat" },
            task,
            replay_key: replay_key.map(hex::encode),
        }
    }

    /// The dedupe key; batches are written in this order so concurrent writers take locks in the same order.
    pub(crate) fn key(&self) -> (&str, Uuid, &str) {
        (self.platform, self.install_id, &self.delivery_id)
    }
}

/// PostgreSQL `text` and `jsonb` cannot hold NUL characters; a platform can send them. They become U+FFFD so
/// one odd message cannot fail the batch it is written in.
pub(crate) fn clean(s: &str) -> String {
    if s.contains('\0') { s.replace('\0', "\u{fffd}") } else { s.to_string() }
}

/// [`clean`] for every string and key inside a JSON value.
pub(crate) fn sanitize(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => *s = clean(s),
        Value::Array(items) => items.iter_mut().for_each(sanitize),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let old = std::mem::take(map);
                map.extend(old.into_iter().map(|(k, v)| (clean(&k), v)));
            }
            map.values_mut().for_each(sanitize);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
