//! What a warm pool container runs: a stub shell that waits for one line on its stdin, and the line that
//! turns it into the job.
//!
//! The stub ([`STUB_SCRIPT`], the container's command under the engine's init) reads exactly one line with
//! the `read` builtin, writes [`READY_MARKER`] to stdout (so the executor knows the job was received), and
//! `eval`s the line. The line ([`job_script`]) changes to the job's working directory, drops what the shell
//! itself exported (`OLDPWD`, `PWD`, `SHLVL`), exports the job's environment and `exec`s the job's argv, so
//! the job replaces the stub as the container's main process, with stdin at EOF (the executor closes it
//! after the line). Only shell builtins are used: any template image with a POSIX `sh` works.
//!
//! Every value is single-quoted (`'` becomes `'\''`); a newline, which would end the line, becomes
//! `'"$1"'`, the stub's only positional parameter, set to a newline. A line cut short (no newline before
//! EOF: the connection broke) makes the stub exit 125 without running anything.

use crate::executor::docker::config::sandbox_env;
use crate::executor::docker::spec::{SandboxSpec, WORK_DIR};

/// The command of a warm pool container (run by `sh -c`).
pub(crate) const STUB_SCRIPT: &str = "set -- '\n'; IFS= read -r s || exit 125; printf '\\006'; eval \"$s\"";

/// The byte the stub writes to stdout once it has read its job, before running it.
pub(crate) const READY_MARKER: u8 = 0x06;

/// Whether the stub runs `spec` exactly as a cold sandbox would: its program (`exec`'s first operand) must
/// not look like an option of `exec`, and its working directory must be [`WORK_DIR`] — the engine creates a
/// missing working directory of a new container (owned by root, even on the read-only root), which `cd`
/// cannot imitate.
pub(crate) fn runs_in_stub(spec: &SandboxSpec) -> bool {
    spec.command.first().is_some_and(|program| !program.starts_with('-'))
        && spec.workdir.as_deref().is_none_or(|dir| dir == WORK_DIR)
}

/// The line (newline included) that makes the stub run `spec`: working directory, exactly the environment
/// [`sandbox_env`] gives a cold sandbox, then `exec` of the command.
pub(crate) fn job_script(spec: &SandboxSpec) -> String {
    let dir = spec.workdir.as_deref().unwrap_or(WORK_DIR);
    let mut line = format!("cd {} && unset OLDPWD PWD SHLVL && export", quote(dir));
    for var in sandbox_env(spec) {
        line.push(' ');
        line.push_str(&quote(&var));
    }
    line.push_str(" && exec");
    for arg in &spec.command {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line.push('\n');
    line
}

/// `value` as one shell word without a newline, for the stub (see the module docs).
fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        match c {
            '\'' => quoted.push_str("'\\''"),
            '\n' => quoted.push_str("'\"$1\"'"),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

#[cfg(test)]
mod tests;
