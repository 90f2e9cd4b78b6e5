//! Parsing and checking single configuration values. Messages name the setting and the fix, never a
//! secret value.

use std::path::Path;

use secrecy::SecretString;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required value is absent; the message says how to provide it.
    #[error("{0}")]
    Missing(&'static str),
    /// A value is malformed.
    #[error("{setting}: {problem}")]
    Invalid {
        /// The flag or setting.
        setting: &'static str,
        /// What is wrong and what is expected.
        problem: String,
    },
}

/// A sandbox template the node offers: jobs naming `name` run in `image`, and no other image runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Template name (as in `run --template NAME`).
    pub name: String,
    /// Local image reference.
    pub image: String,
}

impl Template {
    /// Parses `NAME=IMAGE`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when either side is empty or contains spaces.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let (name, image) = pair(text, "--template", "NAME=IMAGE")?;
        if image.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                setting: "--template",
                problem: format!("image reference {image:?} contains whitespace"),
            });
        }
        Ok(Self { name, image })
    }
}

/// Splits `KEY=VALUE` with both sides non-empty and trimmed.
pub(crate) fn pair(text: &str, setting: &'static str, shape: &str) -> Result<(String, String), ConfigError> {
    let bad = || ConfigError::Invalid { setting, problem: format!("expected {shape}, got {text:?}") };
    let (k, v) = text.split_once('=').ok_or_else(bad)?;
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() || v.is_empty() || k.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Checks an orchestrator base URL.
pub(crate) fn url(text: &str) -> Result<reqwest::Url, ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid { setting: "orchestrator URL", problem };
    let url = reqwest::Url::parse(text)
        .map_err(|e| invalid(format!("{text:?} is not a URL ({e}); expected e.g. http://127.0.0.1:8080")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("{text:?} must start with http:// or https://")));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(format!("{text:?} must be a plain base URL (no credentials, query or fragment)")));
    }
    Ok(url)
}

/// Checks a node key without ever echoing it.
pub(crate) fn node_key(key: &str) -> Result<(), ConfigError> {
    let invalid = |problem: &str| ConfigError::Invalid { setting: "node key", problem: problem.to_owned() };
    if key.is_empty() {
        return Err(invalid("is empty (CYNODE_NODE_KEY or the --key-file file)"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("must be printable ASCII without spaces (check the key file for stray characters)"));
    }
    Ok(())
}

pub(crate) fn read_key_file(path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
        setting: "--key-file",
        problem: format!("cannot read {}: {e}", path.display()),
    })?;
    Ok(SecretString::from(text.trim().to_owned()))
}

/// The machine's host name: `/etc/hostname`, else `HOSTNAME` (`env_hostname`), else `cynode-node`.
pub fn host_name(env_hostname: Option<&str>) -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| env_hostname.map(|h| h.trim().to_owned()))
        .unwrap_or_else(|| "cynode-node".to_owned())
}
