//! Administration straight on the store, for `cynode admin …`: node keys (create, list, revoke) and installs
//! (list, disable, enable). Every change is audited; secrets are generated here and returned once.

mod installs;
mod node_keys;

pub use installs::{InstallInfo, list_installs, set_install_enabled};
pub use node_keys::{CreatedNodeKey, NodeKeyInfo, create_node_key, list_node_keys, revoke_node_key};

/// Errors of the admin operations. `Invalid` and `NotFound` carry messages meant for the user.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// Nothing matches the id or name given.
    #[error("{0}")]
    NotFound(String),
    /// Store failure.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}
