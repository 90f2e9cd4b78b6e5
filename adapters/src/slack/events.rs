//! Events API bodies (JSON): `url_verification` and `event_callback`.

use serde::Deserialize;
use serde_json::Value;

use super::model::{Authorization, EventCallback, MessageEvent};
use crate::common::json;
use crate::{Actor, HandshakeResponse, Inbound, InboundKind, ParseError, Parsed, Platform, ThreadRef};

pub(super) fn parse(body: &[u8]) -> Result<Parsed, ParseError> {
    let envelope: Value = json::from_slice(body)?;
    match envelope.get("type").and_then(Value::as_str) {
        Some("url_verification") => {
            let challenge =
                envelope.get("challenge").and_then(Value::as_str).ok_or(ParseError::MissingField("challenge"))?;
            Ok(Parsed::Handshake(HandshakeResponse {
                content_type: "text/plain; charset=utf-8",
                body: challenge.as_bytes().to_vec(),
            }))
        }
        Some("event_callback") => {
            let callback =
                EventCallback::deserialize(&envelope).map_err(|_| ParseError::InvalidField("event_callback"))?;
            event_callback(callback)
        }
        Some(_) => Ok(Parsed::Ignored { reason: "unsupported slack envelope type" }),
        None => Err(ParseError::MissingField("type")),
    }
}

fn event_callback(callback: EventCallback) -> Result<Parsed, ParseError> {
    let team_id = callback.team_id.ok_or(ParseError::MissingField("team_id"))?;
    let event_id = callback.event_id.ok_or(ParseError::MissingField("event_id"))?;
    let event = callback.event.ok_or(ParseError::MissingField("event"))?;
    let is_mention = match event.get("type").and_then(Value::as_str) {
        Some("app_mention") => true,
        Some("message") => false,
        Some(_) => {
            return Ok(Parsed::Ignored { reason: "unsupported slack event type" });
        }
        None => return Err(ParseError::MissingField("event.type")),
    };
    if event.get("bot_id").is_some_and(|v| !v.is_null()) {
        return Ok(Parsed::Ignored { reason: "message from a bot" });
    }
    if event.get("subtype").is_some_and(|v| !v.is_null()) {
        return Ok(Parsed::Ignored { reason: "message subtype (edit, join, bot, ...)" });
    }
    let message = MessageEvent::deserialize(&event).map_err(|_| ParseError::InvalidField("event"))?;
    if !is_mention && message.channel_type.as_deref() != Some("im") {
        return Ok(Parsed::Ignored { reason: "channel message not addressed to the app" });
    }
    let user = message.user.ok_or(ParseError::MissingField("event.user"))?;
    let channel = message.channel.ok_or(ParseError::MissingField("event.channel"))?;
    let ts = message.ts.ok_or(ParseError::MissingField("event.ts"))?;
    let text = message.text.unwrap_or_default();
    let bot_user = bot_user_id(callback.authorizations.as_deref());
    if bot_user.is_some_and(|bot| bot == user) {
        return Ok(Parsed::Ignored { reason: "message from the app itself" });
    }
    let text = strip_mentions(&text, bot_user, is_mention);
    Ok(Parsed::Inbound(Inbound {
        platform: Platform::Slack,
        delivery_id: event_id,
        thread: ThreadRef {
            platform: Platform::Slack,
            install: team_id,
            channel,
            thread: Some(message.thread_ts.unwrap_or_else(|| ts.clone())),
            reply_to: Some(ts),
        },
        actor: Actor { id: user, name: None },
        kind: InboundKind::Mention { text },
        reply_handle: None,
    }))
}

fn bot_user_id(authorizations: Option<&[Authorization]>) -> Option<&str> {
    authorizations?
        .iter()
        .find(|a| a.is_bot == Some(true))
        .and_then(|a| a.user_id.as_deref())
        .filter(|id| !id.is_empty())
}

/// Removes the bot's mentions (`<@U123>` or `<@U123|name>`). When the bot's user id is unknown
/// and the text is an `app_mention`, removes the leading mention, which is the one that
/// addressed the app.
fn strip_mentions(text: &str, bot_user: Option<&str>, is_mention: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut first = true;
    while let Some(start) = rest.find("<@") {
        let (before, tail) = rest.split_at(start);
        let Some(end) = tail.find('>') else { break };
        let (token, after) = tail.split_at(end + 1);
        let id = token.get(2..token.len() - 1).and_then(|inner| inner.split('|').next()).unwrap_or_default();
        let leading = first && before.trim().is_empty();
        let remove = match bot_user {
            Some(bot) => id == bot,
            None => is_mention && leading,
        };
        out.push_str(before);
        if !remove {
            out.push_str(token);
        }
        first = false;
        rest = after;
    }
    out.push_str(rest);
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_the_bot_mention() {
        assert_eq!(strip_mentions("<@UBOT> run ls", Some("UBOT"), true), "run ls");
        assert_eq!(strip_mentions("hey <@UBOT|cynode> ask <@UX>", Some("UBOT"), true), "hey  ask <@UX>");
        assert_eq!(strip_mentions("<@UX> ping <@UBOT>", Some("UBOT"), true), "<@UX> ping");
        assert_eq!(strip_mentions("  <@UANY> status", None, true), "status");
        assert_eq!(strip_mentions("please <@UANY> status", None, true), "please <@UANY> status");
        assert_eq!(strip_mentions("<@UANY> hi", None, false), "<@UANY> hi");
        assert_eq!(strip_mentions("broken <@UBOT", Some("UBOT"), true), "broken <@UBOT");
        assert_eq!(strip_mentions("<@> x <@@> é", Some("UBOT"), true), "<@> x <@@> é");
    }
}
