//! The command grammar, the same on every platform and in the API:
//!
//! ```text
//! run [--template T] [--gpu] <command>   run a command in a sandbox
//! ask <prompt>                           a one-shot answer from the model (no tools, no thread context)
//! status                                 nodes and queue at a glance
//! jobs                                   your recent jobs
//! cancel <job>                           cancel a job
//! approve <job> | deny <job>             decide a job that waits for approval
//! remember [--thread|--me|--install] <text>  keep a memory (for this channel unless told otherwise)
//! recall <query>                         search the memories you may see
//! forget <memory> | forget --mine        forget a memory, or all of yours
//! help                                   this list
//! ```
//! Free text that starts with no command word starts an agent turn: the model sees the thread's conversation and
//! may call tools (see [`crate::agent`]).

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run a command in a sandbox.
    Run {
        /// Template name (default from settings).
        template: Option<String>,
        /// Ask for GPUs.
        gpu: bool,
        /// The shell command, exactly as typed.
        command: String,
    },
    /// Ask the model once (no tools, no thread context).
    Ask {
        /// The prompt.
        prompt: String,
    },
    /// Free text: an agent turn in the thread.
    Agent {
        /// What the user wrote.
        text: String,
    },
    /// Nodes and queue.
    Status,
    /// Recent jobs.
    Jobs,
    /// Cancel a job.
    Cancel {
        /// Job id or its first 8 characters.
        job: String,
    },
    /// Approve a held job.
    Approve {
        /// Job id or prefix.
        job: String,
    },
    /// Deny a held job.
    Deny {
        /// Job id or prefix.
        job: String,
    },
    /// Keep a memory.
    Remember {
        /// Who may see it (channel unless told otherwise).
        scope: crate::memory::Scope,
        /// What to remember.
        text: String,
    },
    /// Search memories.
    Recall {
        /// What to look for.
        query: String,
    },
    /// Forget a memory (`Some(id)`) or all of one's own (`None`).
    Forget {
        /// Memory id or its first 8 characters; `None`: all of the asker's.
        memory: Option<String>,
    },
    /// The list of commands.
    Help {
        /// Set when the user typed something we did not understand.
        unknown: Option<String>,
    },
}

/// The help text every platform shows.
pub const HELP: &str = "Commands:\n\
• `run [--template T] [--gpu] <command>` — run a command in a sandbox\n\
• `ask <prompt>` — a one-shot answer from the model (no tools)\n\
• `status` — nodes and queue\n\
• `jobs` — your recent jobs\n\
• `cancel <job>` — cancel a job\n\
• `approve <job>` / `deny <job>` — decide a job waiting for approval\n\
• `remember [--thread|--me|--install] <text>` — keep a memory (for this channel by default)\n\
• `recall <query>` — search the memories you may see\n\
• `forget <memory>` / `forget --mine` — forget one memory, or all of yours\n\
• `help` — this list\n\
Anything else starts an agent turn: the model reads this thread, may run tools (sandbox commands under the \
same policy and approvals) and answers here. `cancel <turn>` stops a turn.";

/// Longest command text accepted.
pub const MAX_TEXT: usize = 8 * 1024;

/// Parses what the user wrote (bot mention and slash command name already removed).
///
/// # Errors
/// A message to show the user (missing arguments, unknown option, text too long).
pub fn parse(text: &str) -> Result<Command, String> {
    let text = text.trim();
    if text.len() > MAX_TEXT {
        return Err(format!("that is {} characters; commands may be at most {MAX_TEXT}", text.len()));
    }
    let (word, rest) = split_word(text);
    match word.to_ascii_lowercase().as_str() {
        "" | "help" | "-h" | "--help" => Ok(Command::Help { unknown: None }),
        "run" => parse_run(rest),
        "ask" if rest.is_empty() => Err("`ask` needs a question, e.g. `ask what does exit code 137 mean?`".into()),
        "ask" => Ok(Command::Ask { prompt: rest.to_string() }),
        "status" => Ok(Command::Status),
        "jobs" => Ok(Command::Jobs),
        "cancel" => job_arg(rest, "cancel").map(|job| Command::Cancel { job }),
        "approve" => job_arg(rest, "approve").map(|job| Command::Approve { job }),
        "deny" => job_arg(rest, "deny").map(|job| Command::Deny { job }),
        "remember" => parse_remember(rest),
        "recall" if rest.is_empty() => Err("`recall` needs something to look for, e.g. `recall deploy key`".into()),
        "recall" => Ok(Command::Recall { query: rest.to_string() }),
        "forget" => parse_forget(rest),
        w if w.starts_with('/') || w.starts_with("--") => Ok(Command::Help { unknown: Some(word.to_string()) }),
        _ => Ok(Command::Agent { text: text.to_string() }),
    }
}

fn split_word(text: &str) -> (&str, &str) {
    match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    }
}

fn parse_run(mut rest: &str) -> Result<Command, String> {
    let mut template = None;
    let mut gpu = false;
    loop {
        let (word, after) = split_word(rest);
        match word {
            "--gpu" => {
                gpu = true;
                rest = after;
            }
            "--template" | "-t" => {
                let (name, after) = split_word(after);
                if name.is_empty() || name.starts_with("--") {
                    return Err("`--template` needs a name, e.g. `run --template python pytest -x`".into());
                }
                template = Some(name.to_string());
                rest = after;
            }
            w if w.starts_with("--template=") => {
                template = Some(w.trim_start_matches("--template=").to_string());
                rest = after;
            }
            "--" => {
                rest = after;
                break;
            }
            w if w.starts_with("--") => {
                return Err(format!("unknown option `{w}` for `run`; options are `--template NAME` and `--gpu`"));
            }
            _ => break,
        }
    }
    if rest.is_empty() {
        return Err("`run` needs a command, e.g. `run echo hi`".into());
    }
    Ok(Command::Run { template, gpu, command: rest.to_string() })
}

fn parse_remember(mut rest: &str) -> Result<Command, String> {
    use crate::memory::Scope;
    let mut scope = Scope::Channel;
    loop {
        let (word, after) = split_word(rest);
        scope = match word {
            "--thread" => Scope::Thread,
            "--me" | "--private" => Scope::User,
            "--install" | "--team" => Scope::Install,
            "--channel" => Scope::Channel,
            "--" => {
                rest = after;
                break;
            }
            w if w.starts_with("--") => {
                return Err(format!(
                    "unknown option `{w}` for `remember`; options are `--thread`, `--me` and `--install`"
                ));
            }
            _ => break,
        };
        rest = after;
    }
    // "remember that the key rotates" keeps "the key rotates".
    let text = match split_word(rest) {
        (w, after) if w.eq_ignore_ascii_case("that") && !after.is_empty() => after,
        _ => rest,
    };
    if text.is_empty() {
        return Err("`remember` needs something to remember, e.g. `remember the deploy key rotates on Fridays`".into());
    }
    Ok(Command::Remember { scope, text: text.to_string() })
}

fn parse_forget(rest: &str) -> Result<Command, String> {
    let (word, extra) = split_word(rest);
    if !extra.is_empty() {
        return Err("`forget` takes one memory id (see `recall`), or `--mine`".into());
    }
    match word {
        "" => Err("`forget` needs a memory id (`recall` shows them), or `--mine` for all of yours".into()),
        "--mine" => Ok(Command::Forget { memory: None }),
        w => Ok(Command::Forget { memory: Some(w.trim_matches('`').to_string()) }),
    }
}

fn job_arg(rest: &str, verb: &str) -> Result<String, String> {
    let (id, extra) = split_word(rest);
    if id.is_empty() {
        return Err(format!("`{verb}` needs a job id, e.g. `{verb} 3f2a9c1d` (see `jobs`)"));
    }
    if !extra.is_empty() {
        return Err(format!("`{verb}` takes one job id"));
    }
    Ok(id.trim_matches('`').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_keeps_the_command_exactly() {
        assert_eq!(
            parse("run --template py --gpu pytest -x  'a  b'"),
            Ok(Command::Run { template: Some("py".into()), gpu: true, command: "pytest -x  'a  b'".into() })
        );
        assert_eq!(
            parse("RUN -- --version"),
            Ok(Command::Run { template: None, gpu: false, command: "--version".into() })
        );
        assert_eq!(
            parse("run --template=py ls"),
            Ok(Command::Run { template: Some("py".into()), gpu: false, command: "ls".into() })
        );
    }

    #[test]
    fn missing_arguments_and_bad_options_explain_themselves() {
        assert!(parse("run").expect_err("empty").contains("needs a command"));
        assert!(parse("run --template").expect_err("no name").contains("needs a name"));
        assert!(parse("run --fast ls").expect_err("bad option").contains("unknown option `--fast`"));
        assert!(parse("cancel").expect_err("no id").contains("needs a job id"));
        assert!(parse("approve a b").expect_err("two ids").contains("one job id"));
        assert!(parse("ask").expect_err("no prompt").contains("needs a question"));
        assert!(parse(&"x".repeat(MAX_TEXT + 1)).expect_err("long").contains("at most"));
    }

    #[test]
    fn memory_commands() {
        use crate::memory::Scope;
        assert_eq!(
            parse("remember that the deploy key rotates on Fridays"),
            Ok(Command::Remember { scope: Scope::Channel, text: "the deploy key rotates on Fridays".into() })
        );
        assert_eq!(
            parse("remember --me my shell is fish"),
            Ok(Command::Remember { scope: Scope::User, text: "my shell is fish".into() })
        );
        assert_eq!(
            parse("Remember --thread --  --not-an-option"),
            Ok(Command::Remember { scope: Scope::Thread, text: "--not-an-option".into() })
        );
        assert!(parse("remember").expect_err("empty").contains("needs something to remember"));
        assert!(parse("remember --forever x").expect_err("bad").contains("unknown option `--forever`"));
        assert_eq!(parse("recall deploy key"), Ok(Command::Recall { query: "deploy key".into() }));
        assert!(parse("recall").expect_err("empty").contains("needs something to look for"));
        assert_eq!(parse("forget `0193abcd`"), Ok(Command::Forget { memory: Some("0193abcd".into()) }));
        assert_eq!(parse("forget --mine"), Ok(Command::Forget { memory: None }));
        assert!(parse("forget").expect_err("empty").contains("needs a memory id"));
    }

    #[test]
    fn other_commands_and_free_text() {
        assert_eq!(parse("  status "), Ok(Command::Status));
        assert_eq!(parse("jobs"), Ok(Command::Jobs));
        assert_eq!(parse("cancel `3f2a9c1d`"), Ok(Command::Cancel { job: "3f2a9c1d".into() }));
        assert_eq!(parse("deny 3f2a9c1d"), Ok(Command::Deny { job: "3f2a9c1d".into() }));
        assert_eq!(parse(""), Ok(Command::Help { unknown: None }));
        assert_eq!(parse("/frobnicate"), Ok(Command::Help { unknown: Some("/frobnicate".into()) }));
        assert_eq!(parse("why is the build red?"), Ok(Command::Agent { text: "why is the build red?".into() }));
    }
}
