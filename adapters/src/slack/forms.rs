//! Form-encoded bodies: slash commands and interactivity (`payload=<JSON>`).

use serde::Deserialize;
use serde_json::Value;

use super::model::BlockActions;
use crate::common::form::Form;
use crate::common::{json, non_empty};
use crate::{Actor, Inbound, InboundKind, ParseError, Parsed, Platform, ReplyHandle, ThreadRef};

pub(super) fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let form = Form::parse(body)?;
    if let Some(payload) = form.get("payload") {
        interaction(payload.as_bytes())
    } else if form.get("command").is_some() {
        slash_command(&form)
    } else {
        Err(ParseError::MissingField("command"))
    }
}

fn slash_command(form: &Form) -> Result<Parsed, ParseError> {
    let command = form.non_empty("command")?;
    let command = command.strip_prefix('/').unwrap_or(command);
    let trigger_id = form.non_empty("trigger_id")?.to_owned();
    Ok(Parsed::Inbound(Inbound {
        platform: Platform::Slack,
        delivery_id: trigger_id.clone(),
        thread: ThreadRef {
            platform: Platform::Slack,
            install: form.non_empty("team_id")?.to_owned(),
            channel: form.non_empty("channel_id")?.to_owned(),
            thread: None,
            reply_to: None,
        },
        actor: Actor {
            id: form.non_empty("user_id")?.to_owned(),
            name: form.get("user_name").filter(|n| !n.is_empty()).map(str::to_owned),
        },
        kind: InboundKind::Command {
            command: command.to_owned(),
            text: form.get("text").unwrap_or_default().trim().to_owned(),
        },
        reply_handle: Some(ReplyHandle::Slack {
            response_url: form.get("response_url").filter(|u| !u.is_empty()).map(str::to_owned),
            trigger_id: Some(trigger_id),
        }),
    }))
}

fn interaction(payload: &[u8]) -> Result<Parsed, ParseError> {
    let payload: Value = json::from_slice(payload)?;
    match payload.get("type").and_then(Value::as_str) {
        Some("block_actions") => {
            let actions = BlockActions::deserialize(&payload).map_err(|_| ParseError::InvalidField("payload"))?;
            block_actions(actions)
        }
        Some(_) => Ok(Parsed::Ignored { reason: "unsupported slack interaction type" }),
        None => Err(ParseError::MissingField("payload.type")),
    }
}

fn block_actions(payload: BlockActions) -> Result<Parsed, ParseError> {
    let user = payload.user.ok_or(ParseError::MissingField("payload.user"))?;
    let user_id = non_empty(user.id, "payload.user.id")?;
    let team_id = payload
        .team
        .and_then(|t| t.id)
        .or(user.team_id)
        .filter(|t| !t.is_empty())
        .ok_or(ParseError::MissingField("payload.team.id"))?;
    let container = payload.container;
    let Some(channel) = payload
        .channel
        .and_then(|c| c.id)
        .or_else(|| container.as_ref().and_then(|c| c.channel_id.clone()))
        .filter(|c| !c.is_empty())
    else {
        return Ok(Parsed::Ignored { reason: "block action outside a channel (modal, home tab)" });
    };
    let action =
        payload.actions.as_deref().and_then(<[Value]>::first).ok_or(ParseError::MissingField("payload.actions"))?;
    let action_id = action
        .get("action_id")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
        .ok_or(ParseError::MissingField("payload.actions[0].action_id"))?
        .to_owned();
    let value = action
        .get("value")
        .or_else(|| action.pointer("/selected_option/value"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let (message_ts, container_thread) = container.map_or((None, None), |c| (c.message_ts, c.thread_ts));
    let (message_ts, message_thread) = match payload.message {
        Some(m) => (message_ts.or(m.ts), m.thread_ts),
        None => (message_ts, None),
    };
    let delivery_id = match (&payload.trigger_id, action.get("action_ts").and_then(Value::as_str)) {
        (Some(trigger), _) if !trigger.is_empty() => trigger.clone(),
        (_, Some(action_ts)) if !action_ts.is_empty() => format!("{user_id}:{action_ts}"),
        _ => return Err(ParseError::MissingField("payload.trigger_id")),
    };
    Ok(Parsed::Inbound(Inbound {
        platform: Platform::Slack,
        delivery_id,
        thread: ThreadRef {
            platform: Platform::Slack,
            install: team_id,
            channel,
            thread: message_thread.or(container_thread).or_else(|| message_ts.clone()),
            reply_to: None,
        },
        actor: Actor { id: user_id, name: user.username.or(user.name) },
        kind: InboundKind::Action { action_id, value, message_ref: message_ts },
        reply_handle: Some(ReplyHandle::Slack {
            response_url: payload.response_url.filter(|u| !u.is_empty()),
            trigger_id: payload.trigger_id.filter(|t| !t.is_empty()),
        }),
    }))
}
