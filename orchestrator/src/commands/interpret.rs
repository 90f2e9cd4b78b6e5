//! What interpreting a request did, so the caller can finish the task ingress recorded for it.

use uuid::Uuid;

use super::{Command, Reply};
use crate::tasks::TaskReply;

/// What interpreting a request did to its recorded task ([`crate::tasks::Origin::task_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No job was created: the task is to be `answered` with the reply.
    Answered,
    /// A job was created and the task moved on with it (`queued` or `waiting`).
    Submitted,
    /// The task had already left `received` (another interpreter handled it); nothing was written.
    AlreadyHandled,
    /// The command moved the task on and keeps its reply itself (an agent turn, whose reply changes as it
    /// runs): the caller stores nothing.
    Kept,
}

/// The result of [`super::Commands::interpret`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreted {
    /// The reply for the user.
    pub reply: Reply,
    /// The command word (`run`, `help`, …; `invalid` for input the grammar refused).
    pub verb: &'static str,
    /// What happened to the recorded task.
    pub outcome: Outcome,
}

impl Interpreted {
    pub(super) fn answered(verb: &'static str, reply: Reply) -> Self {
        Self { reply, verb, outcome: Outcome::Answered }
    }

    pub(super) fn submitted(verb: &'static str, reply: Option<Reply>) -> Self {
        Self::submitted_as(verb, reply)
    }

    /// A command that created a job (`Some` reply with a job), answered without one, or found its task handled
    /// elsewhere (`None`).
    pub(crate) fn submitted_as(verb: &'static str, reply: Option<Reply>) -> Self {
        match reply {
            Some(r) if r.job_id.is_some() => Self { reply: r, verb, outcome: Outcome::Submitted },
            Some(r) => Self::answered(verb, r),
            None => Self {
                reply: Reply { text: "This request was already handled.".into(), ..Reply::default() },
                verb,
                outcome: Outcome::AlreadyHandled,
            },
        }
    }

    /// What to store on recorded task `task`: the reply and, without a job, the final state `answered`. `None`
    /// when the task was handled elsewhere.
    pub fn task_reply(&self, task: Uuid) -> Option<TaskReply> {
        let text = (!self.reply.text.is_empty()).then(|| self.reply.text.clone());
        match self.outcome {
            Outcome::Answered => Some(TaskReply {
                task_id: task,
                command: Some(self.verb.to_string()),
                reply: text,
                state: Some("answered"),
            }),
            Outcome::Submitted => Some(TaskReply { task_id: task, command: None, reply: text, state: None }),
            Outcome::AlreadyHandled | Outcome::Kept => None,
        }
    }
}

/// The command word of a parsed command.
pub(super) fn verb(command: &Command) -> &'static str {
    match command {
        Command::Run { .. } => "run",
        Command::Ask { .. } => "ask",
        Command::Agent { .. } => "agent",
        Command::Status => "status",
        Command::Jobs => "jobs",
        Command::Cancel { .. } => "cancel",
        Command::Approve { .. } => "approve",
        Command::Deny { .. } => "deny",
        Command::Remember { .. } => "remember",
        Command::Recall { .. } => "recall",
        Command::Forget { .. } => "forget",
        Command::Help { .. } => "help",
    }
}
