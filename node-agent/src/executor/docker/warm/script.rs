//! What a warm pool container runs: a stub shell that waits for one line on its stdin, and the line that
//! turns it into the job.
//!
//! The stub ([`STUB_SCRIPT`], the container's command under the engine's init) reads exactly one line with
//! the `read` builtin, writes [`READY_MARKER`] to stdout (so the executor knows the job was received), and
//! `eval`s the line. The line ([`job_script`]) changes to the job's working directory, drops what the shell
//! itself exported (`OLDPWD`, `PWD`, `SHLVL`), exports the job's environment and `exec`s the job's argv, so
//! the job replaces the stub as the container's main process, with stdin at EOF (`/dev/null`: the container's
//! own stdin stays open for the [`watchdog`]). Only shell builtins are used: any template image with a POSIX
//! `sh` works.
//!
//! Every value is single-quoted (`'` becomes `'\''`); a newline, which would end the line, becomes
//! `'"$1"'`, the stub's only positional parameter, set to a newline. A line cut short (no newline before
//! EOF: the connection broke) makes the stub exit 125 without running anything.

use std::time::Duration;

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

/// The watchdog that ties a sandbox to its agent and to its wall-clock limit, from inside: a process that
/// waits for the container's stdin to close and then kills every process of the sandbox (`kill -9 -1`: all the
/// sandbox user can signal in the container's PID namespace), and, as a backstop, does the same after
/// `deadline`. The executor holds that stdin open (an attach that lives as long as the run) and never writes to
/// it after the job line, so it closes exactly when the agent's connection to the engine goes: the agent
/// process died, or was killed. The job then dies within moments, long before its lease expires and the job
/// is offered again. The deadline holds the time limit when the agent lives on but does not act (stopped,
/// wedged, cut off from the engine's API). The watchdog runs detached (its parent exits at once, so the
/// engine's init adopts it and the job has no extra child), silent, and with no hold on the job's output; it
/// dies with the container when the job ends. It is `sleep` (external) and shell builtins only.
///
/// It must only ever run inside a sandbox: on a host, `kill -9 -1` kills every process its user may signal.
/// Never execute it in tests outside a container.
///
/// A job can defeat it only by killing it (it runs as the same user); the deadline and the agent's own timer
/// then still apply while the agent lives (see `docs/security.md`, execution guarantee).
pub(crate) fn watchdog(deadline: Duration) -> String {
    let secs = deadline.as_secs() + u64::from(deadline.subsec_nanos() > 0);
    // A background list's stdin is /dev/null (no job control), so the container's stdin goes to it through fd 9,
    // which the job does not inherit.
    format!(
        "exec 9<&0; ( ( (sleep {secs}; kill -9 -1) & while IFS= read -r w; do :; done; kill -9 -1 ) <&9 \
         >/dev/null 2>&1 & ); exec 9<&-; "
    )
}

/// The command of a cold sandbox: `sh -c` running the [`watchdog`] and then [`job_script`] exactly as the
/// warm stub does, so both kinds of sandbox behave alike. `None` when `spec` cannot run that way (a program
/// whose name starts with `-`, which `exec` would take for an option): it then runs as given, without a
/// watchdog.
pub(crate) fn supervised_command(spec: &SandboxSpec, deadline: Duration) -> Option<Vec<String>> {
    let program_ok = spec.command.first().is_some_and(|program| !program.starts_with('-'));
    program_ok.then(|| {
        let script = format!("set -- '\n'; {}{}", watchdog(deadline), job_script(spec));
        vec!["sh".to_owned(), "-c".to_owned(), script]
    })
}

/// The line (newline included) that makes the stub run `spec`: working directory, exactly the environment
/// [`sandbox_env`] gives a cold sandbox, then `exec` of the command with stdin from `/dev/null`.
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
    line.push_str(" </dev/null\n");
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
