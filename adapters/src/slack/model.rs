//! Slack wire shapes, as far as CyNode reads them. Every field is optional here; the parsers
//! decide what is required so that errors name the field (`ParseError::MissingField`) instead of
//! quoting serde messages.

use serde::Deserialize;

/// The outer envelope of an Events API `event_callback`. The inner `event` stays a raw value
/// until its type is known, because unrelated event types reuse field names with other shapes.
#[derive(Debug, Deserialize)]
pub(super) struct EventCallback {
    pub(super) team_id: Option<String>,
    pub(super) event_id: Option<String>,
    pub(super) event: Option<serde_json::Value>,
    pub(super) authorizations: Option<Vec<Authorization>>,
}

/// One entry of `authorizations` (which replaced `authed_users`).
#[derive(Debug, Deserialize)]
pub(super) struct Authorization {
    pub(super) user_id: Option<String>,
    pub(super) is_bot: Option<bool>,
}

/// An `app_mention` or `message` event (no subtype, not from a bot).
#[derive(Debug, Deserialize)]
pub(super) struct MessageEvent {
    pub(super) user: Option<String>,
    pub(super) text: Option<String>,
    pub(super) ts: Option<String>,
    pub(super) thread_ts: Option<String>,
    pub(super) channel: Option<String>,
    pub(super) channel_type: Option<String>,
}

/// A `block_actions` interaction payload. `actions` stay raw values because each element type
/// (button, select, date picker…) carries its value differently.
#[derive(Debug, Deserialize)]
pub(super) struct BlockActions {
    pub(super) user: Option<User>,
    pub(super) team: Option<IdOnly>,
    pub(super) channel: Option<IdOnly>,
    pub(super) container: Option<Container>,
    pub(super) message: Option<ContainerMessage>,
    pub(super) actions: Option<Vec<serde_json::Value>>,
    pub(super) response_url: Option<String>,
    pub(super) trigger_id: Option<String>,
}

/// The user who clicked.
#[derive(Debug, Deserialize)]
pub(super) struct User {
    pub(super) id: Option<String>,
    pub(super) username: Option<String>,
    pub(super) name: Option<String>,
    pub(super) team_id: Option<String>,
}

/// Any object of which only the `id` matters (`team`, `channel`).
#[derive(Debug, Deserialize)]
pub(super) struct IdOnly {
    pub(super) id: Option<String>,
}

/// Where the clicked element lives.
#[derive(Debug, Deserialize)]
pub(super) struct Container {
    pub(super) message_ts: Option<String>,
    pub(super) thread_ts: Option<String>,
    pub(super) channel_id: Option<String>,
}

/// The message that carries the clicked element.
#[derive(Debug, Deserialize)]
pub(super) struct ContainerMessage {
    pub(super) ts: Option<String>,
    pub(super) thread_ts: Option<String>,
}
