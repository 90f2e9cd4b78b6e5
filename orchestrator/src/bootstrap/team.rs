//! The bootstrap file's `teams[]`: roles, grants and the Rego policy of one install.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{BootstrapError, BootstrapFile};

/// Roles of one install. Import adds and updates the listed grants; grants made with the CLI stay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    /// Install name from the same file.
    pub install: String,
    /// Role of chat users nobody granted one: `member` (default), `viewer` or `none`.
    #[serde(default = "default_role")]
    pub default_role: String,
    /// Chat user id → role for the whole install.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// Channel id → (chat user id → role) overrides.
    #[serde(default)]
    pub channels: BTreeMap<String, BTreeMap<String, String>>,
    /// Role name → what it may use (commands, templates, gpu, network, models, agent tools).
    #[serde(default)]
    pub grants: BTreeMap<String, crate::team::RoleGrant>,
    /// The install's Rego policy (policy as code), imported like `cynode policy import`.
    #[serde(default)]
    pub policy: Option<TeamPolicySpec>,
}

/// A Rego policy of one install in the bootstrap file: from a file or inline. It is compiled when the file is
/// read, so a syntax error is refused naming the policy file (or the bootstrap file's entry) and the line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamPolicySpec {
    /// A `.rego` file, relative to the bootstrap file's folder (or absolute).
    #[serde(default)]
    pub file: Option<String>,
    /// The policy inline (instead of `file`).
    #[serde(default)]
    pub source: Option<String>,
    /// `shadow` (default: record what it would decide) or `enforce`.
    #[serde(default = "shadow")]
    pub mode: String,
    /// `closed` (default: an evaluation error refuses the job) or `open`.
    #[serde(default = "closed")]
    pub on_error: String,
    /// The name (the file, or the entry for an inline policy) and the source, filled in when the file is read.
    #[serde(skip)]
    pub loaded: Option<(String, String)>,
}

impl TeamPolicySpec {
    /// Enforce mode.
    #[must_use]
    pub fn enforce(&self) -> bool {
        self.mode == "enforce"
    }

    /// Fail open on evaluation errors.
    #[must_use]
    pub fn fail_open(&self) -> bool {
        self.on_error == "open"
    }
}

fn shadow() -> String {
    "shadow".into()
}

fn closed() -> String {
    "closed".into()
}

fn default_role() -> String {
    "member".into()
}

impl BootstrapFile {
    /// Reads and compiles each team's Rego policy (files relative to the folder of `origin`).
    pub(super) fn load_policies(&mut self, origin: &str) -> Result<(), BootstrapError> {
        let base = Path::new(origin).parent().unwrap_or_else(|| Path::new(""));
        for (i, t) in self.teams.iter_mut().enumerate() {
            let Some(p) = t.policy.as_mut() else { continue };
            let invalid = |problem: String| BootstrapError::Invalid {
                path: origin.to_string(),
                at: format!("teams[{i}] (`{}`) policy", t.install),
                problem,
            };
            if !matches!(p.mode.as_str(), "shadow" | "enforce") {
                return Err(invalid(format!("mode is shadow or enforce, not `{}`", p.mode)));
            }
            if !matches!(p.on_error.as_str(), "closed" | "open") {
                return Err(invalid(format!("on_error is closed or open, not `{}`", p.on_error)));
            }
            let (name, source) = match (&p.file, &p.source) {
                (Some(f), None) => {
                    let path = base.join(f);
                    let shown = path.display().to_string();
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| invalid(format!("cannot read policy file {shown}: {e}")))?;
                    (shown, text)
                }
                (None, Some(src)) => (format!("{origin}#teams[{i}].policy"), src.clone()),
                _ => {
                    return Err(invalid("give `file` (a .rego file) or `source` (the policy inline), not both".into()));
                }
            };
            crate::policy::rego::RegoPolicy::compile(&name, &source).map_err(invalid)?;
            p.loaded = Some((name, source));
        }
        Ok(())
    }
}
