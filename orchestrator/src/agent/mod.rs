//! Agent turns: free text in a thread becomes a durable, tool-using conversation with the model, streamed back
//! into the same thread.
//!
//! ```text
//! message → conversation (stored) → turn: [model step → tool calls → results]* → answer in the thread
//! ```
//!
//! - The conversation of a thread lives in `conversation_messages`: what users said to CyNode there, its
//!   answers, and every tool call and result, so context survives restarts and works where a bot cannot read
//!   a thread's history. [`context`] decides what the model sees within a token budget (newest first; older
//!   messages are dropped with a note saying how many).
//! - A turn (`agent_turns`) is a state machine whose every step is committed: a model step is an inference job
//!   (leases, fencing and the queue apply), its tool calls are rows keyed by (turn, step, index), and a
//!   `run_command` call's sandbox job belongs to a task whose id is derived from that key, so a call runs at
//!   most once whichever replica resumes the turn. Any replica's [`spawn_agent_worker`] claims turns with a
//!   lease, like streams.
//! - One turn per thread at a time (a unique index): a message that arrives while a turn runs joins the
//!   conversation and the model sees it at its next step.
//! - Limits (steps, wall time, output tokens) are enforced here, not asked of the model; `cancel <turn>` stops
//!   a turn.
//! - Tool results are data: they reach the model as `tool` messages, and the system prompt says they are
//!   untrusted. The tools ([`tools`]) read only the turn's own thread.

mod begin;
pub use begin::cancel;
pub mod context;
mod engine;
mod render;
pub mod tools;

use std::time::Duration;

pub use engine::{AgentWorker, spawn_agent_worker};

/// Limits and defaults of agent turns.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Model steps per turn.
    pub max_steps: i32,
    /// Wall-clock time per turn.
    pub max_duration: Duration,
    /// Tokens the model may generate per turn, over all its steps.
    pub max_output_tokens: i32,
    /// Tokens one model step may generate.
    pub step_max_tokens: u32,
    /// The conversation the model sees, in (estimated) tokens.
    pub context_tokens: usize,
    /// Model for turns (empty: the node's default).
    pub model: String,
    /// A tool the model must call at a turn's first step (`tool_choice` naming it), for servers that return real
    /// tool calls only when told which (llama-cpp-python's); empty: the model chooses (`auto`) at every step.
    pub first_tool: String,
    /// How long one model step may run.
    pub step_timeout: Duration,
    /// The most of a tool's result the model is given, in bytes (head and tail of longer results).
    pub tool_result_bytes: usize,
    /// How often a driven turn looks at its jobs.
    pub poll: Duration,
    /// How long a replica's claim on a turn lasts without renewal.
    pub claim_ttl: Duration,
    /// Turns one replica drives at once.
    pub capacity: usize,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            max_steps: 8,
            max_duration: Duration::from_secs(600),
            max_output_tokens: 8_192,
            step_max_tokens: 1_024,
            context_tokens: 6_000,
            model: String::new(),
            first_tool: String::new(),
            step_timeout: Duration::from_secs(120),
            tool_result_bytes: 4_000,
            poll: Duration::from_millis(200),
            claim_ttl: Duration::from_secs(10),
            capacity: 256,
        }
    }
}
