//! Running PostgreSQL as an unprivileged user when CyNode itself runs as root (PostgreSQL refuses root).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use super::EmbeddedError;

/// The account the server runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Numeric primary group id.
    pub gid: u32,
}

/// The effective user id of this process, read from `/proc/self/status`.
pub fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(u32::MAX)
}

/// Looks a user up in `/etc/passwd`.
pub fn lookup_user(name: &str) -> Option<RunAs> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let n = f.next()?;
        if n != name {
            return None;
        }
        let _pw = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some(RunAs { name: n.to_string(), uid, gid })
    })
}

/// Name of the account that owns `uid`, for messages.
pub fn user_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.splitn(4, ':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Returns the unprivileged account `name`, creating it as a system user when it does not exist; falls back to
/// `nobody` when accounts cannot be created.
///
/// # Errors
/// When neither `name` can be created nor `nobody` exists.
pub async fn ensure_user(name: &str) -> Result<RunAs, EmbeddedError> {
    if let Some(u) = lookup_user(name) {
        return Ok(u);
    }
    let created = Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"])
        .args(["--shell", "/usr/sbin/nologin", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false);
    if created && let Some(u) = lookup_user(name) {
        tracing::info!(user = name, "created system user to run the embedded PostgreSQL");
        return Ok(u);
    }
    lookup_user("nobody").ok_or_else(|| {
        EmbeddedError::Privileges(format!(
            "running as root, PostgreSQL must run as an unprivileged user, but user `{name}` does not exist and \
             could not be created (useradd failed); create it with `useradd --system {name}`"
        ))
    })
}

impl RunAs {
    /// A command that runs `program` as this user with no supplementary groups.
    pub fn command(&self, program: &Path) -> Command {
        if Path::new("/usr/bin/setpriv").exists() || Path::new("/bin/setpriv").exists() {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", self.uid))
                .arg(format!("--regid={}", self.gid))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            c
        } else {
            let mut c = Command::new(program);
            c.uid(self.uid).gid(self.gid);
            c
        }
    }

    /// Whether this user can reach `path`: every ancestor directory must be searchable by it.
    pub fn can_traverse(&self, path: &Path) -> bool {
        path.ancestors().skip(1).all(|dir| match std::fs::metadata(dir) {
            Ok(m) => {
                let mode = m.mode();
                if m.uid() == self.uid {
                    mode & 0o100 != 0
                } else if m.gid() == self.gid {
                    mode & 0o010 != 0
                } else {
                    mode & 0o001 != 0
                }
            }
            Err(_) => true, // does not exist yet: it will be created by us
        })
    }

    /// Gives `path` to this user.
    ///
    /// # Errors
    /// When the ownership cannot be changed.
    pub fn chown(&self, path: &Path) -> Result<(), EmbeddedError> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).map_err(|e| {
            EmbeddedError::Privileges(format!("cannot give {} to user {}: {e}", path.display(), self.name))
        })
    }
}
