//! Discord interaction wire shapes, as far as CyNode reads them. Fields are optional here; the
//! parser decides what is required so errors name the field.

use serde::Deserialize;

/// An interaction (API v10) without its `type`, which is read first.
#[derive(Debug, Deserialize)]
pub(super) struct Interaction {
    pub(super) id: Option<String>,
    pub(super) application_id: Option<String>,
    pub(super) token: Option<String>,
    pub(super) channel_id: Option<String>,
    pub(super) channel: Option<Channel>,
    pub(super) member: Option<Member>,
    pub(super) user: Option<User>,
}

/// The partial channel the interaction happened in.
#[derive(Debug, Deserialize)]
pub(super) struct Channel {
    pub(super) id: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: Option<u64>,
    pub(super) parent_id: Option<String>,
}

/// A guild member; its `user` is the invoking user in guilds.
#[derive(Debug, Deserialize)]
pub(super) struct Member {
    pub(super) user: Option<User>,
    /// The member's nickname in this guild, when set (what the guild shows first).
    pub(super) nick: Option<String>,
}

/// A Discord user.
#[derive(Debug, Deserialize)]
pub(super) struct User {
    pub(super) id: Option<String>,
    pub(super) username: Option<String>,
    pub(super) global_name: Option<String>,
}

/// `data` of an APPLICATION_COMMAND interaction.
#[derive(Debug, Deserialize)]
pub(super) struct CommandData {
    pub(super) name: Option<String>,
    pub(super) options: Option<Vec<CommandOption>>,
}

/// One application command option, possibly a subcommand (group) with nested options.
#[derive(Debug, Deserialize)]
pub(super) struct CommandOption {
    pub(super) name: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: Option<u64>,
    pub(super) value: Option<serde_json::Value>,
    pub(super) options: Option<Vec<CommandOption>>,
}

/// `data` of a MESSAGE_COMPONENT interaction.
#[derive(Debug, Deserialize)]
pub(super) struct ComponentData {
    pub(super) custom_id: Option<String>,
    pub(super) values: Option<Vec<String>>,
}
